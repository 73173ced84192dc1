package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Topology kinds, as returned by (*Topology).Kind.
const (
	KindSingle       = "single"
	KindCluster      = "cluster"
	KindLeaf         = "leaf"
	KindSuperCluster = "supercluster"
)

// ClusterName is the cluster name of StartCluster and of a clustered
// StartLeaf hub.
const ClusterName = "zester"

// DefaultClusterNames are the cluster names of StartSuperCluster, in order;
// the first is the hub, where JetStream assets are placed. Clusters past the
// list are named "c6", "c7", ….
var DefaultClusterNames = []string{"hub", "east", "west", "north", "south"}

// DefaultLeafCompression is the compression used on leaf-node links unless
// Options.LeafCompression says otherwise. nats-server's own default for leaf
// links is s2_auto, which an open issue (nats-server #7037) reports can spiral
// in CPU and GC; an explicit mode avoids that.
const DefaultLeafCompression = server.CompressionS2Fast

// Options configure the in-process launchers.
type Options struct {
	// Dir holds every server's JetStream store, one sub-directory per server
	// (named after the server). Required.
	Dir string
	// Logger receives the servers' log lines, tagged with the server name;
	// nil keeps the servers quiet.
	Logger *slog.Logger
	// ClusterSize is the number of JetStream servers per cluster. Default 3
	// for StartCluster and StartSuperCluster; for StartLeaf the default (0 or
	// 1) is a single hub server, and > 1 makes the hub a cluster.
	ClusterSize int
	// Leafs is the number of leaf nodes (without JetStream): for StartLeaf
	// (default 1) in total, for StartSuperCluster (default 0) per cluster.
	Leafs int
	// Clusters is the number of clusters of StartSuperCluster (default 2).
	Clusters int
	// ClusterNames overrides DefaultClusterNames for StartSuperCluster.
	ClusterNames []string
	// JetStreamDomain, when set, is the JetStream domain of every JetStream
	// server, and clients of leaf nodes must use it (see "JetStream through
	// leaf nodes" in the package doc). Empty: no domain, and the plain
	// JetStream API works everywhere.
	JetStreamDomain string
	// Mappings are subject mappings (source → destination) installed in the
	// global account of every server, e.g. PartitionMapping(64).
	Mappings map[string]string
	// LeafCompression is the compression mode of leaf-node links (both the
	// hub's listener and the leafs' remotes): "off", "accept",
	// "s2_uncompressed", "s2_fast", "s2_better", "s2_best" or "s2_auto".
	// Default DefaultLeafCompression (s2_fast).
	LeafCompression string
	// RouteCompression is the compression mode of cluster routes (same
	// values). Default: the server's ("accept": compress only if the peer
	// asks). Gateways have no compression option in nats-server v2.15.
	RouteCompression string
	// Monitor gives every server an HTTP monitoring port (random, loopback).
	Monitor bool
	// MaxPayload overrides the servers' maximum message size when > 0.
	MaxPayload int32
	// Tune, when set, may change each server's options last (name is the
	// server name).
	Tune func(name string, o *server.Options)
}

// Topology is a started set of in-process servers: JetStream servers (a
// single one, a cluster or several clusters joined by gateways) and,
// optionally, leaf nodes without JetStream.
type Topology struct {
	kind      string
	domain    string
	placement string
	replicas  int
	clusters  []string // cluster names, hub first; nil for single/standalone hub
	nodes     []*node  // JetStream servers first (cluster by cluster), then leafs

	mu      sync.Mutex
	stopped []bool
}

type node struct {
	srv     *Server
	cluster string // cluster of a JetStream server, or the cluster a leaf is attached to
	leaf    bool
}

// Servers returns every server: the JetStream servers first, cluster by
// cluster (the hub first), then the leaf nodes. StopServer and RestartServer
// take an index into this slice.
func (t *Topology) Servers() []*Server {
	out := make([]*Server, len(t.nodes))
	for i, n := range t.nodes {
		out[i] = n.srv
	}
	return out
}

// Leafs returns the leaf nodes (no JetStream).
func (t *Topology) Leafs() []*Server {
	var out []*Server
	for _, n := range t.nodes {
		if n.leaf {
			out = append(out, n.srv)
		}
	}
	return out
}

// ClusterServers returns the JetStream servers of the named cluster ("" for
// the servers of a single or standalone hub).
func (t *Topology) ClusterServers(name string) []*Server {
	var out []*Server
	for _, n := range t.nodes {
		if !n.leaf && n.cluster == name {
			out = append(out, n.srv)
		}
	}
	return out
}

// ClusterLeafs returns the leaf nodes attached to the named cluster.
func (t *Topology) ClusterLeafs(name string) []*Server {
	var out []*Server
	for _, n := range t.nodes {
		if n.leaf && n.cluster == name {
			out = append(out, n.srv)
		}
	}
	return out
}

// Clusters returns the cluster names, the hub first (nil when there is no
// cluster).
func (t *Topology) Clusters() []string { return slices.Clone(t.clusters) }

// ClientURLs are the URLs peels and other clients connect to: the leaf
// nodes' when there are leafs, else every JetStream server's.
func (t *Topology) ClientURLs() []string {
	var out []string
	for _, s := range t.Leafs() {
		out = append(out, s.ClientURL())
	}
	if len(out) > 0 {
		return out
	}
	for _, n := range t.nodes {
		out = append(out, n.srv.ClientURL())
	}
	return out
}

// HubURLs are the client URLs of the hub's JetStream servers, where masters
// connect (for a supercluster, the servers of the Placement cluster).
func (t *Topology) HubURLs() []string {
	var out []string
	for _, s := range t.ClusterServers(t.hubCluster()) {
		out = append(out, s.ClientURL())
	}
	return out
}

func (t *Topology) hubCluster() string {
	if len(t.clusters) > 0 {
		return t.clusters[0]
	}
	return ""
}

// Domain is the JetStream domain of the hub's JetStream ("" for none). When
// set, clients of the leaf nodes must address it (jetstream.NewWithDomain);
// any client may.
func (t *Topology) Domain() string { return t.domain }

// JetStream returns a JetStream context on nc that reaches the hub's
// JetStream from any server of the topology, leaf nodes included: bound to
// Domain() when there is one.
func (t *Topology) JetStream(nc *nats.Conn, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	if t.domain == "" {
		return jetstream.New(nc, opts...)
	}
	return jetstream.NewWithDomain(nc, t.domain, opts...)
}

// Kind is "single", "cluster", "leaf" or "supercluster".
func (t *Topology) Kind() string { return t.kind }

// Replicas is the replica count JetStream assets (KV buckets, streams)
// should use here: 1 on a single server, min(ClusterSize, 3) on a cluster.
func (t *Topology) Replicas() int { return t.replicas }

// Placement is the cluster JetStream assets belong in: the hub cluster of a
// supercluster, "" elsewhere (no placement needed).
func (t *Topology) Placement() string { return t.placement }

// KeyValueConfig fills Replicas and Placement of cfg for this topology when
// they are unset.
func (t *Topology) KeyValueConfig(cfg jetstream.KeyValueConfig) jetstream.KeyValueConfig {
	if cfg.Replicas == 0 {
		cfg.Replicas = t.replicas
	}
	if cfg.Placement == nil && t.placement != "" {
		cfg.Placement = &jetstream.Placement{Cluster: t.placement}
	}
	return cfg
}

// StopServer stops server i of Servers() (fault injection). Its ports and
// store are kept for RestartServer.
func (t *Topology) StopServer(i int) error {
	if i < 0 || i >= len(t.nodes) {
		return fmt.Errorf("topology: server index %d out of range [0, %d)", i, len(t.nodes))
	}
	t.mu.Lock()
	t.stopped[i] = true
	t.mu.Unlock()
	t.nodes[i].srv.Shutdown()
	return nil
}

// RestartServer starts server i of Servers() again, on the same ports and
// store. It does not wait for the cluster to re-form: see WaitReady.
func (t *Topology) RestartServer(i int) error {
	if i < 0 || i >= len(t.nodes) {
		return fmt.Errorf("topology: server index %d out of range [0, %d)", i, len(t.nodes))
	}
	if err := t.nodes[i].srv.Restart(); err != nil {
		return err
	}
	t.mu.Lock()
	t.stopped[i] = false
	t.mu.Unlock()
	return nil
}

// Shutdown stops the leaf nodes first, then the clusters in reverse order
// (the hub last), the servers of one group in parallel.
func (t *Topology) Shutdown() {
	var leafs []*Server
	groups := map[string][]*Server{}
	for _, n := range t.nodes {
		if n.leaf {
			leafs = append(leafs, n.srv)
		} else {
			groups[n.cluster] = append(groups[n.cluster], n.srv)
		}
	}
	shutdownAll(leafs)
	for i := len(t.clusters) - 1; i >= 0; i-- {
		shutdownAll(groups[t.clusters[i]])
	}
	shutdownAll(groups[""])
}

func shutdownAll(ss []*Server) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(s.Shutdown)
	}
	wg.Wait()
}

// WaitReady waits until every server not stopped with StopServer is up and
// connected: routes formed, gateways connected, a JetStream meta leader
// elected that sees every running JetStream server, every JetStream server
// current with it, and every leaf node connected with the hub's JetStream API
// interest visible through its link.
func (t *Topology) WaitReady(ctx context.Context) error {
	var last error
	for {
		if last = t.ready(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topology %s not ready: %w (%v)", t.kind, last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (t *Topology) ready() error {
	t.mu.Lock()
	stopped := slices.Clone(t.stopped)
	t.mu.Unlock()

	up := map[string]int{} // running JetStream servers per cluster
	clustersUp := 0
	jsUp := 0
	for i, n := range t.nodes {
		if n.leaf || stopped[i] {
			continue
		}
		if !n.srv.Running() {
			return fmt.Errorf("%s not running", n.srv.Name())
		}
		if up[n.cluster] == 0 {
			clustersUp++
		}
		up[n.cluster]++
		jsUp++
	}
	clustered := len(t.clusters) > 0
	leaders := 0
	for i, n := range t.nodes {
		if n.leaf || stopped[i] {
			continue
		}
		ns := n.srv.NATS()
		if clustered {
			if got, want := ns.NumRemotes(), up[n.cluster]-1; got < want {
				return fmt.Errorf("%s: %d of %d routes", ns.Name(), got, want)
			}
			if want := clustersUp - 1; len(t.clusters) > 1 && ns.NumOutboundGateways() < want {
				return fmt.Errorf("%s: %d of %d gateways", ns.Name(), ns.NumOutboundGateways(), want)
			}
		}
		if !ns.JetStreamEnabled() {
			return fmt.Errorf("%s: JetStream not enabled yet", ns.Name())
		}
		if !ns.JetStreamIsCurrent() {
			return fmt.Errorf("%s: JetStream not current with the meta leader", ns.Name())
		}
		if clustered && ns.JetStreamIsLeader() {
			leaders++
			if got := len(ns.JetStreamClusterPeers()); got < jsUp {
				return fmt.Errorf("meta leader %s sees %d of %d JetStream servers", ns.Name(), got, jsUp)
			}
		}
	}
	if clustered && jsUp > 0 && leaders != 1 {
		return fmt.Errorf("%d JetStream meta leaders", leaders)
	}
	for i, n := range t.nodes {
		if !n.leaf || stopped[i] || up[n.cluster] == 0 {
			continue
		}
		ns := n.srv.NATS()
		if !n.srv.Running() {
			return fmt.Errorf("%s not running", n.srv.Name())
		}
		if ns.NumLeafNodes() < 1 {
			return fmt.Errorf("leaf %s not connected", ns.Name())
		}
		if !ns.GlobalAccount().SubscriptionInterest(t.apiInfoSubject()) {
			return fmt.Errorf("leaf %s: no JetStream API interest from the hub yet", ns.Name())
		}
	}
	return nil
}

func (t *Topology) apiInfoSubject() string {
	if t.domain == "" {
		return "$JS.API.INFO"
	}
	return "$JS." + t.domain + ".API.INFO"
}

// StartSingle starts one JetStream server.
func StartSingle(o Options) (*Topology, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	b := &builder{o: o}
	b.addJS("single", "", nil)
	return b.start(KindSingle, "", 1, nil)
}

// StartCluster starts a JetStream cluster named "zester" of o.ClusterSize
// servers (default 3), fully routed.
func StartCluster(o Options) (*Topology, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	size := orDefault(o.ClusterSize, 3)
	b := &builder{o: o}
	if err := b.addCluster(ClusterName, size, false, nil); err != nil {
		return nil, err
	}
	return b.start(KindCluster, "", min(size, 3), []string{ClusterName})
}

// StartLeaf starts a hub (one JetStream server, or a cluster "zester" when
// o.ClusterSize > 1) and o.Leafs (default 1) leaf nodes without JetStream
// connected to it in the global account, so that clients of a leaf use the
// hub's JetStream through the leaf link.
func StartLeaf(o Options) (*Topology, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	leafs := orDefault(o.Leafs, 1)
	b := &builder{o: o}
	var clusters []string
	replicas := 1
	if o.ClusterSize > 1 {
		if err := b.addCluster(ClusterName, o.ClusterSize, true, nil); err != nil {
			return nil, err
		}
		clusters = []string{ClusterName}
		replicas = min(o.ClusterSize, 3)
	} else {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		b.addJS("hub", "", func(so *server.Options) { b.leafListener(so, ports[0]) })
		b.leafPorts = map[string][]int{"": ports}
	}
	for i := 1; i <= leafs; i++ {
		b.addLeaf(fmt.Sprintf("leaf-%d", i), clusterOrEmpty(clusters))
	}
	return b.start(KindLeaf, "", replicas, clusters)
}

// StartSuperCluster starts o.Clusters (default 2) JetStream clusters of
// o.ClusterSize (default 3) servers, named "hub", "east", … and joined by
// gateways, one JetStream meta group over all of them; each cluster gets
// o.Leafs leaf nodes without JetStream. Placement() is "hub".
func StartSuperCluster(o Options) (*Topology, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	size := orDefault(o.ClusterSize, 3)
	nc := orDefault(o.Clusters, 2)
	if nc < 2 {
		return nil, fmt.Errorf("topology: Clusters: a supercluster needs at least 2 clusters, got %d", nc)
	}
	names := clusterNames(o.ClusterNames, nc)
	gwPorts := map[string][]int{}
	for _, name := range names {
		ps, err := freePorts(size)
		if err != nil {
			return nil, err
		}
		gwPorts[name] = ps
	}
	var gateways []*server.RemoteGatewayOpts
	for _, name := range names {
		gateways = append(gateways, &server.RemoteGatewayOpts{Name: name, URLs: loopbackURLs("nats", gwPorts[name])})
	}
	b := &builder{o: o}
	for _, name := range names {
		if err := b.addCluster(name, size, o.Leafs > 0, func(i int, so *server.Options) {
			// Leaf nodes and gateways together need an explicit system
			// account (config: accounts { $SYS {} }, system_account: $SYS).
			so.SystemAccount = server.DEFAULT_SYSTEM_ACCOUNT
			so.Accounts = append(so.Accounts, server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT))
			so.Gateway = server.GatewayOpts{Name: name, Host: "127.0.0.1", Port: gwPorts[name][i]}
			for _, g := range gateways {
				so.Gateway.Gateways = append(so.Gateway.Gateways, &server.RemoteGatewayOpts{Name: g.Name, URLs: cloneURLs(g.URLs)})
			}
		}); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		for i := 1; i <= o.Leafs; i++ {
			b.addLeaf(fmt.Sprintf("%s-leaf-%d", name, i), name)
		}
	}
	return b.start(KindSuperCluster, names[0], min(size, 3), names)
}

func clusterOrEmpty(clusters []string) string {
	if len(clusters) > 0 {
		return clusters[0]
	}
	return ""
}

func clusterNames(given []string, n int) []string {
	names := make([]string, n)
	for i := range names {
		switch {
		case i < len(given) && given[i] != "":
			names[i] = given[i]
		case i < len(DefaultClusterNames):
			names[i] = DefaultClusterNames[i]
		default:
			names[i] = "c" + strconv.Itoa(i+1)
		}
	}
	return names
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func (o Options) check() error {
	if o.Dir == "" {
		return errors.New("topology: Dir: empty (JetStream stores need a directory)")
	}
	if o.JetStreamDomain != "" && !validName(o.JetStreamDomain) {
		return fmt.Errorf("topology: JetStreamDomain: %q is not a valid domain (letters, digits, '-' and '_')", o.JetStreamDomain)
	}
	if o.ClusterSize < 0 || o.Leafs < 0 || o.Clusters < 0 {
		return errors.New("topology: ClusterSize, Leafs and Clusters must not be negative")
	}
	for _, c := range []struct{ name, mode string }{{"LeafCompression", o.LeafCompression}, {"RouteCompression", o.RouteCompression}} {
		if c.mode != "" && !validCompression(c.mode) {
			return fmt.Errorf("topology: %s: unknown compression mode %q (want one of %v)", c.name, c.mode, compressionModes)
		}
	}
	for src, dst := range o.Mappings {
		if err := server.ValidateMapping(src, dst); err != nil {
			return fmt.Errorf("topology: Mappings: %q → %q: %w", src, dst, err)
		}
	}
	seen := map[string]bool{}
	for _, n := range o.ClusterNames {
		if n == "" || !validName(n) {
			return fmt.Errorf("topology: ClusterNames: bad cluster name %q", n)
		}
		if seen[n] {
			return fmt.Errorf("topology: ClusterNames: duplicate %q", n)
		}
		seen[n] = true
	}
	return nil
}

// builder collects server configs, then starts them.
type builder struct {
	o         Options
	specs     []spec
	leafPorts map[string][]int // hub leaf listener ports per cluster ("" standalone hub)
	plainJS   bool             // set by start: leafs without a domain (see the package doc)
}

type spec struct {
	cfg     ServerConfig
	cluster string
	leaf    bool
}

func (b *builder) serverConfig(name string, js bool, tune func(*server.Options)) ServerConfig {
	cfg := ServerConfig{
		Name:        name,
		Listen:      "127.0.0.1:-1",
		NoJetStream: !js,
		MaxPayload:  b.o.MaxPayload,
	}
	if js {
		cfg.StoreDir = filepath.Join(b.o.Dir, name)
		cfg.JetStreamDomain = b.o.JetStreamDomain
	}
	if b.o.Monitor {
		cfg.Monitor = "127.0.0.1:-1"
	}
	if b.o.Logger != nil {
		cfg.Logger = b.o.Logger.With("nats", name)
	}
	mappings, user := b.o.Mappings, b.o.Tune
	cfg.Tune = func(so *server.Options) {
		if tune != nil {
			tune(so)
		}
		if len(mappings) > 0 {
			// Top-level mappings in a config file become a "$G" account in
			// Options.Accounts; the server copies it into its own global
			// account, so the same options can start the server again.
			g := server.NewAccount(server.DEFAULT_GLOBAL_ACCOUNT)
			for _, src := range slices.Sorted(maps.Keys(mappings)) {
				_ = g.AddMapping(src, mappings[src]) // validated in check
			}
			so.Accounts = append(so.Accounts, g)
		}
		if b.plainJS {
			// Let the plain JetStream API of the global account cross
			// leaf-node links (config: default_js_domain: {"$G": ""}); it
			// must be set on both ends of a link.
			so.JsAccDefaultDomain = map[string]string{server.DEFAULT_GLOBAL_ACCOUNT: ""}
		}
		if user != nil {
			user(name, so)
		}
	}
	return cfg
}

func (b *builder) addJS(name, cluster string, tune func(*server.Options)) {
	b.specs = append(b.specs, spec{cfg: b.serverConfig(name, true, tune), cluster: cluster})
}

func (b *builder) addLeaf(name, cluster string) {
	ports := b.leafPorts[cluster]
	mode := b.leafCompression()
	cfg := b.serverConfig(name, false, func(so *server.Options) {
		so.LeafNode.ReconnectInterval = 250 * time.Millisecond
		so.LeafNode.Remotes = []*server.RemoteLeafOpts{{
			URLs:        loopbackURLs("nats-leaf", ports),
			Compression: server.CompressionOpts{Mode: mode},
		}}
	})
	b.specs = append(b.specs, spec{cfg: cfg, cluster: cluster, leaf: true})
}

func (b *builder) leafCompression() string {
	if b.o.LeafCompression != "" {
		return b.o.LeafCompression
	}
	return DefaultLeafCompression
}

func (b *builder) leafListener(so *server.Options, port int) {
	so.LeafNode.Host = "127.0.0.1"
	so.LeafNode.Port = port
	so.LeafNode.Compression = server.CompressionOpts{Mode: b.leafCompression()}
}

// addCluster adds size JetStream servers named <cluster>-n<i> with routes to
// each other (every node gets the full route list, itself included, so a
// one-node cluster still has a configured route), and leaf listeners when
// withLeafs.
func (b *builder) addCluster(cluster string, size int, withLeafs bool, tune func(i int, so *server.Options)) error {
	routePorts, err := freePorts(size)
	if err != nil {
		return err
	}
	var leafPorts []int
	if withLeafs {
		if leafPorts, err = freePorts(size); err != nil {
			return err
		}
		if b.leafPorts == nil {
			b.leafPorts = map[string][]int{}
		}
		b.leafPorts[cluster] = leafPorts
	}
	routes := loopbackURLs("nats-route", routePorts)
	for i := range size {
		b.addJS(fmt.Sprintf("%s-n%d", cluster, i+1), cluster, func(so *server.Options) {
			so.Cluster.Name = cluster
			so.Cluster.Host = "127.0.0.1"
			so.Cluster.Port = routePorts[i]
			so.Cluster.Compression = server.CompressionOpts{Mode: b.o.RouteCompression}
			so.Routes = cloneURLs(routes)
			if withLeafs {
				b.leafListener(so, leafPorts[i])
			}
			if tune != nil {
				tune(i, so)
			}
		})
	}
	return nil
}

// start starts the JetStream servers in parallel (clustered JetStream only
// settles once its peers are up), then the leafs, and waits for WaitReady.
//
// A supercluster's meta group expects every server of every cluster (routes
// plus remote gateway URLs), so no cluster can elect on its own. Its servers
// campaign right after bootstrapping; when that happens before the gateways
// are up, the first leader waits for an election timeout (4-9 s): about half
// of the in-process superclusters are ready in ~0.3 s, the rest in ~5-7 s.
func (b *builder) start(kind, placement string, replicas int, clusters []string) (*Topology, error) {
	b.plainJS = b.o.JetStreamDomain == "" && slices.ContainsFunc(b.specs, func(sp spec) bool { return sp.leaf })
	t := &Topology{kind: kind, domain: b.o.JetStreamDomain, placement: placement, replicas: replicas, clusters: clusters}
	t.nodes = make([]*node, len(b.specs))
	t.stopped = make([]bool, len(b.specs))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	startGroup := func(want func(spec) bool) error {
		var wg sync.WaitGroup
		errs := make([]error, len(b.specs))
		for i, sp := range b.specs {
			if !want(sp) {
				continue
			}
			wg.Go(func() {
				s, err := StartServer(sp.cfg)
				if err != nil {
					errs[i] = fmt.Errorf("topology %s: server %s: %w", kind, sp.cfg.Name, err)
					return
				}
				t.nodes[i] = &node{srv: s, cluster: sp.cluster, leaf: sp.leaf}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	fail := func(err error) (*Topology, error) {
		var started []*node
		for _, n := range t.nodes {
			if n != nil {
				started = append(started, n)
			}
		}
		t.nodes = started
		t.Shutdown()
		return nil, err
	}
	if err := startGroup(func(sp spec) bool { return !sp.leaf }); err != nil {
		return fail(err)
	}
	if err := startGroup(func(sp spec) bool { return sp.leaf }); err != nil {
		return fail(err)
	}
	if err := t.WaitReady(ctx); err != nil {
		return fail(err)
	}
	return t, nil
}

// Port picking. Route, leaf and gateway ports must be known before the
// servers start (every node needs its peers' addresses), so they are picked
// here, then released and bound by the servers a moment later. To keep
// anything else from taking them in between, they come from below the
// kernel's ephemeral range (where client ports "-1" and outgoing
// connections' source ports live), and a port is handed out once per process.
var (
	portsMu     sync.Mutex
	portsGiven  = map[int]bool{}
	portsLo     = 10000
	portsHi     = ephemeralLow()
	portsRandom = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
)

// ephemeralLow is the start of the kernel's ephemeral port range.
func ephemeralLow() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil {
				return lo
			}
		}
	}
	return 32768
}

// FreePorts picks n distinct loopback TCP ports nothing listens on, for
// tests and tools that start servers as separate processes.
func FreePorts(n int) ([]int, error) { return freePorts(n) }

// FreePortRun finds n consecutive free loopback ports: a lab cluster's nodes
// use port, port+1, …. Like FreePorts it picks below the kernel's ephemeral
// range, where no outgoing connection or ":0" listener of a parallel test
// can take a port between this check and the caller's bind, and hands each
// port out once per process.
func FreePortRun(n int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	if n < 1 || portsHi-portsLo < 1000+n {
		return 0, fmt.Errorf("topology: no room for a run of %d ports in [%d, %d)", n, portsLo, portsHi)
	}
	for try := 0; try < 200; try++ {
		base := portsLo + portsRandom.IntN(portsHi-portsLo-n)
		var ls []net.Listener
		ok := true
		for p := base; p < base+n && ok; p++ {
			if portsGiven[p] {
				ok = false
				break
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			for p := base; p < base+n; p++ {
				portsGiven[p] = true
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("topology: no run of %d free loopback ports", n)
}

// freePorts picks n distinct loopback TCP ports nothing listens on.
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	ports := make([]int, 0, n)
	if portsHi-portsLo < 1000 { // odd ephemeral range: ask the kernel instead
		var ls []net.Listener
		defer func() {
			for _, l := range ls {
				l.Close()
			}
		}()
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("topology: picking a free port: %w", err)
			}
			ls = append(ls, l)
			ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		}
		return ports, nil
	}
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			return nil, fmt.Errorf("topology: no free port in [%d, %d) after %d tries", portsLo, portsHi, tries)
		}
		p := portsLo + portsRandom.IntN(portsHi-portsLo)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

func loopbackURLs(scheme string, ports []int) []*url.URL {
	out := make([]*url.URL, len(ports))
	for i, p := range ports {
		out[i] = &url.URL{Scheme: scheme, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	return out
}

func cloneURLs(us []*url.URL) []*url.URL {
	out := make([]*url.URL, len(us))
	for i, u := range us {
		c := *u
		out[i] = &c
	}
	return out
}
