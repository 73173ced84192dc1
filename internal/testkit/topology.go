package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// Topology starts an in-process topology of kind ("cluster", "leaf" or
// "supercluster") with o, its stores in t.TempDir() and the partition
// mapping of shard.DefaultPartitions, waits until it is ready (a hang guard
// of 90 s: a fresh R3 cluster on a loaded machine is slow to elect) and shuts
// it down by t.Cleanup.
func Topology(t testing.TB, kind string, o topology.Options) *topology.Topology {
	t.Helper()
	o.Dir = t.TempDir()
	src, dst := names.PartitionMapping(shard.DefaultPartitions)
	o.Mappings = map[string]string{src: dst}
	start := map[string]func(topology.Options) (*topology.Topology, error){
		"cluster":      topology.StartCluster,
		"leaf":         topology.StartLeaf,
		"supercluster": topology.StartSuperCluster,
	}[kind]
	if start == nil {
		t.Fatalf("testkit.Topology: unknown kind %q", kind)
	}
	tp, err := start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := tp.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return tp
}
