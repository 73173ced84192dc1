package topology

import (
	"fmt"
	"maps"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zester-io/zester/internal/names"
)

// normalize fills defaults and validates, naming the offending option. It
// runs the steps in order: each fills the defaults of its options and checks
// them, and may rely on what the steps before it filled in (the ports step
// on the kind, the nodes step on the ports).
func (o GenOptions) normalize() (*GenOptions, error) {
	g := o
	for _, step := range []func() error{
		g.normKind, g.normSecurity, g.normServer, g.normPorts, g.normLeafs, g.normDomains,
		g.normNodes, g.normLeafRemotes, g.normDistinctPorts,
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return &g, nil
}

// optErr is the error of a bad option.
func optErr(option, format string, args ...any) error {
	return fmt.Errorf("topology: %s: %s", option, fmt.Sprintf(format, args...))
}

// normKind checks the kind and fills the names, the host and the system
// user.
func (g *GenOptions) normKind() error {
	switch g.Kind {
	case KindSingle, KindCluster, KindLeaf, KindSuperCluster:
	case "":
		return optErr("Kind", "empty (want single, cluster, leaf or supercluster)")
	default:
		return optErr("Kind", "unknown kind %q (want single, cluster, leaf or supercluster)", g.Kind)
	}
	g.Name = orString(g.Name, "zester")
	g.Cluster = orString(g.Cluster, ClusterName)
	if g.Lab {
		if g.Kind != KindCluster {
			return optErr("Lab", "only for kind cluster (kind %s)", g.Kind)
		}
		g.Host = orString(g.Host, "127.0.0.1")
	} else if g.Nodes != 0 {
		return optErr("Nodes", "only for a lab cluster (set Lab); a production cluster's nodes are its Routes")
	}
	g.Host = orString(g.Host, "0.0.0.0")
	g.SysUser = orString(g.SysUser, DefaultSysUser)
	if !sysUserRE.MatchString(g.SysUser) {
		return optErr("SysUser", "%q: want letters, digits, '-' and '_'", g.SysUser)
	}
	return nil
}

// normSecurity checks operator mode, TLS and the system user's password.
func (g *GenOptions) normSecurity() error {
	if g.Operator != "" {
		if g.Account == "" {
			return optErr("Account", "empty: operator mode needs the Zester account's public key")
		}
		if g.LeafCreds == "" && (g.Kind == KindLeaf || g.Leafs > 0) {
			return optErr("LeafCreds", "empty: in operator mode the leaf nodes need credentials to dial their hub")
		}
	}
	if t := g.TLS; t != nil {
		for _, f := range []struct{ option, v string }{{"TLS.Cert", t.Cert}, {"TLS.Key", t.Key}, {"TLS.CA", t.CA}} {
			if f.v != "" && (!filepath.IsAbs(f.v) || strings.ContainsAny(f.v, "\"\\\n")) {
				return optErr(f.option, "%q must be an absolute path without quotes or backslashes", f.v)
			}
		}
		if t.Cert == "" || t.Key == "" {
			return optErr("TLS", "cert and key are required (the servers' own certificate)")
		}
		if t.VerifyClients && t.CA == "" {
			return optErr("TLS.VerifyClients", "needs TLS.CA")
		}
	}
	switch {
	case g.Operator != "":
	case g.SysPassword == "":
		return optErr("SysPassword", "empty: the system account's user %q needs a password (zester topology gen makes a random one unless --sys-password-file is given)", g.SysUser)
	case len(g.SysPassword) < 12:
		return optErr("SysPassword", "%d characters: want at least 12", len(g.SysPassword))
	case len(g.SysPassword) > 72:
		return optErr("SysPassword", "%d bytes: bcrypt takes at most 72", len(g.SysPassword))
	}
	return nil
}

// normServer fills and checks what every server has: store, compression,
// payload limit and the partition mapping.
func (g *GenOptions) normServer() error {
	g.StoreDir = orString(g.StoreDir, DefaultStoreDir)
	g.Compression = orString(g.Compression, DefaultCompression)
	for _, c := range []struct{ option, v string }{{"Name", g.Name}, {"Cluster", g.Cluster}} {
		if err := checkName(c.option, c.v); err != nil {
			return fmt.Errorf("topology: %w", err)
		}
	}
	if !validHost(g.Host) {
		return optErr("Host", "%q is not a host name or IP address", g.Host)
	}
	if !filepath.IsAbs(g.StoreDir) || strings.ContainsAny(g.StoreDir, "\"\\\n") {
		return optErr("StoreDir", "%q must be an absolute path without quotes or backslashes", g.StoreDir)
	}
	if !validCompression(g.Compression) {
		return optErr("Compression", "unknown mode %q (want one of %v)", g.Compression, compressionModes)
	}
	if g.MaxPayload < 0 || g.MaxPayload > MaxPayloadLimit {
		return optErr("MaxPayload", "%d out of range [0, %d]", g.MaxPayload, MaxPayloadLimit)
	}
	if g.Partitions == 0 {
		g.Partitions = names.DefaultPartitions
	}
	if g.Partitions < 1 || g.Partitions > math.MaxInt32 {
		return optErr("Partitions", "%d out of range [1, %d]", g.Partitions, math.MaxInt32)
	}
	if err := server.ValidateMapping(names.PartitionMapping(g.Partitions)); err != nil {
		return optErr("Partitions", "mapping rejected by nats-server: %v", err)
	}
	return nil
}

// normPorts fills the default ports (no leaf-node listener on a single
// server) and checks their range.
func (g *GenOptions) normPorts() error {
	var err error
	if g.Port, err = port("Port", g.Port, DefaultClientPort, false); err != nil {
		return err
	}
	if g.Monitor, err = port("Monitor", g.Monitor, DefaultMonitorPort, true); err != nil {
		return err
	}
	if g.ClusterPort, err = port("ClusterPort", g.ClusterPort, DefaultClusterPort, false); err != nil {
		return err
	}
	leafDefault := DefaultLeafPort
	if g.Kind == KindSingle {
		leafDefault = -1
	}
	if g.LeafPort, err = port("LeafPort", g.LeafPort, leafDefault, true); err != nil {
		return err
	}
	return nil
}

// normLeafs checks the leaf count and listener against the kind.
func (g *GenOptions) normLeafs() error {
	if g.Leafs < 0 {
		return optErr("Leafs", "%d is negative", g.Leafs)
	}
	switch g.Kind {
	case KindLeaf:
		if g.Leafs == 0 {
			g.Leafs = 1
		}
		if g.LeafPort <= 0 {
			return optErr("LeafPort", "disabled, but kind leaf needs the hub's leaf-node listener")
		}
	case KindSuperCluster:
		if g.Leafs > 0 && g.LeafPort <= 0 {
			return optErr("LeafPort", "disabled, but Leafs is %d", g.Leafs)
		}
	default:
		if g.Leafs > 0 {
			return optErr("Leafs", "not used by kind %s (use kind leaf or supercluster)", g.Kind)
		}
	}
	if g.Kind != KindLeaf && len(g.LeafRemotes) > 0 {
		return optErr("LeafRemotes", "only used by kind leaf (supercluster leafs dial their cluster's hosts on LeafPort)")
	}
	return nil
}

// normDomains checks the JetStream domains of the hub and the leafs.
func (g *GenOptions) normDomains() error {
	if g.HubDomain != "" {
		if err := checkName("HubDomain", g.HubDomain); err != nil {
			return fmt.Errorf("topology: %w", err)
		}
	}
	if g.LeafJetStream {
		if g.Leafs == 0 {
			return optErr("LeafJetStream", "set, but there are no leafs")
		}
		if g.JetStreamDomain == "" {
			return optErr("JetStreamDomain", "required with LeafJetStream: a leaf running JetStream needs its own domain")
		}
		if err := checkName("JetStreamDomain", g.JetStreamDomain); err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		if g.HubDomain == "" {
			return optErr("HubDomain", "required with LeafJetStream: leaf clients reach the hub's JetStream only through its domain")
		}
		for i := 1; i <= g.Leafs; i++ {
			if g.leafDomain(i) == g.HubDomain {
				return optErr("JetStreamDomain", "leaf domain %q must differ from HubDomain", g.leafDomain(i))
			}
		}
	} else if g.JetStreamDomain != "" {
		return optErr("JetStreamDomain", "only for leaf nodes that run JetStream (set LeafJetStream), a leaf without JetStream has no domain")
	}
	return nil
}

// normNodes checks the node addresses of the kind: none for a single
// server, Routes for a cluster or a leaf hub, Gateways for a supercluster.
func (g *GenOptions) normNodes() error {
	switch g.Kind {
	case KindSingle:
		if len(g.Routes) > 0 {
			return optErr("Routes", "not used by kind single")
		}
	case KindCluster, KindLeaf:
		return g.normRoutes()
	case KindSuperCluster:
		return g.normGateways()
	}
	return nil
}

// normRoutes fills a lab cluster's routes (one host, consecutive ports) and
// checks every route address.
func (g *GenOptions) normRoutes() error {
	if g.Lab {
		if g.Nodes == 0 && len(g.Routes) == 0 {
			g.Nodes = 3
		}
		if len(g.Routes) == 0 {
			if g.Nodes < 2 {
				return optErr("Nodes", "%d: a lab cluster needs at least 2", g.Nodes)
			}
			for i := 0; i < g.Nodes; i++ {
				if g.ClusterPort+i > 65535 {
					return optErr("ClusterPort", "%d + %d nodes is past port 65535", g.ClusterPort, g.Nodes)
				}
				g.Routes = append(g.Routes, net.JoinHostPort(g.Host, strconv.Itoa(g.ClusterPort+i)))
			}
		} else if g.Nodes != 0 && g.Nodes != len(g.Routes) {
			return optErr("Nodes", "%d, but Routes has %d nodes", g.Nodes, len(g.Routes))
		}
		g.Nodes = len(g.Routes)
		if err := g.labPorts(); err != nil {
			return err
		}
	}
	if g.Kind == KindCluster && len(g.Routes) < 2 {
		return optErr("Routes", "kind cluster needs the route address of every node, at least 2 (got %d)", len(g.Routes))
	}
	if g.Kind == KindLeaf && len(g.Routes) == 1 {
		g.Routes = nil // a one-node hub is a single server
	}
	if err := checkAddrs("Routes", g.Routes); err != nil {
		return err
	}
	for i, r := range g.Routes {
		if g.Lab {
			break // labPorts checked every node's ports against every other's
		}
		_, p, _ := splitAddr(r)
		if err := distinctPorts(fmt.Sprintf("Routes[%d]", i), map[string]int{"Port": g.Port, "Monitor": g.Monitor, "LeafPort": g.LeafPort, "route": p}); err != nil {
			return err
		}
	}
	return nil
}

// normGateways checks a supercluster's gateways and fills each cluster's
// routes (the gateway hosts with ClusterPort unless ClusterRoutes gives
// them).
func (g *GenOptions) normGateways() error {
	if len(g.Routes) > 0 {
		return optErr("Routes", "not used by kind supercluster (see Gateways, ClusterRoutes and ClusterPort)")
	}
	if len(g.Gateways) < 2 {
		return optErr("Gateways", "kind supercluster needs at least 2 clusters (got %d)", len(g.Gateways))
	}
	for c := range g.ClusterRoutes {
		if _, ok := g.Gateways[c]; !ok {
			return optErr("ClusterRoutes", "cluster %q is not in Gateways", c)
		}
	}
	routes := map[string][]string{}
	var all []string
	for _, c := range slices.Sorted(maps.Keys(g.Gateways)) {
		gws := g.Gateways[c]
		if err := checkName("Gateways", c); err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		if len(gws) == 0 {
			return optErr("Gateways", "cluster %q has no gateway addresses", c)
		}
		if err := checkAddrs(fmt.Sprintf("Gateways[%q]", c), gws); err != nil {
			return err
		}
		all = append(all, gws...)
		if rs, ok := g.ClusterRoutes[c]; ok {
			if len(rs) != len(gws) {
				return optErr("ClusterRoutes", "cluster %q has %d routes for %d gateway addresses (one per node)", c, len(rs), len(gws))
			}
			if err := checkAddrs(fmt.Sprintf("ClusterRoutes[%q]", c), rs); err != nil {
				return err
			}
			routes[c] = slices.Clone(rs)
		} else {
			for _, a := range gws {
				h, _, _ := splitAddr(a)
				routes[c] = append(routes[c], net.JoinHostPort(h, strconv.Itoa(g.ClusterPort)))
			}
			if err := checkAddrs(fmt.Sprintf("Gateways[%q] (hosts with ClusterPort)", c), routes[c]); err != nil {
				return fmt.Errorf("%w; give ClusterRoutes for nodes sharing a host", err)
			}
		}
		for i := range gws {
			_, gp, _ := splitAddr(gws[i])
			_, rp, _ := splitAddr(routes[c][i])
			if err := distinctPorts(fmt.Sprintf("Gateways[%q][%d]", c, i), map[string]int{"Port": g.Port, "Monitor": g.Monitor, "LeafPort": g.LeafPort, "route": rp, "gateway": gp}); err != nil {
				return err
			}
		}
	}
	if err := checkAddrs("Gateways", all); err != nil {
		return err
	}
	g.ClusterRoutes = routes
	return nil
}

// normLeafRemotes fills and normalises the URLs the leafs of kind leaf dial:
// the hub's route hosts on LeafPort unless given.
func (g *GenOptions) normLeafRemotes() error {
	if g.Kind == KindLeaf {
		if len(g.LeafRemotes) == 0 {
			if len(g.Routes) == 0 {
				return optErr("LeafRemotes", "required with a single hub: the URL(s) leaf nodes dial, e.g. nats-leaf://hub.example.com:%d", g.LeafPort)
			}
			for _, r := range g.Routes {
				h, _, _ := splitAddr(r)
				g.LeafRemotes = append(g.LeafRemotes, net.JoinHostPort(h, strconv.Itoa(g.LeafPort)))
			}
		}
		var norm []string
		for i, r := range g.LeafRemotes {
			u, err := leafURL(r)
			if err != nil {
				return optErr(fmt.Sprintf("LeafRemotes[%d]", i), "%v", err)
			}
			norm = append(norm, u)
		}
		g.LeafRemotes = norm
	}
	return nil
}

// normDistinctPorts: a server's client, monitoring and leaf ports differ.
func (g *GenOptions) normDistinctPorts() error {
	if g.Port == g.Monitor {
		return optErr("Monitor", "port %d is also Port", g.Monitor)
	}
	if g.LeafPort > 0 && (g.LeafPort == g.Port || g.LeafPort == g.Monitor) {
		return optErr("LeafPort", "port %d is also Port or Monitor", g.LeafPort)
	}
	return nil
}
