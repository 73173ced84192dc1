package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ProcessConfig describes a nats-server with JetStream run as a child
// process (StartProcess): the fleet of a load run then gets this process's
// whole open-file limit, one socket per connection instead of two.
type ProcessConfig struct {
	// Bin is the nats-server binary (testbin.Path(testbin.NATSServer)
	// builds the module's own version).
	Bin string
	// Dir holds the config file, the store (Dir/store) and the log.
	Dir string
	// Name is the server name (default "single").
	Name string
	// MaxPayload overrides the maximum message size when > 0.
	MaxPayload int32
	// Profiling serves the server's net/http/pprof on a loopback port of
	// its own (nats-server's prof_port; ProfileURL), so that a load run can
	// take CPU profiles of the child.
	Profiling bool
}

// ProcessServer is a nats-server running in a child process on loopback,
// its ports fixed at start so that Restart binds the same ones.
type ProcessServer struct {
	cfg              ProcessConfig
	port, httpPort   int
	profPort         int
	conf, logPath    string
	mu               sync.Mutex
	cmd              *exec.Cmd
	exited           chan struct{}
	exitErr          error
	readyWithin      time.Duration
	shutdownDeadline time.Duration
}

// StartProcess writes the config and starts the server, returning once it
// answers as healthy with JetStream (or an error with the log's tail).
func StartProcess(ctx context.Context, c ProcessConfig) (*ProcessServer, error) {
	if c.Bin == "" || c.Dir == "" {
		return nil, errors.New("process server: Bin and Dir are required")
	}
	if c.Name == "" {
		c.Name = "single"
	}
	if !validName(c.Name) {
		return nil, fmt.Errorf("process server: bad name %q", c.Name)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	p := &ProcessServer{cfg: c, port: ports[0], httpPort: ports[1],
		conf: filepath.Join(c.Dir, c.Name+".conf"), logPath: filepath.Join(c.Dir, c.Name+".log"),
		readyWithin: time.Minute, shutdownDeadline: time.Minute}
	store := filepath.Join(c.Dir, "store")
	if err := os.MkdirAll(store, 0o750); err != nil {
		return nil, fmt.Errorf("process server: %w", err)
	}
	conf := fmt.Sprintf("server_name: %q\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\njetstream {\n  store_dir: %q\n}\n",
		c.Name, p.port, p.httpPort, store)
	if c.MaxPayload > 0 {
		conf += "max_payload: " + strconv.Itoa(int(c.MaxPayload)) + "\n"
	}
	if c.Profiling {
		p.profPort = ports[2]
		conf += "prof_port: " + strconv.Itoa(p.profPort) + "\n"
	}
	if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("process server: %w", err)
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *ProcessServer) start(ctx context.Context) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("process server: %w", err)
	}
	cmd := exec.Command(p.cfg.Bin, "-c", p.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("process server: start %s: %w", p.cfg.Bin, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	return p.waitHealthy(ctx, exited)
}

// waitHealthy polls the server's /healthz (JetStream included) until it
// answers 200, the process exits, or the wait runs out.
func (p *ProcessServer) waitHealthy(ctx context.Context, exited chan struct{}) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", p.httpPort)
	deadline := time.Now().Add(p.readyWithin)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("nats-server %s exited at start (%v): %s", p.cfg.Name, p.exitErr, p.LogTail(2000))
		case <-ctx.Done():
			p.Kill()
			return fmt.Errorf("nats-server %s not healthy: %w", p.cfg.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("nats-server %s not healthy after %s: %s", p.cfg.Name, p.readyWithin, p.LogTail(2000))
		}
	}
}

// Name is the server name.
func (p *ProcessServer) Name() string { return p.cfg.Name }

// ClientURL is the nats:// URL clients connect to.
func (p *ProcessServer) ClientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", p.port) }

// MonitorURL is the HTTP monitoring base URL.
func (p *ProcessServer) MonitorURL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.httpPort) }

// ProfileURL is the base URL of the server's /debug/pprof/ ("" without
// ProcessConfig.Profiling).
func (p *ProcessServer) ProfileURL() string {
	if p.profPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", p.profPort)
}

// PID is the process id of the running server (0 when stopped).
func (p *ProcessServer) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || !p.runningLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process is up.
func (p *ProcessServer) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked()
}

func (p *ProcessServer) runningLocked() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stop shuts the server down as the embedded Shutdown does (SIGTERM: the
// server closes its clients and flushes JetStream) and waits for the exit;
// a server still up after a minute is killed.
func (p *ProcessServer) Stop() {
	p.signal(syscall.SIGTERM, p.shutdownDeadline)
}

// Kill ends the process at once (SIGKILL) and waits for the exit.
func (p *ProcessServer) Kill() { p.signal(syscall.SIGKILL, p.shutdownDeadline) }

func (p *ProcessServer) signal(sig syscall.Signal, within time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil || exited == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server and starts it again on the same ports and store.
func (p *ProcessServer) Restart(ctx context.Context) error {
	p.Stop()
	return p.start(ctx)
}

// Varz is the part of the server's /varz a load run reports.
type Varz struct {
	InBytes     uint64 `json:"in_bytes"`
	OutBytes    uint64 `json:"out_bytes"`
	Connections int    `json:"connections"`
	Mem         int64  `json:"mem"`
}

// Varz reads the server's /varz.
func (p *ProcessServer) Varz(ctx context.Context) (Varz, error) {
	var v Varz
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MonitorURL()+"/varz", nil)
	if err != nil {
		return v, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return v, fmt.Errorf("varz of %s: %w", p.cfg.Name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("varz of %s: %w", p.cfg.Name, err)
	}
	return v, nil
}

// LogTail is the end of the server's log (for error messages).
func (p *ProcessServer) LogTail(max int) string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
