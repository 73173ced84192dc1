// Package chaos runs a JetStream cluster of real nats-server processes on
// loopback, for faults only a real process shows: kill -9 of a node (no
// clean shutdown, no lame duck, sockets reset by the kernel), restart on
// the same ports and store. It also finds where JetStream placed things
// (consumers, stream and meta leaders) and can move leaders, so a test can
// kill exactly the node that hurts.
//
// The nats-server binary is built once from the module's own dependency
// (BuildServer), so the processes run the version the masters are tested
// against.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// ServerPackage is the nats-server main package BuildServer builds.
const ServerPackage = "github.com/nats-io/nats-server/v2"

// BuildServer builds the nats-server binary of the module's go.mod into dir
// and returns its path.
func BuildServer(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ServerPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", ServerPackage, err, out)
	}
	return bin, nil
}

// Options describe a cluster.
type Options struct {
	// Bin is the nats-server binary (BuildServer).
	Bin string
	// Dir holds each node's config, store and log.
	Dir string
	// Nodes is the cluster size (default 3).
	Nodes int
	// Partitions sets the peel→master subject mapping (default 64).
	Partitions int
}

// Cluster is a running cluster of nats-server processes.
type Cluster struct {
	o       Options
	sysPass string
	nodes   []*Node
}

// Node is one nats-server process of a Cluster.
type Node struct {
	Name                string
	Port, Cluster, HTTP int
	dir, conf, logPath  string
	mu                  sync.Mutex
	cmd                 *exec.Cmd
	exited              chan struct{}
}

// URL is the node's client URL.
func (n *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// Running reports whether the node's process is up.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// LogTail is the end of the node's log (for failure messages).
func (n *Node) LogTail(max int) string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

func freePorts(n int) ([]int, error) { return topology.FreePorts(n) }

// Start writes the configs and starts every node, then waits until the
// JetStream cluster is formed (WaitFormed) or ctx ends.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Partitions == 0 {
		o.Partitions = shard.DefaultPartitions
	}
	if o.Bin == "" || o.Dir == "" {
		return nil, errors.New("chaos: Options.Bin and Options.Dir are required")
	}
	var pw [16]byte
	rand.Read(pw[:])
	c := &Cluster{o: o, sysPass: hex.EncodeToString(pw[:])}
	ports, err := freePorts(3 * o.Nodes)
	if err != nil {
		return nil, err
	}
	for i := 0; i < o.Nodes; i++ {
		n := &Node{Name: fmt.Sprintf("n%d", i+1), Port: ports[3*i], Cluster: ports[3*i+1], HTTP: ports[3*i+2]}
		n.dir = filepath.Join(o.Dir, n.Name)
		n.conf = filepath.Join(o.Dir, n.Name+".conf")
		n.logPath = filepath.Join(o.Dir, n.Name+".log")
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(n.conf, []byte(c.config(n)), 0o600); err != nil {
			return nil, err
		}
	}
	for i := range c.nodes {
		if err := c.startNode(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.WaitFormed(ctx); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// config is node n's nats-server configuration: one application account
// (clients without credentials land in it) with JetStream and the partition
// mapping, and a system account for the meta-leader operations.
func (c *Cluster) config(n *Node) string {
	var routes []string
	for _, o := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.Cluster))
	}
	src, dst := names.PartitionMapping(c.o.Partitions)
	return fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 4GB
}
cluster {
  name: zester
  listen: 127.0.0.1:%d
  routes: [%s]
}
accounts {
  SYS { users: [{user: sys, password: %q}] }
  APP {
    jetstream: enabled
    users: [{user: app, password: %q}]
    mappings { %q: %q }
  }
}
system_account: SYS
no_auth_user: app
`, n.Name, n.Port, n.HTTP, n.dir, n.Cluster, strings.Join(routes, ", "), c.sysPass, c.sysPass, src, dst)
}

func (c *Cluster) startNode(i int) error {
	n := c.nodes[i]
	log, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.o.Bin, "-c", n.conf)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a Ctrl-C of the test run does not reach it
	// twice, and Shutdown can kill it whatever happened to us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	// Up when its monitoring port answers.
	deadline := time.Now().Add(30 * time.Second)
	up := backoff.New(20*time.Millisecond, 500*time.Millisecond)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", n.HTTP))
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start:\n%s", n.Name, n.LogTail(4000))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: monitoring port not up within 30s:\n%s", n.Name, n.LogTail(4000))
		}
		time.Sleep(up.Next())
	}
}

// Nodes are the cluster's nodes, in order.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node named name (nil if none).
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// URLs are the client URLs of every node.
func (c *Cluster) URLs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.URL())
	}
	return out
}

// Kill sends SIGKILL to node n and waits until the process is gone.
func (c *Cluster) Kill(n *Node) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s: not started", n.Name)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	<-exited
	return nil
}

// Restart starts a killed node again on its ports and store.
func (c *Cluster) Restart(n *Node) error {
	if n.Running() {
		return fmt.Errorf("%s: still running", n.Name)
	}
	for i, o := range c.nodes {
		if o == n {
			return c.startNode(i)
		}
	}
	return fmt.Errorf("%s: not in this cluster", n.Name)
}

// Shutdown kills every node.
func (c *Cluster) Shutdown() {
	for _, n := range c.nodes {
		if n.Running() {
			c.Kill(n)
		}
	}
}

// jsz is the part of a node's /jsz that matters here.
type jsz struct {
	Meta *struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
}

func (c *Cluster) jsz(n *Node) (jsz, error) {
	var j jsz
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", n.HTTP))
	if err != nil {
		return j, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&j)
	return j, err
}

// WaitFormed waits until the meta leader counts every other node as a
// current, online peer: before that, creating an R3 stream can fail with
// "no suitable peers for placement".
func (c *Cluster) WaitFormed(ctx context.Context) error {
	for {
		if err := c.WaitMetaLeader(ctx, ""); err != nil {
			return err
		}
		var leader *Node
		for _, n := range c.nodes {
			if l, err := c.MetaLeader(n); err == nil && l != "" {
				leader = c.Node(l)
				break
			}
		}
		if leader != nil {
			if j, err := c.jsz(leader); err == nil && j.Meta != nil {
				current := 0
				for _, r := range j.Meta.Replicas {
					if r.Current && !r.Offline {
						current++
					}
				}
				if current == len(c.nodes)-1 {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not formed: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// MetaLeader is the meta leader as node n sees it ("" while there is none).
func (c *Cluster) MetaLeader(n *Node) (string, error) {
	j, err := c.jsz(n)
	if err != nil {
		return "", err
	}
	if j.Meta == nil {
		return "", nil
	}
	return j.Meta.Leader, nil
}

// WaitMetaLeader waits until every running node reports the same meta
// leader, one that is running (and is want, when want is set).
func (c *Cluster) WaitMetaLeader(ctx context.Context, want string) error {
	for {
		leader, ok := "", true
		for _, n := range c.nodes {
			if !n.Running() {
				continue
			}
			l, err := c.MetaLeader(n)
			if err != nil || l == "" || (leader != "" && l != leader) {
				ok = false
				break
			}
			leader = l
		}
		if ok && leader != "" && (want == "" || leader == want) {
			if ln := c.Node(leader); ln != nil && ln.Running() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("meta leader (want %q): %w", want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SystemConn connects to a running node as the system account user.
func (c *Cluster) SystemConn() (*nats.Conn, error) {
	var urls []string
	for _, n := range c.nodes {
		if n.Running() {
			urls = append(urls, n.URL())
		}
	}
	return nats.Connect(strings.Join(urls, ","), nats.UserInfo("sys", c.sysPass), nats.Name("chaos system"))
}

type stepdownRequest struct {
	Placement struct {
		Preferred string `json:"preferred"`
	} `json:"placement"`
}

type apiResponse struct {
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

func request(ctx context.Context, nc *nats.Conn, subj, preferred string) error {
	var req stepdownRequest
	req.Placement.Preferred = preferred
	b, _ := json.Marshal(req)
	msg, err := nc.RequestWithContext(ctx, subj, b)
	if err != nil {
		return err
	}
	var resp apiResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return errors.New(resp.Error.Description)
	}
	return nil
}

// MoveMetaLeader makes node name the meta leader (a stepdown with that
// preferred placement) and waits until every running node agrees.
func (c *Cluster) MoveMetaLeader(ctx context.Context, name string) error {
	for _, n := range c.nodes {
		if n.Running() {
			if l, _ := c.MetaLeader(n); l == name {
				return c.WaitMetaLeader(ctx, name)
			}
			break
		}
	}
	nc, err := c.SystemConn()
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := request(ctx, nc, "$JS.API.META.LEADER.STEPDOWN", name); err != nil {
		return fmt.Errorf("meta stepdown to %s: %w", name, err)
	}
	return c.WaitMetaLeader(ctx, name)
}

// MoveStreamLeader makes node name the leader of stream (a stepdown with that
// preferred placement) and waits until it is.
func MoveStreamLeader(ctx context.Context, js jetstream.JetStream, stream, name string) error {
	for {
		l, err := StreamLeader(ctx, js, stream)
		if err == nil && l == name {
			return nil
		}
		if err == nil && l != "" {
			if err := request(ctx, js.Conn(), "$JS.API.STREAM.LEADER.STEPDOWN."+stream, name); err != nil {
				return fmt.Errorf("stream %s stepdown to %s: %w", stream, name, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s led by %s: %w", stream, name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
