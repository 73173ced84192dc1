package facts

import (
	"bufio"
	"io"
	"runtime"
	"strconv"
	"strings"
)

func (c *collector) cpu() CPU {
	var info CPU
	if fh, err := c.open("/proc/cpuinfo"); err == nil {
		info, _ = parseCPUInfo(fh)
		fh.Close()
	}
	if info.Count == 0 {
		info.Count = countCPUList(c.readTrim("/sys/devices/system/cpu/online"))
	}
	if info.Count == 0 {
		info.Count = runtime.NumCPU()
	}
	info.Flags = nonNil(info.Flags)
	return info
}

// armImplementers maps the "CPU implementer" codes of ARM /proc/cpuinfo to
// vendor names (the common ones; unknown codes are reported verbatim).
var armImplementers = map[string]string{
	"0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu",
	"0x48": "HiSilicon", "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm",
	"0x53": "Samsung", "0x61": "Apple", "0x69": "Intel", "0x6d": "Microsoft",
	"0xc0": "Ampere",
}

// armParts names the common Arm Ltd. ("CPU implementer: 0x41") cores by
// "CPU part", since ARM /proc/cpuinfo carries no model name.
var armParts = map[string]string{
	"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
	"0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
	"0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
	"0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
	"0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
	"0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2", "0xd8e": "Neoverse-N3",
}

// parseCPUInfo parses /proc/cpuinfo. It understands the x86 layout
// ("processor", "model name", "physical id", "core id", "flags") as well as
// the ARM ("Features", "CPU implementer"), POWER ("cpu") and MIPS
// ("cpu model") variants. Cores and Sockets stay 0 when the file carries no
// topology. On a read error what was parsed so far is returned.
func parseCPUInfo(r io.Reader) (CPU, error) {
	var info CPU
	type core struct{ pkg, id string }
	sockets := map[string]bool{}
	cores := map[core]bool{}
	coresPerSocket := 0
	var implementer, part string // first ARM "CPU implementer" / "CPU part"
	var pkg string               // "physical id" of the current processor block
	var coreID string            // "core id" of the current processor block
	haveCoreID := false

	flush := func() {
		if pkg != "" {
			sockets[pkg] = true
		}
		if haveCoreID {
			cores[core{pkg, coreID}] = true
		}
		pkg, coreID, haveCoreID = "", "", false
	}

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		switch k {
		case "processor":
			// s390x has "processor 0: ..." lines (key "processor 0") and
			// ARM32 has "Processor : ARMv7 ..." (a model, see below).
			if _, err := strconv.Atoi(v); err == nil {
				info.Count++
			}
		case "model name", "cpu model":
			if info.Model == "" {
				info.Model = v
			}
		case "Processor":
			if _, err := strconv.Atoi(v); err != nil && info.Model == "" {
				info.Model = v
			}
		case "cpu":
			// POWER: "cpu : POWER9 (raw), altivec supported"
			if info.Model == "" {
				info.Model = v
			}
		case "Hardware":
			// ARM32 SoC name; only used when nothing better is known.
			if info.Model == "" {
				info.Model = v
			}
		case "vendor_id", "vendor":
			if info.Vendor == "" {
				info.Vendor = v
			}
		case "CPU part":
			if part == "" {
				part = strings.ToLower(v)
			}
		case "CPU implementer":
			if implementer == "" {
				implementer = strings.ToLower(v)
			}
			if info.Vendor == "" {
				if name, ok := armImplementers[strings.ToLower(v)]; ok {
					info.Vendor = name
				} else {
					info.Vendor = v
				}
			}
		case "flags", "Features", "features":
			if info.Flags == nil {
				info.Flags = strings.Fields(v)
			}
		case "physical id":
			pkg = v
		case "core id":
			coreID, haveCoreID = v, true
		case "cpu cores":
			if n, err := strconv.Atoi(v); err == nil && n > coresPerSocket {
				coresPerSocket = n
			}
		}
	}
	flush()
	if info.Model == "" && implementer == "0x41" {
		info.Model = armParts[part]
	}
	info.Sockets = len(sockets)
	switch {
	case len(cores) > 0:
		info.Cores = len(cores)
	case coresPerSocket > 0 && info.Sockets > 0:
		info.Cores = coresPerSocket * info.Sockets
	}
	return info, sc.Err()
}

// countCPUList counts the CPUs of a kernel cpu list such as "0-3,8,10-11"
// (the format of /sys/devices/system/cpu/online). Invalid input counts 0.
func countCPUList(s string) int {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0
			}
		}
		n += b - a + 1
	}
	return n
}
