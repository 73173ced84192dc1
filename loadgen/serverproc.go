package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/zester-io/zester/internal/testbin"
	"github.com/zester-io/zester/topology"
)

// --server-process: the run's single JetStream server is a nats-server in a
// child process (topology.ProcessServer) instead of in this one, so that
// every fleet connection costs this process one open file, not two: one
// connection per peel then reaches the whole open-file limit (about 19,000
// here) instead of half of it. Masters, fleet and control connection stay
// in this process and reach the child over loopback TCP.

var errServerProcessTopology = errors.New("--server-process runs one server: use it with --topology single, without --secure or --nats")

// serverBinary is the nats-server of go.mod: the one named by --nats-server-bin,
// or built once per module version and machine (internal/testbin's cache,
// shared with the tests that run real servers).
func serverBinary(given string) (string, error) {
	if given != "" {
		if st, err := os.Stat(given); err != nil || st.IsDir() {
			return "", fmt.Errorf("--nats-server-bin %s: not a file (%v)", given, err)
		}
		return given, nil
	}
	bin, err := testbin.Path(testbin.NATSServer)
	if err != nil {
		return "", fmt.Errorf("--server-process: building nats-server (run from the Zester module, or give --nats-server-bin): %w", err)
	}
	return bin, nil
}

func (e *env) startProcessServer(ctx context.Context) error {
	bin, err := serverBinary(e.cfg.ServerBin)
	if err != nil {
		return err
	}
	dir := filepath.Join(e.dir, "server")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	p, err := topology.StartProcess(ctx, topology.ProcessConfig{Bin: bin, Dir: dir, Profiling: e.cfg.CPUProfileDir != ""})
	if err != nil {
		return err
	}
	e.proc = p
	e.client, e.hub, e.replicas = []string{p.ClientURL()}, []string{p.ClientURL()}, 1
	return nil
}

// natsNode is what the reconnect scenario needs of a server.
type natsNode interface {
	Name() string
	ClientURL() string
}

// nodes are the run's servers (nil with --nats).
func (e *env) nodes() []natsNode {
	if e.proc != nil {
		return []natsNode{e.proc}
	}
	if e.topo == nil {
		return nil
	}
	var out []natsNode
	for _, s := range e.topo.Servers() {
		out = append(out, s)
	}
	return out
}

// restartNode restarts server i of nodes() on the same ports and store.
func (e *env) restartNode(ctx context.Context, i int) error {
	if e.proc != nil {
		return e.proc.Restart(ctx)
	}
	return e.topo.RestartServer(i)
}

// waitNodesReady waits until every server is back and ready.
func (e *env) waitNodesReady(ctx context.Context) error {
	if e.proc != nil {
		if !e.proc.Running() {
			return errors.New("the server process is not running")
		}
		return nil // Restart returned once it was healthy
	}
	return e.topo.WaitReady(ctx)
}

// procRSS is the child server's peak RSS (VmHWM) in bytes, 0 when unknown.
func (e *env) procRSS() int64 {
	if e.proc == nil || e.proc.PID() == 0 {
		return 0
	}
	return procField(fmt.Sprintf("/proc/%d/status", e.proc.PID()), "VmHWM")
}

func (e *env) procBytes() (in, out uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := e.proc.Varz(ctx)
	if err != nil {
		return 0, 0
	}
	return v.InBytes, v.OutBytes
}

// serverProfileChunk is the length of each CPU profile of the child server.
const serverProfileChunk = 15 * time.Second

// profileServer takes CPU profiles of the child server while ctx lasts, one
// per serverProfileChunk, into dir/server-cpu-<name>-<k>.pprof (merge them
// with go tool pprof a b c); the chunk cut short by ctx's end is dropped.
// It returns when ctx ends.
func (e *env) profileServer(ctx context.Context, dir, name string) {
	if e.proc == nil || e.proc.ProfileURL() == "" {
		return
	}
	url := fmt.Sprintf("%s/profile?seconds=%d", e.proc.ProfileURL(), int(serverProfileChunk/time.Second))
	for k := 1; ctx.Err() == nil; k++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return
		}
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("server-cpu-%s-%d.pprof", name, k)), b, 0o644)
	}
}
