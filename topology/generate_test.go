package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
)

// writeFiles writes generated files into a new temp dir.
func writeFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestGenerateCheck(t *testing.T) {
	t.Parallel()
	bin := natsServerBinary(t)
	store := filepath.Join(t.TempDir(), "store")
	cases := []struct {
		name  string
		o     GenOptions
		files []string
		want  []string // substrings every JetStream server's file must contain
	}{
		{"single", GenOptions{Kind: "single"}, []string{"server.conf"},
			[]string{`server_name: "zester"`, "http_port: 8222", `"zester.in.*.>": "zester.inp.{{partition(64,1)}}.{{wildcard(1)}}.>"`}},
		{"single with leaf port, no monitor, payload", GenOptions{Kind: "single", Name: "solo", LeafPort: 7422, Monitor: -1, MaxPayload: 8 << 20, Partitions: 16}, []string{"server.conf"},
			[]string{"leafnodes {", "max_payload: 8388608", "partition(16,1)"}},
		{"cluster", GenOptions{Kind: "cluster", Routes: []string{"n1.example.com:6222", "n2.example.com:6222", "10.0.0.3:6222"}}, []string{"n1.conf", "n2.conf", "n3.conf"},
			[]string{`name: "zester"`, "nats-route://", "compression: s2_fast", "jetstream {"}},
		{"cluster, lab", GenOptions{Kind: "cluster", Lab: true}, []string{"n1.conf", "n2.conf", "n3.conf"},
			[]string{`listen: "127.0.0.1:42`, "(lab: every node on this host)", `nats-route://127.0.0.1:622`}},
		{"cluster, lab of 5, own routes", GenOptions{Kind: "cluster", Lab: true, Routes: []string{"127.0.0.1:16001", "127.0.0.1:16002", "127.0.0.1:16003", "127.0.0.1:16004", "127.0.0.1:16005"}, Port: 14222, Monitor: -1}, []string{"n1.conf", "n2.conf", "n3.conf", "n4.conf", "n5.conf"},
			[]string{`listen: "127.0.0.1:1422`, `nats-route://127.0.0.1:1600`}},
		{"cluster, compression off, no leafs", GenOptions{Kind: "cluster", Cluster: "prod", Routes: []string{"a:6222", "b:6222"}, Compression: "off", LeafPort: -1}, []string{"n1.conf", "n2.conf"},
			[]string{`name: "prod"`, "compression: off"}},
		{"leaf, single hub", GenOptions{Kind: "leaf", Leafs: 2, LeafRemotes: []string{"hub.example.com:7422"}}, []string{"hub.conf", "leaf-1.conf", "leaf-2.conf"},
			[]string{"default_js_domain", `"$G": ""`}},
		{"leaf, clustered hub", GenOptions{Kind: "leaf", Routes: []string{"h1:6222", "h2:6222", "h3:6222"}}, []string{"hub-n1.conf", "hub-n2.conf", "hub-n3.conf", "leaf-1.conf"},
			[]string{"leafnodes {"}},
		{"leaf, hub domain", GenOptions{Kind: "leaf", HubDomain: "zester", LeafRemotes: []string{"nats-leaf://hub:7422"}}, []string{"hub.conf", "leaf-1.conf"},
			[]string{"leafnodes {"}},
		{"leaf with own JetStream", GenOptions{Kind: "leaf", Leafs: 2, LeafJetStream: true, JetStreamDomain: "edge", HubDomain: "zester", LeafRemotes: []string{"hub:7422"}, Compression: "s2_better"},
			[]string{"hub.conf", "leaf-1.conf", "leaf-2.conf"}, []string{"jetstream {", "domain: ", "s2_better"}},
		{"supercluster", GenOptions{Kind: "supercluster", Gateways: map[string][]string{"hub": {"h1:7222", "h2:7222", "h3:7222"}, "east": {"e1:7222", "e2:7222", "e3:7222"}}},
			[]string{"hub-n1.conf", "hub-n2.conf", "hub-n3.conf", "east-n1.conf", "east-n2.conf", "east-n3.conf"}, []string{"gateway {", "cluster {", "no compression setting"}},
		{"supercluster with leafs", GenOptions{Kind: "supercluster", Leafs: 1, Gateways: map[string][]string{"hub": {"h1:7222", "h2:7222", "h3:7222"}, "east": {"e1:7222"}, "west": {"w1:7222"}}},
			[]string{"hub-n1.conf", "hub-n2.conf", "hub-n3.conf", "east-n1.conf", "west-n1.conf", "hub-leaf-1.conf", "east-leaf-1.conf", "west-leaf-1.conf"}, []string{"leafnodes {"}},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for _, c := range cases {
		c.o.StoreDir = store
		c.o.SysPassword = testSysPassword
		files, err := Generate(c.o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := slices.Sorted(func(yield func(string) bool) {
			for n := range files {
				if !yield(n) {
					return
				}
			}
		}); !slices.Equal(got, slices.Sorted(slices.Values(c.files))) {
			t.Fatalf("%s: files %v, want %v", c.name, got, c.files)
		}
		dir := writeFiles(t, files)
		for name, content := range files {
			want := c.want
			if strings.Contains(name, "leaf-") {
				want = []string{"leafnodes {", "remotes: [", "mappings {"}
				if !c.o.LeafJetStream && c.o.HubDomain == "" {
					want = append(want, `default_js_domain`)
				}
			}
			want = append(want, "system_account: SYS", `{ user: "sys", password: "$2a$`)
			for _, w := range want {
				if !strings.Contains(string(content), w) {
					t.Errorf("%s: %s lacks %q:\n%s", c.name, name, w, content)
				}
			}
			if strings.Contains(string(content), testSysPassword) {
				t.Errorf("%s: %s holds the system user's password in clear", c.name, name)
			}
			if c.o.HubDomain != "" && strings.Contains(string(content), "default_js_domain") {
				t.Errorf("%s: %s: default_js_domain with a hub domain", c.name, name)
			}
			path := filepath.Join(dir, name)
			// The stock server's own check (parses; warnings fail it too).
			wg.Go(func() {
				out, err := exec.Command(bin, "-t", "-c", path).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "is valid") {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: nats-server -t -c %s: %v\n%s\n%s", c.name, name, err, out, content))
					mu.Unlock()
				}
			})
			// Deeper: NewServer validates the options (compression modes,
			// leafnode/gateway system account, JetStream cluster settings)
			// without starting anything.
			opts, err := server.ProcessConfigFile(path)
			if err != nil {
				t.Errorf("%s: %s: %v", c.name, name, err)
				continue
			}
			opts.NoSigs = true
			if _, err := server.NewServer(opts); err != nil {
				t.Errorf("%s: %s: NewServer: %v\n%s", c.name, name, err, content)
			}
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
}

func TestGenerateErrors(t *testing.T) {
	t.Parallel()
	gw := map[string][]string{"hub": {"h1:7222"}, "east": {"e1:7222"}}
	cases := []struct {
		o      GenOptions
		option string
	}{
		{GenOptions{}, "Kind"},
		{GenOptions{Kind: "mesh"}, "Kind"},
		{GenOptions{Kind: "single", Name: "bad name"}, "Name"},
		{GenOptions{Kind: "single", Port: 70000}, "Port"},
		{GenOptions{Kind: "single", Monitor: 4222}, "Monitor"},
		{GenOptions{Kind: "single", StoreDir: "relative/dir"}, "StoreDir"},
		{GenOptions{Kind: "single", Compression: "zstd"}, "Compression"},
		{GenOptions{Kind: "single", Partitions: -1}, "Partitions"},
		{GenOptions{Kind: "single", MaxPayload: 1 << 30}, "MaxPayload"},
		{GenOptions{Kind: "single", Routes: []string{"a:6222"}}, "Routes"},
		{GenOptions{Kind: "single", Leafs: 1}, "Leafs"},
		{GenOptions{Kind: "single", Host: "not a host"}, "Host"},
		{GenOptions{Kind: "cluster"}, "Routes"},
		{GenOptions{Kind: "cluster", Routes: []string{"a:6222", "a:6222"}}, "Routes"},
		{GenOptions{Kind: "cluster", Routes: []string{"a", "b:6222"}}, "Routes"},
		{GenOptions{Kind: "cluster", Routes: []string{"a:4222", "b:4222"}}, "Routes[0]"},
		{GenOptions{Kind: "cluster", Cluster: "a.b", Routes: []string{"a:6222", "b:6222"}}, "Cluster"},
		{GenOptions{Kind: "leaf"}, "LeafRemotes"},
		{GenOptions{Kind: "leaf", LeafRemotes: []string{"http://hub:7422"}}, "LeafRemotes[0]"},
		{GenOptions{Kind: "leaf", LeafRemotes: []string{"hub:7422"}, LeafPort: -1}, "LeafPort"},
		{GenOptions{Kind: "leaf", LeafRemotes: []string{"hub:7422"}, JetStreamDomain: "edge"}, "JetStreamDomain"},
		{GenOptions{Kind: "leaf", LeafRemotes: []string{"hub:7422"}, LeafJetStream: true}, "JetStreamDomain"},
		{GenOptions{Kind: "leaf", LeafRemotes: []string{"hub:7422"}, LeafJetStream: true, JetStreamDomain: "edge"}, "HubDomain"},
		{GenOptions{Kind: "leaf", LeafRemotes: []string{"hub:7422"}, LeafJetStream: true, JetStreamDomain: "x", HubDomain: "x"}, "JetStreamDomain"},
		{GenOptions{Kind: "leaf", LeafRemotes: []string{"hub:7422"}, HubDomain: "a b"}, "HubDomain"},
		{GenOptions{Kind: "supercluster"}, "Gateways"},
		{GenOptions{Kind: "supercluster", Gateways: map[string][]string{"hub": {"h1:7222"}}}, "Gateways"},
		{GenOptions{Kind: "supercluster", Gateways: map[string][]string{"hub": {"h1:7222"}, "east": {}}}, "Gateways"},
		{GenOptions{Kind: "supercluster", Gateways: map[string][]string{"hub": {"h1:7222", "h1:7223"}, "east": {"e1:7222"}}}, "ClusterRoutes"},
		{GenOptions{Kind: "supercluster", Gateways: gw, ClusterRoutes: map[string][]string{"west": {"w:6222"}}}, "ClusterRoutes"},
		{GenOptions{Kind: "supercluster", Gateways: gw, ClusterRoutes: map[string][]string{"hub": {"h1:6222", "h2:6222"}}}, "ClusterRoutes"},
		{GenOptions{Kind: "supercluster", Gateways: gw, Routes: []string{"a:6222", "b:6222"}}, "Routes"},
		{GenOptions{Kind: "supercluster", Gateways: gw, LeafRemotes: []string{"a:7422"}}, "LeafRemotes"},
		{GenOptions{Kind: "supercluster", Gateways: gw, Leafs: 1, LeafPort: -1}, "LeafPort"},
		{GenOptions{Kind: "supercluster", Gateways: map[string][]string{"hub": {"h1:4222"}, "east": {"e1:7222"}}}, "Gateways"},
		{GenOptions{Kind: "single"}, "SysPassword"},
		{GenOptions{Kind: "single", SysPassword: "short"}, "SysPassword"},
		{GenOptions{Kind: "single", SysPassword: strings.Repeat("x", 73)}, "SysPassword"},
		{GenOptions{Kind: "single", SysUser: "bad user"}, "SysUser"},
		{GenOptions{Kind: "single", Lab: true}, "Lab"},
		{GenOptions{Kind: "leaf", Lab: true, LeafRemotes: []string{"hub:7422"}}, "Lab"},
		{GenOptions{Kind: "cluster", Routes: []string{"a:6222", "b:6222"}, Nodes: 2}, "Nodes"},
		{GenOptions{Kind: "cluster", Lab: true, Nodes: 1}, "Nodes"},
		{GenOptions{Kind: "cluster", Lab: true, Nodes: 3, Routes: []string{"127.0.0.1:6222", "127.0.0.1:6223"}}, "Nodes"},
		// Node 2's client port (4223) is node 1's route port.
		{GenOptions{Kind: "cluster", Lab: true, ClusterPort: 4223}, "Lab"},
		{GenOptions{Kind: "cluster", Lab: true, Port: 65534}, "Lab"},
		{GenOptions{Kind: "cluster", Lab: true, ClusterPort: 65534}, "ClusterPort"},
	}
	for _, c := range cases {
		if c.o.SysPassword == "" && c.option != "SysPassword" {
			c.o.SysPassword = testSysPassword
		}
		_, err := Generate(c.o)
		if err == nil {
			t.Errorf("%+v: no error, want one naming %s", c.o, c.option)
			continue
		}
		if !strings.Contains(err.Error(), c.option+":") && !strings.Contains(err.Error(), c.option+"[") && !strings.Contains(err.Error(), c.option+" ") {
			t.Errorf("%+v: error %q does not name %s", c.o, err, c.option)
		}
	}
}

// testSysPassword is the system user's password of generated test configs.
const testSysPassword = "test-sys-password-0123"

// A lab cluster's nodes share one host: each has its own client, monitoring,
// route and leaf port and its own store, and routes to the other nodes.
func TestGenerateLab_Layout(t *testing.T) {
	t.Parallel()
	files, err := Generate(GenOptions{Kind: "cluster", Lab: true, StoreDir: "/srv/lab", SysPassword: testSysPassword})
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, files)
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("n%d.conf", i+1)
		o, err := server.ProcessConfigFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := []any{o.Host, o.Port, o.HTTPPort, o.Cluster.Port, o.LeafNode.Port, o.StoreDir, len(o.Routes), o.SystemAccount}
		want := []any{"127.0.0.1", 4222 + i, 8222 + i, 6222 + i, 7422 + i, fmt.Sprintf("/srv/lab/n%d", i+1), 2, "SYS"}
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s: host, port, monitor, route, leaf, store, routes, system account = %v, want %v", name, got, want)
				break
			}
		}
		for _, r := range o.Routes {
			if r.Port() == strconv.Itoa(6222+i) {
				t.Errorf("%s routes to itself: %v", name, o.Routes)
			}
		}
	}
}

// freeRun finds n consecutive free loopback ports.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	base, err := FreePortRun(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// A generated lab cluster runs as written: three stock nats-server processes
// on one host, each with its own ports and store, form a JetStream cluster;
// clients without credentials use it (a replicated bucket); the system
// user's password (and only it) opens $SYS, which is what `nats server
// report jetstream` asks.
func TestGenerateLab_RunsAsProcesses(t *testing.T) {
	t.Parallel()
	bin := natsServerBinary(t)
	base := freeRun(t, 12)
	dir := t.TempDir()
	files, err := Generate(GenOptions{Kind: "cluster", Lab: true, StoreDir: filepath.Join(dir, "store"), SysPassword: testSysPassword,
		Port: base, Monitor: base + 3, ClusterPort: base + 6, LeafPort: base + 9})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		cmd := exec.Command(bin, "-c", filepath.Join(dir, fmt.Sprintf("n%d.conf", i)))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("n%d:\n%s", i, out.String())
			}
		})
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", base+1) // node 2
	nc := connect(t, url, nats.RetryOnFailedConnect(true))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 90*time.Second)
	var kv jetstream.KeyValue
	err = backoff.Retry(ctx, backoff.New(50*time.Millisecond, 2*time.Second), func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		if kv, err = js.CreateOrUpdateKeyValue(actx, jetstream.KeyValueConfig{Bucket: "lab", Replicas: 3}); err != nil {
			return err
		}
		_, err = kv.Put(actx, "k", []byte("v"))
		return err
	})
	if err != nil {
		t.Fatalf("R3 bucket on the lab cluster: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := os.Stat(filepath.Join(dir, "store", fmt.Sprintf("n%d", i), "jetstream")); err != nil {
			t.Errorf("node %d's own store: %v", i, err)
		}
	}

	// $SYS with the system user: every node answers a JetStream ping.
	sys := connect(t, url, nats.UserInfo(DefaultSysUser, testSysPassword))
	inbox := sys.NewInbox()
	replies, err := sys.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("JetStream ping through $SYS: answers from %v, want 3 servers", seen)
		}
		sys.PublishRequest("$SYS.REQ.SERVER.PING.JSZ", inbox, nil)
		for {
			m, err := replies.NextMsg(500 * time.Millisecond)
			if err != nil {
				break
			}
			var r struct {
				Server struct {
					Name string `json:"name"`
				} `json:"server"`
			}
			if json.Unmarshal(m.Data, &r) == nil && r.Server.Name != "" {
				seen[r.Server.Name] = true
			}
		}
	}
	// A wrong password is refused.
	if bad, err := nats.Connect(url, nats.UserInfo(DefaultSysUser, "wrong-password-xyz")); err == nil {
		bad.Close()
		t.Fatal("the system user connected with a wrong password")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("wrong password: %v, want an authorization error", err)
	}
}

// startConfigs starts servers from generated files on one machine: client
// ports random, monitoring off, a store per server; tune (optional) may
// change more.
func startConfigs(t *testing.T, dir string, names []string, tune func(name string, o *server.Options)) []*Server {
	t.Helper()
	servers := make([]*Server, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			opts, err := server.ProcessConfigFile(filepath.Join(dir, name))
			if err != nil {
				errs[i] = err
				return
			}
			opts.Port, opts.HTTPPort, opts.NoSigs = -1, 0, true
			opts.StoreDir = filepath.Join(dir, "store-"+strings.TrimSuffix(name, ".conf"))
			if tune != nil {
				tune(name, opts)
			}
			s := &Server{opts: opts}
			if errs[i] = s.start(); errs[i] == nil {
				servers[i] = s
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range servers {
			if s != nil {
				s.Shutdown()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
	}
	return servers
}

// TestGenerateRuns starts generated deployments (all on loopback) and uses
// them: what the config check cannot see, such as the leaf link letting the
// plain JetStream API through.
func TestGenerateRuns(t *testing.T) {
	t.Parallel()
	ports, err := freePorts(8) // leaf: 0; cluster: 1-3; supercluster: 4-7
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	t.Run("leaf", func(t *testing.T) {
		t.Parallel()
		files, err := Generate(GenOptions{Kind: "leaf", Host: "127.0.0.1", LeafPort: ports[0], LeafRemotes: []string{addr(0)}, Partitions: 8, SysPassword: testSysPassword})
		if err != nil {
			t.Fatal(err)
		}
		dir := writeFiles(t, files)
		hub := startConfigs(t, dir, []string{"hub.conf"}, nil)
		leaf := startConfigs(t, dir, []string{"leaf-1.conf"}, nil)
		top := &Topology{kind: KindLeaf, replicas: 1, nodes: []*node{{srv: hub[0]}, {srv: leaf[0], leaf: true}}, stopped: make([]bool, 2)}
		if err := top.WaitReady(ctxT(t, 60*time.Second)); err != nil {
			t.Fatal(err)
		}
		kvRoundTrip(t, top, leaf[0].ClientURL(), "genleaf")
		// The generated mapping: a peel publishing on the leaf reaches the
		// hub on its partition.
		master := connect(t, hub[0].ClientURL())
		sub, _ := master.SubscribeSync("zester.inp.>")
		master.Flush()
		h := fnv.New32a()
		h.Write([]byte("p1"))
		want := fmt.Sprintf("zester.inp.%d.p1.hello", h.Sum32()%8)
		peel := connect(t, leaf[0].ClientURL())
		deadline := time.Now().Add(60 * time.Second)
		for {
			peel.Publish("zester.in.p1.hello", nil)
			if m, err := sub.NextMsg(50 * time.Millisecond); err == nil {
				if m.Subject != want {
					t.Fatalf("mapped to %s, want %s", m.Subject, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no mapped message")
			}
		}
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		files, err := Generate(GenOptions{Kind: "cluster", Host: "127.0.0.1", LeafPort: -1, Routes: []string{addr(1), addr(2), addr(3)}, SysPassword: testSysPassword})
		if err != nil {
			t.Fatal(err)
		}
		ss := startConfigs(t, writeFiles(t, files), []string{"n1.conf", "n2.conf", "n3.conf"}, nil)
		top := &Topology{kind: KindCluster, replicas: 3, clusters: []string{ClusterName}, stopped: make([]bool, 3)}
		for _, s := range ss {
			top.nodes = append(top.nodes, &node{srv: s, cluster: ClusterName})
		}
		if err := top.WaitReady(ctxT(t, 60*time.Second)); err != nil {
			t.Fatal(err)
		}
		kvRoundTrip(t, top, ss[2].ClientURL(), "gencluster")
	})
	t.Run("supercluster", func(t *testing.T) {
		t.Parallel()
		// Two one-node clusters, each "host" its own loopback address so
		// that both can listen on the shared LeafPort, and a leaf each.
		ip := map[string]string{"hub": "127.0.0.1", "east": "127.0.0.2"}
		files, err := Generate(GenOptions{Kind: "supercluster", LeafPort: ports[4], Leafs: 1, SysPassword: testSysPassword,
			Gateways:      map[string][]string{"hub": {"127.0.0.1:" + fmt.Sprint(ports[5])}, "east": {"127.0.0.2:" + fmt.Sprint(ports[6])}},
			ClusterRoutes: map[string][]string{"hub": {"127.0.0.1:" + fmt.Sprint(ports[7])}, "east": {"127.0.0.2:" + fmt.Sprint(ports[7])}},
		})
		if err != nil {
			t.Fatal(err)
		}
		dir := writeFiles(t, files)
		onHost := func(name string, o *server.Options) {
			h := ip[strings.Split(name, "-")[0]]
			o.Host, o.Cluster.Host, o.Gateway.Host, o.LeafNode.Host = h, h, h, h
		}
		ss := startConfigs(t, dir, []string{"hub-n1.conf", "east-n1.conf"}, onHost)
		ls := startConfigs(t, dir, []string{"hub-leaf-1.conf", "east-leaf-1.conf"}, onHost)
		top := &Topology{kind: KindSuperCluster, replicas: 1, placement: "hub", clusters: []string{"hub", "east"}, stopped: make([]bool, 4),
			nodes: []*node{{srv: ss[0], cluster: "hub"}, {srv: ss[1], cluster: "east"}, {srv: ls[0], cluster: "hub", leaf: true}, {srv: ls[1], cluster: "east", leaf: true}}}
		if err := top.WaitReady(ctxT(t, 60*time.Second)); err != nil {
			t.Fatal(err)
		}
		kvRoundTrip(t, top, ss[1].ClientURL(), "gensuper")
		kvRoundTrip(t, top, ls[1].ClientURL(), "gensuper")
		expectDelivery(t, ss[0].ClientURL(), ls[1].ClientURL(), "zester.cmd.gen")
	})
}
