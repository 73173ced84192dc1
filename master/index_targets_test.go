package master_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/shard"
)

// indexFacts is peel i's document in generation gen: OS, roles and a
// nested list vary by peel and change with the generation.
func indexFacts(i, gen int) string {
	oses := []string{"debian", "rocky", "ubuntu", "alpine"}
	roles := [][]string{{"web"}, {"db", "web"}, {}, {"cache"}}
	r, _ := json.Marshal(roles[(i+gen)%len(roles)])
	id := fmt.Sprintf("sim-%05d.dc1.example.com", i)
	return fmt.Sprintf(`{"id":%q,"os":{"id":%q,"id_like":%s},"roles":%s,"num":%d,"url":"http://h%d:80","disks":[{"sda":{"size":%d}},{"sdb":{}}],`+
		`"network":{"interfaces":{"eth0":{"ipv4":["10.0.%d.%d/16"]}},"addresses":["10.0.%d.%d"]}}`,
		id, oses[(i+gen)%len(oses)], map[bool]string{true: `["rhel"]`, false: `[]`}[(i+gen)%4 == 1], r, (i+gen)%5, i%3, i+7*gen,
		i>>8, i&255, i>>8, i&255)
}

// The first job on fact paths nobody targeted before selects exactly the
// peels whose documents match (as --batch matches them): with the index's
// default paths and without, after the facts change, after a restart
// (every document arrives before any target), and never a peel whose
// stored value is garbage or refused as JSON.
func TestJobs_FirstFactTarget_SelectsMatchingPeels(t *testing.T) {
	const n = 240
	url := testkit.Server(t).ClientURL()
	cfg := mastertest.Config("m1", url)
	cfg.Index.FactPaths = []string{}
	m := mastertest.Start(t, cfg)

	// Two ids the fleet does not run, with values no target may match.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	ghosts := map[string][]byte{
		"ghost-1.example.com": []byte("garbage"),
		"ghost-2.example.com": factcodec.Encode([]byte(`{"id":"ghost-2.example.com","os":{"id":"debian"},"roles":["web"],"x":1e400}`)),
	}
	for id, v := range ghosts {
		if _, err := kv.Put(ctx, names.FactsKey(id), v); err != nil {
			t.Fatal(err)
		}
	}

	var gen atomic.Int64
	f, err := simfleet.NewFleet(simfleet.FleetConfig{Peels: n, Conns: 2, Partitions: shard.DefaultPartitions, URLs: []string{url},
		ID:    func(i int) string { return fmt.Sprintf("sim-%05d.dc1.example.com", i) },
		Facts: func(i int, _ string, _ time.Time) []byte { return []byte(indexFacts(i, int(gen.Load()))) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if err := f.Connect(ctx, 0); err != nil {
		t.Fatal(err)
	}
	publish := func() {
		t.Helper()
		facts, err := f.EncodeFacts(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.PublishFacts(ctx, facts); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	testkit.Eventually(t, "m1 indexed the fleet", time.Minute, func() bool { return m.PeelCount() == n+len(ghosts) })

	// want is what each target selects, matching the documents as --batch does.
	want := func(kind target.Kind, expr string) []string {
		t.Helper()
		e, err := target.Parse(kind, expr, target.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := range n {
			id := fmt.Sprintf("sim-%05d.dc1.example.com", i)
			if s, err := target.SubjectFromJSON(id, []byte(indexFacts(i, int(gen.Load())))); err != nil {
				t.Fatal(err)
			} else if e.Match(s) {
				out = append(out, id)
			}
		}
		for id := range ghosts {
			// Neither has facts (garbage; a number JSON cannot hold).
			if e.Match(&target.MapSubject{PeelID: id}) {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return out
	}
	flag := map[target.Kind]string{target.KindFact: "-G", target.KindCompound: "-C"}
	// targeted runs a job and lists the peels it targeted: those that
	// returned and those offline (the ghosts never beat).
	targeted := func(kind target.Kind, expr string) []string {
		t.Helper()
		code, out, errOut := clitest.Zester(t, url, "run", "--json", "--timeout", "20s", flag[kind], expr, "test.ping")
		sum := clitest.LastSummary(t, out)
		if code != 0 && len(sum.Summary.Offline) == 0 && sum.Summary.Expected != 0 {
			t.Fatalf("%s %q: exit %d\n%s", flag[kind], expr, code, errOut)
		}
		got := slices.Clone(sum.Summary.Offline)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r struct {
				Peel string `json:"peel"`
			}
			if json.Unmarshal([]byte(line), &r) == nil && r.Peel != "" {
				got = append(got, r.Peel)
			}
		}
		sort.Strings(got)
		return got
	}
	targets := []struct {
		kind target.Kind
		expr string
	}{
		{target.KindFact, "roles:web"},
		{target.KindFact, "os:id:rocky"},
		{target.KindFact, "url:http://h1:*"},
		{target.KindFact, "disks:sdb"},
		{target.KindFact, "disks:0:sda:size:1*"},
		{target.KindCompound, "G@os:id_like:rhel or (G@num:3 and sim-000[0-4]*)"},
		{target.KindCompound, "G@os:id:debian and sim-001* and not S@10.0.0.0/28"},
		{target.KindCompound, "not G@roles:*"},
	}
	check := func(stage string) {
		t.Helper()
		for _, c := range targets {
			w := want(c.kind, c.expr)
			if len(w) == 0 {
				t.Fatalf("%s %q selects nobody: not a test", flag[c.kind], c.expr)
			}
			if got := targeted(c.kind, c.expr); !slices.Equal(got, w) {
				t.Errorf("%s: %s %q targeted %d peels, the documents match %d\n got %v\nwant %v", stage, flag[c.kind], c.expr, len(got), len(w), got, w)
			}
		}
	}
	check("first jobs on their paths")

	// Every peel's facts change: the cached values follow.
	gen.Store(1)
	publish()
	c0 := targets[0]
	testkit.Eventually(t, "the changed facts are indexed", 30*time.Second, func() bool {
		return slices.Equal(targeted(c0.kind, c0.expr), want(c0.kind, c0.expr))
	})
	check("after the facts changed")

	// A new master finds every document before any target: the first job
	// on each path scans them; then with the default paths extracted at
	// intake.
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, paths := range [][]string{{}, master.DefaultIndexFactPaths} {
		cfg := mastertest.Config("m1", url)
		cfg.Index.FactPaths = paths
		m := mastertest.Start(t, cfg)
		testkit.Eventually(t, "the new master indexed the fleet", time.Minute, func() bool { return m.PeelCount() == n+len(ghosts) })
		check(fmt.Sprintf("a new master with index.fact_paths %v", paths))
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}
