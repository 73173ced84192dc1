package funcs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// SysInfo is the result of sys.info.
type SysInfo struct {
	PeelID        string    `json:"peel_id,omitempty"`
	Hostname      string    `json:"hostname"`
	OS            string    `json:"os"`
	Arch          string    `json:"arch"`
	Kernel        string    `json:"kernel,omitempty"`
	NumCPU        int       `json:"num_cpu"`
	GoVersion     string    `json:"go_version"`
	Pid           int       `json:"pid"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Load          []float64 `json:"load"`
}

func sysInfo(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a noArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	info := &SysInfo{
		PeelID:    env.PeelID,
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Pid:       os.Getpid(),
	}
	info.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			info.UptimeSeconds, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load := make([]float64, 3)
			ok := true
			for i := range load {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					ok = false
					break
				}
				load[i] = v
			}
			if ok {
				info.Load = load
			}
		}
	}
	return info, nil
}

// ServiceStatus is the result of service.status.
type ServiceStatus struct {
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	State     string `json:"state"`
	SubState  string `json:"sub_state"`
	MainPid   int    `json:"main_pid"`
	LoadState string `json:"load_state,omitempty"`
	// Source says where the information came from: "systemd", "pidfile",
	// "initd" or "none".
	Source string `json:"source"`
}

const maxServiceName = 256

func validServiceName(name string) error {
	switch {
	case name == "":
		return badArgs("argument \"name\" is required")
	case len(name) > maxServiceName:
		return badArgs("argument \"name\": longer than %d characters", maxServiceName)
	case name[0] == '-' || name[0] == '.':
		return badArgs("argument \"name\": must not start with %q", name[:1])
	}
	for _, r := range name {
		if r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return badArgs("argument \"name\": invalid character %q in service name", r)
		}
	}
	return nil
}

func serviceStatus(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Name string `json:"name"`
	}
	if err := decodeArgs(args, &a, "name"); err != nil {
		return nil, err
	}
	if err := validServiceName(a.Name); err != nil {
		return nil, err
	}
	if systemdRunning() {
		if st, err := systemdStatus(ctx, a.Name); err == nil {
			return st, nil
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// fall through to the SysV heuristics
	}
	return sysvStatus(a.Name), nil
}

// systemdRunning reports whether the host was booted with systemd and
// systemctl is available (the check sd_booted(3) does).
func systemdRunning() bool {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return false
	}
	_, err := exec.LookPath("systemctl")
	return err == nil
}

func systemdStatus(ctx context.Context, name string) (*ServiceStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemctl", "show", "--no-pager",
		"--property=ActiveState,SubState,MainPID,LoadState", "--", name)
	cmd.Env = []string{"PATH=" + defaultPath, "LANG=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			props[k] = v
		}
	}
	if _, ok := props["ActiveState"]; !ok {
		return nil, errors.New("systemctl show: no ActiveState in output")
	}
	st := &ServiceStatus{
		Name:      name,
		State:     props["ActiveState"],
		SubState:  props["SubState"],
		LoadState: props["LoadState"],
		Source:    "systemd",
	}
	st.Active = st.State == "active" || st.State == "reloading"
	st.MainPid, _ = strconv.Atoi(props["MainPID"])
	return st, nil
}

// sysvStatus looks for pid files and an init script.
func sysvStatus(name string) *ServiceStatus {
	st := &ServiceStatus{Name: name, State: "unknown", Source: "none"}
	candidates := []string{
		"/run/" + name + ".pid",
		"/run/" + name + "/" + name + ".pid",
		"/var/run/" + name + ".pid",
		"/var/run/" + name + "/" + name + ".pid",
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		st.Source = "pidfile"
		if processAlive(pid) {
			st.Active, st.State, st.SubState, st.MainPid = true, "active", "running", pid
			return st
		}
		st.State, st.SubState = "inactive", "dead"
		// keep looking: another candidate may be live
	}
	if st.Source == "pidfile" {
		return st
	}
	if fi, err := os.Stat("/etc/init.d/" + name); err == nil && !fi.IsDir() {
		st.Source = "initd"
		st.State, st.SubState = "inactive", "dead"
		st.LoadState = "loaded"
		return st
	}
	st.LoadState = "not-found"
	return st
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
