package facts

import (
	"bufio"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// bootAndUptime returns the boot time (from /proc/stat btime) and the
// uptime in whole seconds (from /proc/uptime). Each is derived from the
// other when only one is available, and sysinfo(2) is the last resort for
// the uptime.
func (c *collector) bootAndUptime(now time.Time) (time.Time, int64) {
	var boot time.Time
	if fh, err := c.open("/proc/stat"); err == nil {
		st, _ := parseProcStat(fh)
		fh.Close()
		if st.BootTime > 0 {
			boot = time.Unix(st.BootTime, 0).UTC()
		}
	}

	uptime := int64(-1)
	if fh, err := c.open("/proc/uptime"); err == nil {
		if secs, err := parseUptime(fh); err == nil {
			uptime = int64(secs)
		}
		fh.Close()
	}
	if uptime < 0 && c.root == "/" {
		if secs, ok := sysinfoUptime(); ok {
			c.ok()
			uptime = secs
		}
	}

	switch {
	case uptime < 0 && !boot.IsZero():
		uptime = int64(now.Sub(boot) / time.Second)
	case uptime >= 0 && boot.IsZero():
		boot = now.Add(-time.Duration(uptime) * time.Second).Truncate(time.Second)
	}
	if uptime < 0 {
		uptime = 0
	}
	return boot, uptime
}

// procStat holds the fields of /proc/stat the collector uses.
type procStat struct {
	BootTime int64 // "btime": boot time, seconds since the Unix epoch
}

// parseProcStat parses /proc/stat. Only the "btime" line is interpreted;
// everything else is ignored.
func parseProcStat(r io.Reader) (procStat, error) {
	var st procStat
	sc := bufio.NewScanner(r)
	// The "intr" line lists one counter per interrupt and can be long.
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "btime" {
			if n, err := strconv.ParseInt(fields[1], 10, 64); err == nil && n > 0 {
				st.BootTime = n
			}
		}
	}
	return st, sc.Err()
}

// parseUptime parses /proc/uptime ("12345.67 54321.00") and returns the
// first number, the seconds since boot.
func parseUptime(r io.Reader) (float64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, errors.New("facts: empty uptime")
	}
	secs, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, err
	}
	if secs < 0 || math.IsNaN(secs) || math.IsInf(secs, 0) || secs > math.MaxInt64/2 {
		return 0, errors.New("facts: invalid uptime " + fields[0])
	}
	return secs, nil
}
