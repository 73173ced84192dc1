package facts

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

func (c *collector) memory() Memory {
	if fh, err := c.open("/proc/meminfo"); err == nil {
		kv, _ := parseMeminfo(fh)
		fh.Close()
		if m := memoryFromMeminfo(kv); m.TotalBytes > 0 {
			return m
		}
	}
	if c.root != "/" {
		return Memory{}
	}
	m, ok := sysinfoMemory()
	if ok {
		c.ok()
	}
	return m
}

// memoryFromMeminfo picks the fields of interest from parsed meminfo.
// Kernels older than 3.14 have no MemAvailable; it is then estimated as
// MemFree + Buffers + Cached, like free(1) did.
func memoryFromMeminfo(kv map[string]uint64) Memory {
	m := Memory{
		TotalBytes:     kv["MemTotal"],
		FreeBytes:      kv["MemFree"],
		SwapTotalBytes: kv["SwapTotal"],
		SwapFreeBytes:  kv["SwapFree"],
	}
	if v, ok := kv["MemAvailable"]; ok {
		m.AvailableBytes = v
	} else {
		m.AvailableBytes = kv["MemFree"] + kv["Buffers"] + kv["Cached"]
	}
	return m
}

// parseMeminfo parses /proc/meminfo ("Key:   123 kB" lines) into a map of
// byte counts. Values with a "kB" unit (which the kernel means as KiB) are
// multiplied by 1024; unit-less values (e.g. HugePages_Total) are kept as
// is. Malformed lines are skipped.
func parseMeminfo(r io.Reader) (map[string]uint64, error) {
	kv := map[string]uint64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && strings.EqualFold(fields[1], "kB") {
			if n > ^uint64(0)/1024 {
				continue
			}
			n *= 1024
		}
		kv[strings.TrimSpace(k)] = n
	}
	return kv, sc.Err()
}
