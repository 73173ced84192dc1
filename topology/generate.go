package topology

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/zester-io/zester/internal/names"
)

// Defaults of GenOptions.
const (
	DefaultStoreDir    = "/var/lib/zester/nats"
	DefaultClientPort  = 4222
	DefaultMonitorPort = 8222
	DefaultClusterPort = 6222
	DefaultLeafPort    = 7422
	DefaultCompression = server.CompressionS2Fast
	// MaxPayloadLimit is the largest GenOptions.MaxPayload: nats-server
	// refuses a max_payload above max_pending (64 MiB by default).
	MaxPayloadLimit = 64 << 20
)

// GenOptions describe a production deployment for Generate. Every server of
// the deployment runs on its own host, so all nodes share the client,
// monitoring, cluster and leaf ports; the per-node addresses come from
// Routes, Gateways and ClusterRoutes.
type GenOptions struct {
	// Kind is "single", "cluster", "leaf" or "supercluster".
	Kind string
	// Name is the server name of a single server and the prefix of every
	// other server name (<Name>-n1, <Name>-hub, <Name>-leaf-1,
	// <Name>-<cluster>-n1 …). Default "zester".
	Name string
	// Cluster is the cluster name of kind cluster and of a clustered leaf
	// hub. Default "zester".
	Cluster string
	// Host is the address every listener binds. Default "0.0.0.0".
	Host string
	// Port is the client port (default 4222).
	Port int
	// Monitor is the HTTP monitoring port (default 8222; -1 disables it).
	Monitor int
	// Routes are the route addresses (host:port) of every node of the
	// cluster, in node order, for kind cluster (at least 2) and for a
	// clustered hub of kind leaf (none or one: a single hub). Node i's config
	// listens on Routes[i]'s port and routes to the others.
	Routes []string
	// ClusterPort is the route port of every supercluster node (default
	// 6222), whose routes go to the other nodes' hosts (from Gateways) unless
	// ClusterRoutes gives them.
	ClusterPort int
	// ClusterRoutes optionally gives a supercluster's route addresses per
	// cluster, like Routes (same length as that cluster's Gateways entry).
	ClusterRoutes map[string][]string
	// Gateways are, for kind supercluster, the clusters (name → gateway
	// addresses host:port of its nodes, in node order). At least two.
	Gateways map[string][]string
	// LeafPort is the leaf-node listener of the JetStream servers of kinds
	// cluster, leaf and supercluster (default 7422; -1: none, only without
	// Leafs). Kind single listens for leafs only when it is set.
	LeafPort int
	// Leafs is the number of leaf-node configs: kind leaf (default 1) in
	// total, kind supercluster (default 0) per cluster.
	Leafs int
	// LeafRemotes are the URLs (nats-leaf://host:port, or host:port) the leaf
	// nodes of kind leaf dial. Default: every hub node's host with LeafPort;
	// required for a single hub (its address is not otherwise known).
	LeafRemotes []string
	// StoreDir is the JetStream store directory (default
	// /var/lib/zester/nats); absolute.
	StoreDir string
	// Partitions is the number of partitions of the peel→master mapping
	// (default 64); every server gets
	// mappings { "zester.in.*.>": "zester.inp.{{partition(N,1)}}.{{wildcard(1)}}.>" }.
	Partitions int
	// HubDomain is the JetStream domain of the JetStream (hub) servers; ""
	// for none. Without a domain, leafs without JetStream and their hub get
	// default_js_domain {"$G": ""} so that the plain JetStream API crosses
	// the leaf links (see the package doc); with one, leaf clients must use
	// it (jetstream.NewWithDomain). Required with LeafJetStream.
	HubDomain string
	// LeafJetStream runs JetStream on the leaf nodes too, in their own
	// domain: JetStreamDomain, suffixed "-<i>" when there are several leafs.
	LeafJetStream bool
	// JetStreamDomain is the leaf nodes' own JetStream domain, only (and
	// required) with LeafJetStream.
	JetStreamDomain string
	// Compression is the compression of routes and leaf-node links: "off",
	// "accept", "s2_uncompressed", "s2_fast" (default), "s2_better",
	// "s2_best" or "s2_auto" (the server's own leaf default, which an open
	// issue, nats-server #7037, reports spiralling in CPU/GC on leaf links).
	// nats-server v2.15 has no compression setting for gateways.
	Compression string
	// MaxPayload is the maximum message size in bytes (0: the server's
	// default, 1 MiB; at most MaxPayloadLimit).
	MaxPayload int
	// SysUser is the user of the system account that every server gets
	// (default "sys"): operator tools need it for $SYS requests, such as
	// `nats server report jetstream` and `nats server check stream`.
	SysUser string
	// SysPassword is SysUser's password; required. The files hold only its
	// bcrypt hash. Clients without credentials (masters, peels, the zester
	// CLI of an open deployment) still land in the global account.
	SysPassword string
	// Lab lays kind cluster out on one host, for a lab: node i (from 0)
	// listens on Port+i, Monitor+i and LeafPort+i, routes on ClusterPort+i
	// (unless Routes gives them), and keeps its store in StoreDir/n<i+1>.
	// Host defaults to 127.0.0.1.
	Lab bool
	// Nodes is the node count of a lab cluster without Routes (default 3).
	Nodes int
	// Operator, when set, puts every server in NATS operator mode: it is
	// the block pki.ServerConfig writes (the operator JWT, the system
	// account, a memory resolver preloaded with the account JWTs; no
	// secret). No client without credentials of that PKI connects. The
	// system account comes from it (SysUser and SysPassword are not used:
	// operators use the PKI's sys.creds), and the partition mapping from
	// the account JWT, so Partitions must match the PKI's.
	Operator string
	// Account is the Zester account's public key (operator mode): it names
	// the account in default_js_domain.
	Account string
	// LeafCreds is the path, on the leaf nodes' hosts, of the credentials
	// they dial their hub with (operator mode; pki.IssueLeaf).
	LeafCreds string
	// TLS, when set, turns on TLS for client connections, routes, leaf-node
	// listeners and remotes, and gateways, from files on every server's
	// host.
	TLS *GenTLS

	sysHash string // bcrypt hash of SysPassword, set by Generate
}

// GenTLS are the TLS files of generated configs, as paths on the servers'
// hosts (zester tls init writes ca.pem, server.pem, server-key.pem; the
// server certificate is also a client certificate, for routes, leaf links
// and gateways).
type GenTLS struct {
	CA, Cert, Key string
	// VerifyClients requires a client certificate of every client.
	VerifyClients bool
}

// DefaultSysUser is the default system account user of generated configs.
const DefaultSysUser = "sys"

// sysPasswordCost is the bcrypt cost of the system user's hash, that of
// `nats server passwd` (about 0.1 s, more under the race detector; the
// package's tests lower it).
var sysPasswordCost = 11

// Generate writes nats-server configuration files for a deployment: file name
// → content. Kind single: server.conf; cluster: n1.conf … nN.conf; leaf:
// hub.conf (or hub-n1.conf … for a clustered hub) and leaf-1.conf …;
// supercluster: <cluster>-n<i>.conf and <cluster>-leaf-<i>.conf.
func Generate(o GenOptions) (map[string][]byte, error) {
	g, err := o.normalize()
	if err != nil {
		return nil, err
	}
	if g.Operator == "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(g.SysPassword), sysPasswordCost)
		if err != nil {
			return nil, fmt.Errorf("topology: SysPassword: %w", err)
		}
		g.sysHash = string(hash)
	}
	files := map[string][]byte{}
	switch g.Kind {
	case KindSingle:
		files["server.conf"] = g.jsServer(jsNode{name: g.Name, leafListener: g.LeafPort > 0})
	case KindCluster:
		for i := range g.Routes {
			files[fmt.Sprintf("n%d.conf", i+1)] = g.jsServer(jsNode{name: fmt.Sprintf("%s-n%d", g.Name, i+1),
				cluster: g.Cluster, routes: g.Routes, self: g.Routes[i], leafListener: g.LeafPort > 0, lab: g.labNode(i)})
		}
	case KindLeaf:
		if len(g.Routes) == 0 {
			files["hub.conf"] = g.jsServer(jsNode{name: g.Name + "-hub", leafListener: true})
		} else {
			for i := range g.Routes {
				files[fmt.Sprintf("hub-n%d.conf", i+1)] = g.jsServer(jsNode{name: fmt.Sprintf("%s-hub-n%d", g.Name, i+1),
					cluster: g.Cluster, routes: g.Routes, self: g.Routes[i], leafListener: true})
			}
		}
		for i := 1; i <= g.Leafs; i++ {
			files[fmt.Sprintf("leaf-%d.conf", i)] = g.leafServer(fmt.Sprintf("%s-leaf-%d", g.Name, i), g.LeafRemotes, i)
		}
	case KindSuperCluster:
		names := slices.Sorted(maps.Keys(g.Gateways))
		for _, c := range names {
			routes := g.ClusterRoutes[c]
			for i := range g.Gateways[c] {
				_, gwPort, _ := splitAddr(g.Gateways[c][i])
				files[fmt.Sprintf("%s-n%d.conf", c, i+1)] = g.jsServer(jsNode{name: fmt.Sprintf("%s-%s-n%d", g.Name, c, i+1),
					cluster: c, routes: routes, self: routes[i], gateways: names, gatewayPort: gwPort, leafListener: g.LeafPort > 0})
			}
			var remotes []string
			for _, r := range routes {
				h, _, _ := splitAddr(r)
				remotes = append(remotes, "nats-leaf://"+net.JoinHostPort(h, strconv.Itoa(g.LeafPort)))
			}
			for i := 1; i <= g.Leafs; i++ {
				files[fmt.Sprintf("%s-leaf-%d.conf", c, i)] = g.leafServer(fmt.Sprintf("%s-%s-leaf-%d", g.Name, c, i), remotes, i)
			}
		}
	}
	return files, nil
}

// plainLeafJS: leafs without JetStream reach a hub without domain through
// default_js_domain (see the package doc), set on the leafs and on every
// JetStream server that listens for leafs.
func (g *GenOptions) plainLeafJS() bool {
	return !g.LeafJetStream && g.HubDomain == ""
}

func (g *GenOptions) header(w *confWriter, name, role string, l *labNode) {
	port, monitor := g.Port, g.Monitor
	if l != nil {
		port, monitor = l.port, l.monitor
	}
	w.line("# nats-server configuration for Zester, written by topology.Generate.")
	w.line("# Kind %s; this file: %s. Check with: nats-server -t -c <file>", g.Kind, role)
	w.line("")
	w.kv("server_name", quote(name))
	w.kv("listen", quote(net.JoinHostPort(g.Host, strconv.Itoa(port))))
	if monitor > 0 {
		w.kv("http_port", strconv.Itoa(monitor)) // on Host, like listen
	}
	if g.MaxPayload > 0 {
		w.kv("max_payload", strconv.Itoa(g.MaxPayload))
	}
	if g.TLS != nil {
		w.line("")
		w.line("# TLS for every client connection.")
		g.tlsBlock(w, g.TLS.VerifyClients)
	}
	if g.Operator != "" {
		g.operatorMode(w)
		return
	}
	g.sysAccount(w)
}

// operatorMode writes the PKI's operator block: every client needs a user
// JWT of the Zester or the system account.
func (g *GenOptions) operatorMode(w *confWriter) {
	w.line("")
	w.line("# NATS operator mode from the Zester PKI: no client connects without")
	w.line("# credentials of it (masters: master.creds, operators: admin.creds or")
	w.line("# zester pki user add, nats server report: sys.creds, peels: their own).")
	for _, l := range strings.Split(strings.TrimRight(g.Operator, "\n"), "\n") {
		w.line("%s", l)
	}
}

// tlsBlock writes a tls { } block from g.TLS (verify: require and check
// the peer's certificate).
func (g *GenOptions) tlsBlock(w *confWriter, verify bool) {
	w.open("tls")
	w.kv("cert_file", quote(g.TLS.Cert))
	w.kv("key_file", quote(g.TLS.Key))
	if g.TLS.CA != "" {
		w.kv("ca_file", quote(g.TLS.CA))
	}
	if verify {
		w.kv("verify", "true")
	}
	w.kv("timeout", "5")
	w.close()
}

// sysAccount gives the server a system account with one user. With only the
// global account and SYS defined and no authorization block, nats-server
// keeps admitting clients without credentials into the global account (it
// adds a no-auth user for it), so the deployment stays as open or as closed
// as it was; only $SYS needs the password.
func (g *GenOptions) sysAccount(w *confWriter) {
	w.line("")
	w.line("# System account, for operator tools that send $SYS requests:")
	w.line("#   nats --user %s --password \"$(cat sys-password)\" server report jetstream", g.SysUser)
	w.line("# This file holds only the password's bcrypt hash. Clients without")
	w.line("# credentials still use the global account.")
	w.open("accounts")
	w.open("SYS")
	w.line("users: [")
	w.depth++
	w.line("{ user: %s, password: %s }", quote(g.SysUser), quote(g.sysHash))
	w.depth--
	w.line("]")
	w.close()
	w.close()
	w.kv("system_account", "SYS")
}

// labNode is one node's own ports and store of a lab cluster.
type labNode struct {
	port, monitor, leafPort int
	storeDir                string
}

// labNode returns node i's layout in a lab cluster, nil otherwise.
func (g *GenOptions) labNode(i int) *labNode {
	if !g.Lab {
		return nil
	}
	l := &labNode{port: g.Port + i, monitor: -1, leafPort: -1, storeDir: filepath.Join(g.StoreDir, fmt.Sprintf("n%d", i+1))}
	if g.Monitor > 0 {
		l.monitor = g.Monitor + i
	}
	if g.LeafPort > 0 {
		l.leafPort = g.LeafPort + i
	}
	return l
}

func (g *GenOptions) mappings(w *confWriter) {
	if g.Operator != "" {
		// In operator mode an account's mappings come from its JWT (pki
		// init writes this one into the account JWT).
		return
	}
	w.line("")
	w.line("# Peel→master traffic, split into %d partitions (package shard computes the same).", g.Partitions)
	w.open("mappings")
	src, dst := names.PartitionMapping(g.Partitions)
	w.kv(quote(src), quote(dst))
	w.close()
}

func (g *GenOptions) plainJS(w *confWriter) {
	w.line("")
	w.line("# Let the plain JetStream API of the global account cross leaf-node links")
	w.line("# (needed on both ends; nats-server calls this option a temporary")
	w.line("# backwards-compatibility measure: re-check on upgrades).")
	w.open("default_js_domain")
	acc := server.DEFAULT_GLOBAL_ACCOUNT
	if g.Operator != "" {
		acc = g.Account
	}
	w.kv(quote(acc), quote(""))
	w.close()
}

// jsNode is one JetStream server of a deployment.
type jsNode struct {
	name         string
	cluster      string   // "" for a standalone server
	routes       []string // every node of the cluster
	self         string   // this node's entry in routes
	gateways     []string // supercluster: all cluster names, sorted
	gatewayPort  int
	leafListener bool
	lab          *labNode // own ports and store in a lab cluster
}

// jsServer writes one JetStream server's config.
func (g *GenOptions) jsServer(n jsNode) []byte {
	name, cluster, routes, self, gwNames, gwPort, leafListener := n.name, n.cluster, n.routes, n.self, n.gateways, n.gatewayPort, n.leafListener
	storeDir, leafPort := g.StoreDir, g.LeafPort
	if n.lab != nil {
		storeDir, leafPort = n.lab.storeDir, n.lab.leafPort
	}
	w := &confWriter{}
	role := "JetStream server " + name
	if cluster != "" {
		role += " of cluster " + cluster
	}
	if n.lab != nil {
		role += " (lab: every node on this host)"
	}
	g.header(w, name, role, n.lab)
	w.line("")
	w.open("jetstream")
	w.kv("store_dir", quote(storeDir))
	if g.HubDomain != "" {
		w.kv("domain", quote(g.HubDomain))
	}
	w.close()
	if cluster != "" {
		_, port, _ := splitAddr(self)
		w.line("")
		w.open("cluster")
		w.kv("name", quote(cluster))
		w.kv("listen", quote(net.JoinHostPort(g.Host, strconv.Itoa(port))))
		var peers []string
		for _, r := range routes {
			if r != self {
				peers = append(peers, "nats-route://"+r)
			}
		}
		if len(peers) == 0 { // a one-node cluster still needs a configured route
			peers = []string{"nats-route://" + self}
		}
		w.list("routes", peers)
		w.kv("compression", g.Compression)
		if g.TLS != nil {
			g.tlsBlock(w, true)
		}
		w.close()
	}
	if len(gwNames) > 0 {
		w.line("")
		w.line("# Gateways have no compression setting in nats-server v2.15.")
		w.open("gateway")
		w.kv("name", quote(cluster))
		w.kv("listen", quote(net.JoinHostPort(g.Host, strconv.Itoa(gwPort))))
		w.line("gateways: [")
		w.depth++
		for _, gn := range gwNames {
			var urls []string
			for _, a := range g.Gateways[gn] {
				urls = append(urls, quote("nats://"+a))
			}
			w.line("{ name: %s, urls: [%s] }", quote(gn), strings.Join(urls, ", "))
		}
		w.depth--
		w.line("]")
		if g.TLS != nil {
			g.tlsBlock(w, true)
		}
		w.close()
	}
	if leafListener {
		w.line("")
		w.open("leafnodes")
		w.kv("listen", quote(net.JoinHostPort(g.Host, strconv.Itoa(leafPort))))
		w.kv("compression", g.Compression)
		if g.TLS != nil {
			g.tlsBlock(w, g.TLS.VerifyClients)
		}
		w.close()
	}
	if leafListener && g.plainLeafJS() {
		g.plainJS(w)
	}
	g.mappings(w)
	return w.bytes()
}

// leafDomain is the JetStream domain of leaf i (1-based) with LeafJetStream.
func (g *GenOptions) leafDomain(i int) string {
	if g.Leafs > 1 {
		return g.JetStreamDomain + "-" + strconv.Itoa(i)
	}
	return g.JetStreamDomain
}

// leafServer is leaf node i (1-based) dialling remotes.
func (g *GenOptions) leafServer(name string, remotes []string, i int) []byte {
	w := &confWriter{}
	role := "leaf node " + name
	if !g.LeafJetStream {
		role += " (no JetStream: its clients use the hub's)"
	}
	g.header(w, name, role, nil)
	if g.LeafJetStream {
		w.line("")
		w.open("jetstream")
		w.kv("store_dir", quote(g.StoreDir))
		w.kv("domain", quote(g.leafDomain(i)))
		w.close()
	}
	w.line("")
	w.open("leafnodes")
	w.line("remotes: [")
	w.depth++
	var urls []string
	for _, r := range remotes {
		urls = append(urls, quote(r))
	}
	extra := ""
	if g.Operator != "" {
		// The link's own user: what any peel may send, for every peel id
		// (pki.LeafPermissions).
		extra += ", account: " + quote(g.Account) + ", credentials: " + quote(g.LeafCreds)
	}
	if g.TLS != nil {
		extra += ", tls: { " + "cert_file: " + quote(g.TLS.Cert) + ", key_file: " + quote(g.TLS.Key)
		if g.TLS.CA != "" {
			extra += ", ca_file: " + quote(g.TLS.CA)
		}
		extra += " }"
	}
	w.line("{ urls: [%s], compression: %s%s }", strings.Join(urls, ", "), g.Compression, extra)
	w.depth--
	w.line("]")
	w.close()
	if g.plainLeafJS() {
		g.plainJS(w)
	}
	g.mappings(w)
	return w.bytes()
}

var sysUserRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// labPorts checks a lab cluster's ports: every node's client, monitoring,
// leaf and route ports in range and all of them distinct, since the nodes
// share one host.
func (g *GenOptions) labPorts() error {
	owner := map[int]string{}
	use := func(node int, what string, p int) error {
		if p <= 0 {
			return nil
		}
		name := fmt.Sprintf("n%d %s", node+1, what)
		if p > 65535 {
			return fmt.Errorf("topology: Lab: %s port %d is past 65535", name, p)
		}
		if other, ok := owner[p]; ok {
			return fmt.Errorf("topology: Lab: port %d used by both %s and %s", p, other, name)
		}
		owner[p] = name
		return nil
	}
	for i, r := range g.Routes {
		l := g.labNode(i)
		_, rp, err := splitAddr(r)
		if err != nil {
			return fmt.Errorf("topology: Routes[%d]: %q is not host:port: %v", i, r, err)
		}
		for _, u := range []struct {
			what string
			p    int
		}{{"client", l.port}, {"monitor", l.monitor}, {"leaf", l.leafPort}, {"route", rp}} {
			if err := use(i, u.what, u.p); err != nil {
				return err
			}
		}
	}
	return nil
}

func orString(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// port applies the default (0) and checks the range; -1 disables when
// allowed.
func port(option string, v, def int, disable bool) (int, error) {
	if v == 0 {
		v = def
	}
	if v == -1 && disable {
		return -1, nil
	}
	if v < 1 || v > 65535 {
		return 0, fmt.Errorf("topology: %s: port %d out of range [1, 65535]", option, v)
	}
	return v, nil
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

func validHost(h string) bool {
	return net.ParseIP(h) != nil || (len(h) <= 253 && hostRE.MatchString(h))
}

func splitAddr(a string) (string, int, error) {
	h, ps, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	if !validHost(h) {
		return "", 0, fmt.Errorf("bad host %q", h)
	}
	return h, p, nil
}

// checkAddrs checks host:port addresses and that they are distinct.
func checkAddrs(option string, addrs []string) error {
	seen := map[string]bool{}
	for i, a := range addrs {
		if _, _, err := splitAddr(a); err != nil {
			return fmt.Errorf("topology: %s[%d]: %q is not host:port: %v", option, i, a, err)
		}
		if seen[a] {
			return fmt.Errorf("topology: %s: %q appears twice", option, a)
		}
		seen[a] = true
	}
	return nil
}

// distinctPorts checks that one node's listeners use different ports.
func distinctPorts(option string, ports map[string]int) error {
	by := map[int]string{}
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		p := ports[name]
		if p <= 0 {
			continue
		}
		if other, ok := by[p]; ok {
			return fmt.Errorf("topology: %s: port %d used by both %s and %s", option, p, other, name)
		}
		by[p] = name
	}
	return nil
}

// leafURL accepts host:port or a leaf URL.
func leafURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := splitAddr(s); err != nil {
			return "", fmt.Errorf("%q is not host:port or a URL: %v", s, err)
		}
		return "nats-leaf://" + s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "nats-leaf", "nats", "tls", "ws", "wss":
	default:
		return "", fmt.Errorf("%q: scheme %q (want nats-leaf, nats, tls, ws or wss)", s, u.Scheme)
	}
	if u.Host == "" || strings.ContainsAny(s, "\" \n") {
		return "", errors.New("bad URL " + strconv.Quote(s))
	}
	return s, nil
}

// quote writes a nats-server config string (validated input: no quotes,
// backslashes or newlines).
func quote(s string) string { return `"` + s + `"` }

// confWriter writes an indented nats-server config.
type confWriter struct {
	b     strings.Builder
	depth int
}

func (w *confWriter) line(format string, args ...any) {
	if format == "" {
		w.b.WriteString("\n")
		return
	}
	w.b.WriteString(strings.Repeat("  ", w.depth))
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	w.b.WriteString(format)
	w.b.WriteString("\n")
}

func (w *confWriter) kv(k, v string) { w.line("%s: %s", k, v) }

func (w *confWriter) open(name string) { w.line("%s {", name); w.depth++ }

func (w *confWriter) close() { w.depth--; w.line("}") }

func (w *confWriter) list(k string, vs []string) {
	w.line("%s: [", k)
	w.depth++
	for _, v := range vs {
		w.line("%s", quote(v))
	}
	w.depth--
	w.line("]")
}

func (w *confWriter) bytes() []byte { return []byte(w.b.String()) }
