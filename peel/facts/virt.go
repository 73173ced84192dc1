package facts

import (
	"bytes"
	"os"
	"slices"
	"strings"
)

const none = "none"

// virtualization detects container and hypervisor guests. cpuFlags are the
// /proc/cpuinfo flags (for the x86 "hypervisor" bit).
func (c *collector) virtualization(cpuFlags []string) Virtualization {
	v := Virtualization{
		Container:  c.detectContainer(),
		Hypervisor: c.detectHypervisor(cpuFlags),
	}
	switch {
	case v.Container != none:
		v.Role, v.Type = "guest", v.Container
	case v.Hypervisor != none:
		v.Role, v.Type = "guest", v.Hypervisor
	default:
		v.Role, v.Type = "host", none
	}
	return v
}

// detectContainer returns the container technology the host runs in, or
// "none".
func (c *collector) detectContainer() string {
	if c.exists("/var/run/secrets/kubernetes.io/serviceaccount") {
		return "kubernetes"
	}
	if c.exists("/run/.containerenv") {
		return "podman"
	}
	if c.exists("/.dockerenv") {
		return "docker"
	}
	// Written by systemd-nspawn, and by container managers following the
	// systemd container interface.
	if s := c.readTrim("/run/systemd/container"); s != "" {
		return normalizeContainer(s)
	}
	// The same value as PID 1's environment; usually root-only readable.
	if b, err := os.ReadFile(c.path("/proc/1/environ")); err == nil {
		for _, kv := range bytes.Split(b, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("container=")); ok && len(v) > 0 {
				return normalizeContainer(string(v))
			}
		}
	}
	if b, err := os.ReadFile(c.path("/proc/1/cgroup")); err == nil {
		if t := containerFromCgroup(string(b)); t != "" {
			return t
		}
	}
	if c.exists("/proc/vz") && !c.exists("/proc/bc") {
		return "openvz"
	}
	if strings.Contains(strings.ToLower(c.readTrim("/proc/sys/kernel/osrelease")), "microsoft") {
		return "wsl"
	}
	return none
}

func normalizeContainer(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "", "0", "false":
		return none
	case "lxc-libvirt":
		return "lxc"
	case "oci":
		return "docker"
	}
	return s
}

// containerFromCgroup recognises container runtimes from the cgroup paths
// of PID 1 (/proc/1/cgroup). With cgroup namespaces (the cgroup v2
// default) the path is just "/" and nothing can be told from it.
func containerFromCgroup(s string) string {
	switch {
	case strings.Contains(s, "kubepods"), strings.Contains(s, "cri-containerd"):
		return "kubernetes"
	case strings.Contains(s, "libpod"):
		return "podman"
	case strings.Contains(s, "/docker/"), strings.Contains(s, "/docker-"):
		return "docker"
	case strings.Contains(s, "/lxc/"), strings.Contains(s, "lxc.payload"):
		return "lxc"
	case strings.Contains(s, "/ecs/"):
		return "ecs"
	}
	return ""
}

// dmiVendors maps DMI strings (prefixes) to hypervisor names, checked
// against product_name, sys_vendor, board_vendor and bios_vendor in that
// order, as systemd-detect-virt does.
var dmiVendors = []struct{ prefix, name string }{
	{"KVM", "kvm"},
	{"OpenStack", "kvm"},
	{"KubeVirt", "kvm"},
	{"Amazon EC2", "amazon"},
	{"QEMU", "qemu"},
	{"VMware", "vmware"},
	{"VMW", "vmware"},
	{"innotek GmbH", "oracle"},
	{"VirtualBox", "oracle"},
	{"Xen", "xen"},
	{"Bochs", "bochs"},
	{"Parallels", "parallels"},
	{"BHYVE", "bhyve"},
	{"Hyper-V", "microsoft"},
	{"Apple Virtualization", "apple"},
	{"Google Compute Engine", "google"},
	{"Google", "google"},
}

// detectHypervisor returns the hypervisor the host is a guest of, "unknown"
// when the CPU says it is virtualised but not by what, or "none".
func (c *collector) detectHypervisor(cpuFlags []string) string {
	clocks := strings.Fields(c.readTrim("/sys/devices/system/clocksource/clocksource0/available_clocksource"))
	hasKVMClock := slices.Contains(clocks, "kvm-clock")

	dmi := func(f string) string { return c.readTrim("/sys/class/dmi/id/" + f) }
	product, sysVendor := dmi("product_name"), dmi("sys_vendor")
	if sysVendor == "Microsoft Corporation" && strings.HasPrefix(product, "Virtual Machine") {
		return "microsoft"
	}
	for _, s := range []string{product, sysVendor, dmi("board_vendor"), dmi("bios_vendor")} {
		if s == "" {
			continue
		}
		for _, v := range dmiVendors {
			if strings.HasPrefix(s, v.prefix) {
				// QEMU with KVM acceleration exposes kvm-clock; plain
				// emulation (TCG) does not.
				if v.name == "qemu" && hasKVMClock {
					return "kvm"
				}
				return v.name
			}
		}
	}

	if t := strings.ToLower(c.readTrim("/sys/hypervisor/type")); t != "" {
		if t == "xen" && strings.Contains(c.readTrim("/proc/xen/capabilities"), "control_d") {
			return none // Xen dom0: the host of the hypervisor
		}
		return t
	}
	if c.exists("/proc/xen") {
		if strings.Contains(c.readTrim("/proc/xen/capabilities"), "control_d") {
			return none
		}
		return "xen"
	}
	if bytes.Contains(c.readRaw("/proc/device-tree/hypervisor/compatible"), []byte("xen")) {
		return "xen"
	}

	if slices.Contains(cpuFlags, "hypervisor") {
		if hasKVMClock {
			return "kvm"
		}
		for _, cs := range clocks {
			switch {
			case strings.HasPrefix(cs, "hyperv"):
				return "microsoft"
			case cs == "xen":
				return "xen"
			}
		}
		return "unknown"
	}
	return none
}

func (c *collector) readRaw(p string) []byte {
	b, _ := os.ReadFile(c.path(p))
	return b
}
