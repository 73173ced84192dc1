package topology

import (
	"slices"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/names"
)

// TestNormalize_Defaults: each step fills the defaults of its options, from
// what the steps before it decided (the leaf listener from the kind, a lab
// cluster's routes from the host and ports, a leaf's remotes from its hub's
// routes, a supercluster's routes from its gateways).
func TestNormalize_Defaults(t *testing.T) {
	pw := testSysPassword
	for _, tc := range []struct {
		name  string
		in    GenOptions
		check func(t *testing.T, g *GenOptions)
	}{
		{"single: names, store, ports, no leaf listener", GenOptions{Kind: KindSingle, SysPassword: pw}, func(t *testing.T, g *GenOptions) {
			if g.Name != "zester" || g.Cluster != ClusterName || g.Host != "0.0.0.0" || g.SysUser != DefaultSysUser {
				t.Errorf("names: %q %q %q %q", g.Name, g.Cluster, g.Host, g.SysUser)
			}
			if g.StoreDir != DefaultStoreDir || g.Compression != DefaultCompression || g.Partitions != names.DefaultPartitions {
				t.Errorf("server: %q %q %d", g.StoreDir, g.Compression, g.Partitions)
			}
			if g.Port != DefaultClientPort || g.Monitor != DefaultMonitorPort || g.ClusterPort != DefaultClusterPort || g.LeafPort != -1 {
				t.Errorf("ports: %d %d %d %d", g.Port, g.Monitor, g.ClusterPort, g.LeafPort)
			}
		}},
		{"cluster keeps the leaf listener", GenOptions{Kind: KindCluster, SysPassword: pw, Routes: []string{"a:6222", "b:6222"}}, func(t *testing.T, g *GenOptions) {
			if g.LeafPort != DefaultLeafPort {
				t.Errorf("LeafPort %d", g.LeafPort)
			}
		}},
		{"lab cluster: three nodes on one host", GenOptions{Kind: KindCluster, SysPassword: pw, Lab: true, ClusterPort: 16222}, func(t *testing.T, g *GenOptions) {
			want := []string{"127.0.0.1:16222", "127.0.0.1:16223", "127.0.0.1:16224"}
			if g.Nodes != 3 || !slices.Equal(g.Routes, want) {
				t.Errorf("nodes %d routes %v, want 3 and %v", g.Nodes, g.Routes, want)
			}
		}},
		{"leaf: one leaf, remotes on the hub's routes", GenOptions{Kind: KindLeaf, SysPassword: pw, Routes: []string{"h1:6222", "h2:6222"}}, func(t *testing.T, g *GenOptions) {
			want := []string{"nats-leaf://h1:7422", "nats-leaf://h2:7422"}
			if g.Leafs != 1 || !slices.Equal(g.LeafRemotes, want) {
				t.Errorf("leafs %d remotes %v, want 1 and %v", g.Leafs, g.LeafRemotes, want)
			}
		}},
		{"leaf with a one-node hub is a single hub", GenOptions{Kind: KindLeaf, SysPassword: pw, Routes: []string{"h1:6222"}, LeafRemotes: []string{"hub:7422"}}, func(t *testing.T, g *GenOptions) {
			if g.Routes != nil || !slices.Equal(g.LeafRemotes, []string{"nats-leaf://hub:7422"}) {
				t.Errorf("routes %v remotes %v", g.Routes, g.LeafRemotes)
			}
		}},
		{"supercluster: routes from the gateway hosts", GenOptions{Kind: KindSuperCluster, SysPassword: pw, Gateways: map[string][]string{"hub": {"h1:7222", "h2:7222"}, "east": {"e1:7222"}}}, func(t *testing.T, g *GenOptions) {
			if !slices.Equal(g.ClusterRoutes["hub"], []string{"h1:6222", "h2:6222"}) || !slices.Equal(g.ClusterRoutes["east"], []string{"e1:6222"}) {
				t.Errorf("cluster routes %v", g.ClusterRoutes)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			g, err := in.normalize()
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, g)
			if in.Name != tc.in.Name || in.Port != tc.in.Port || len(in.Routes) != len(tc.in.Routes) {
				t.Errorf("normalize changed its receiver: %+v", in)
			}
		})
	}
}

// TestNormalize_StepOrder: an option checked by a later step is not
// reported while an earlier step's option is wrong, so the error names the
// first problem in the documented order.
func TestNormalize_StepOrder(t *testing.T) {
	for _, tc := range []struct {
		in     GenOptions
		option string
	}{
		{GenOptions{Kind: "mesh", Port: 70000}, "Kind"},
		{GenOptions{Kind: KindSingle, SysUser: "bad user"}, "SysUser"},
		{GenOptions{Kind: KindSingle, SysPassword: testSysPassword, Compression: "zstd", Port: 70000}, "Compression"},
		{GenOptions{Kind: KindSingle, SysPassword: testSysPassword, Port: 70000, Leafs: 1}, "Port"},
		{GenOptions{Kind: KindSingle, SysPassword: testSysPassword, Leafs: 1, Routes: []string{"a:1"}}, "Leafs"},
		{GenOptions{Kind: KindSingle, SysPassword: testSysPassword, Routes: []string{"a:1"}, Monitor: 4222}, "Routes"},
		{GenOptions{Kind: KindSingle, SysPassword: testSysPassword, Monitor: 4222}, "Monitor"},
	} {
		_, err := tc.in.normalize()
		if err == nil || !strings.HasPrefix(err.Error(), "topology: "+tc.option+":") {
			t.Errorf("%+v: error %v, want one naming %s first", tc.in, err, tc.option)
		}
	}
}
