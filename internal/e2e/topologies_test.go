package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/topology"
)

// Through each topology: masters on the hub, real peels on the client URLs
// (leaf nodes where there are some), a ping and a fact update.
func TestTopologies_PingAndFacts(t *testing.T) {
	for _, tc := range []struct {
		kind string
		o    topology.Options
	}{
		{"cluster", topology.Options{}},
		{"leaf", topology.Options{Leafs: 3}},
		{"supercluster", topology.Options{Clusters: 2, Leafs: 1}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			tp := testkit.Topology(t, tc.kind, tc.o)
			mastertest.Start(t, mastertest.TopologyConfig("m1", tp))
			urls := tp.ClientURLs()
			var ids []string
			for i, u := range urls {
				id := fmt.Sprintf("%s-peel%d.example.com", tc.kind, i)
				ids = append(ids, id)
				peeltest.Start(t, peeltest.Config(t, id, u))
			}
			cli := urls[len(urls)-1]
			code, out, errOut := clitest.Zester(t, cli, "run", "--timeout", "15s", "*", "test.ping")
			if code != 0 || strings.Count(out, ": true") != len(ids) {
				t.Fatalf("ping via %s: exit %d\n%s\n%s", cli, code, out, errOut)
			}
			// A fact update travels peel → leaf/gateway → hub JetStream.
			nc, _ := nats.Connect(strings.Join(tp.HubURLs(), ","))
			defer nc.Close()
			js, _ := jetstream.New(nc)
			kv, err := js.KeyValue(context.Background(), names.BucketFacts)
			if err != nil {
				t.Fatal(err)
			}
			before, err := kv.Get(context.Background(), ids[0])
			if err != nil {
				t.Fatal(err)
			}
			code, out, _ = clitest.Zester(t, cli, "run", "-L", ids[0], "facts.refresh")
			if code != 0 {
				t.Fatalf("facts.refresh: %d %s", code, out)
			}
			after, err := kv.Get(context.Background(), ids[0])
			if err != nil || after.Revision() <= before.Revision() {
				t.Fatalf("facts not updated: rev %d → %v %v", before.Revision(), after, err)
			}
			st, _ := kv.Status(context.Background())
			if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != tp.Replicas() {
				t.Errorf("facts replicas %d, want %d", r, tp.Replicas())
			}
		})
	}
}

// A leaf node stops: its peel reconnects to another leaf and keeps answering.
func TestLeaf_StopLeaf_PeelMovesOn(t *testing.T) {
	tp := testkit.Topology(t, "leaf", topology.Options{Leafs: 3})
	mastertest.Start(t, mastertest.TopologyConfig("m1", tp))
	leafs := tp.ClientURLs()
	cfg := peeltest.Config(t, "roamer", leafs...)
	peeltest.Start(t, cfg)
	cli := tp.HubURLs()[0]
	if code, out, _ := clitest.Zester(t, cli, "run", "roamer", "test.ping"); code != 0 {
		t.Fatalf("ping: %d %s", code, out)
	}
	// Stop every leaf the peel might be on but one, in turn.
	servers := tp.Servers()
	for i, s := range servers {
		for _, l := range tp.Leafs() {
			if l == s && i != len(servers)-1 {
				tp.StopServer(i)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, _ := clitest.Zester(t, cli, "run", "--timeout", "3s", "roamer", "test.ping")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peel not back through the remaining leaf: %d %s", code, out)
		}
	}
}
