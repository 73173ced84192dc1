package loadgen

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Machine describes where a run happened.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemBytes int64  `json:"mem_bytes"`
	OS       string `json:"os"`
	Kernel   string `json:"kernel,omitempty"`
	NoFile   uint64 `json:"rlimit_nofile"`
}

// Versions of the software under test.
type Versions struct {
	Go         string `json:"go"`
	NATSServer string `json:"nats_server"`
	NATSClient string `json:"nats_go"`
	Embedded   bool   `json:"embedded_server"`
}

func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if v := procField("/proc/meminfo", "MemTotal"); v > 0 {
		m.MemBytes = v
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.NoFile = noFileLimit()
	return m
}

func versions(serverVersion string, embedded bool) Versions {
	v := Versions{Go: runtime.Version(), NATSServer: server.VERSION, NATSClient: nats.Version, Embedded: embedded}
	if serverVersion != "" {
		v.NATSServer = serverVersion
	}
	return v
}

// procField reads "Key:   123 kB" from a /proc file, in bytes.
func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		if len(fields) > 1 && fields[1] == "kB" {
			n <<= 10
		}
		return n
	}
	return 0
}

// peakRSS is the process's high-water resident set (VmHWM).
func peakRSS() int64 { return procField("/proc/self/status", "VmHWM") }

// curRSS is the process's resident set now (VmRSS).
func curRSS() int64 { return procField("/proc/self/status", "VmRSS") }

// resetPeakRSS resets VmHWM to the current RSS (Linux: clear_refs 5), so
// the next peakRSS is the peak of what follows. Best effort.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// cpuTimes is the process's user and system CPU time.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// noFileLimit is the soft RLIMIT_NOFILE (Go raises it to the hard limit at
// start-up).
func noFileLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	// Rlimit.Cur is uint64 on Linux and darwin, int64 on the BSDs.
	return uint64(rl.Cur)
}

// openFiles counts this process's open file descriptors.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// heapInUse is the live heap plus goroutine stacks after a GC.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse)
}
