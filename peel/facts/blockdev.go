package facts

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// disks reads the block devices below <root>/sys/block. Unused virtual
// devices (detached loop devices, unconfigured zram/ram/md/nbd, which all
// report a size of 0) are skipped.
func (c *collector) disks() map[string]Disk {
	out := map[string]Disk{}
	entries, err := os.ReadDir(c.path("/sys/block"))
	if err != nil {
		return out
	}
	c.ok()
	for _, e := range entries {
		d, ok := c.blockDevice(e.Name())
		if !ok {
			continue
		}
		// sysfs spells "/" in device names as "!" (e.g. cciss!c0d0).
		out[strings.ReplaceAll(e.Name(), "!", "/")] = d
	}
	return out
}

func (c *collector) blockDevice(name string) (Disk, bool) {
	base := "/sys/block/" + name
	sizeStr := c.readTrim(base + "/size")
	if sizeStr == "" {
		return Disk{}, false
	}
	var d Disk
	// "size" is always in 512-byte sectors, whatever the logical block size.
	if sectors, err := strconv.ParseUint(sizeStr, 10, 64); err == nil && sectors <= ^uint64(0)/512 {
		d.SizeBytes = sectors * 512
	}
	d.Rotational = c.readTrim(base+"/queue/rotational") == "1"
	d.Removable = c.readTrim(base+"/removable") == "1"
	d.ReadOnly = c.readTrim(base+"/ro") == "1"
	if target, err := filepath.EvalSymlinks(c.path(base)); err == nil {
		d.Virtual = strings.Contains(filepath.ToSlash(target), "/devices/virtual/")
	}
	if d.Virtual && d.SizeBytes == 0 {
		return Disk{}, false
	}
	d.Model = c.readTrim(base + "/device/model")
	d.Vendor = c.readTrim(base + "/device/vendor")
	if strings.HasPrefix(d.Vendor, "0x") {
		d.Vendor = "" // virtio and friends expose a numeric PCI vendor id here
	}
	d.Serial = c.readTrim(base + "/serial") // virtio
	if d.Serial == "" {
		d.Serial = c.readTrim(base + "/device/serial") // nvme, some scsi
	}
	return d, true
}
