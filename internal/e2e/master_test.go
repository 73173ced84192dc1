package e2e

// The master with real peels, in process: jobs through the CLI, presence,
// a store rebuilt under a running fleet, and every topology (cluster, leaf
// nodes, supercluster).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/topology"
)

// Rebuild without backup: the store is wiped under a running fleet. The
// master notices and stops; a restarted master bootstraps the empty store;
// the peels put their facts back within seconds, not a fact interval, and
// jobs run again. Only history is lost.
func TestRebuild_WipedStore_PeelsRepublishInSeconds(t *testing.T) {
	dir := t.TempDir()
	s := testkit.ServerIn(t, dir)
	url := s.ClientURL()
	h := mastertest.Start(t, mastertest.Config("m1", url))
	for _, id := range []string{"a.example.com", "b.example.com"} {
		peeltest.Start(t, peeltest.Config(t, id, url)) // facts_interval is 5m
	}
	if code, out, _ := clitest.Zester(t, url, "run", "*", "test.ping"); code != 0 {
		t.Fatalf("ping before: %d %s", code, out)
	}
	s.Shutdown()
	if err := os.RemoveAll(filepath.Join(dir, "nats")); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	wiped := time.Now()
	select {
	case <-h.Exited():
		if err := h.Err(); err == nil || !strings.Contains(err.Error(), "wiped") {
			t.Fatalf("master stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("master did not notice the wiped store")
	}
	mastertest.Start(t, mastertest.Config("m1", url))
	js := testkit.JetStream(t, url)
	kv, err := js.KeyValue(context.Background(), names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	back := testkit.Eventually(t, "facts back", 30*time.Second, func() bool {
		_, e1 := kv.Get(context.Background(), "a.example.com")
		_, e2 := kv.Get(context.Background(), "b.example.com")
		return e1 == nil && e2 == nil
	})
	t.Logf("REBUILD: both peels' facts back %s after the master bootstrapped (%s after the wipe)", back, time.Since(wiped))
	testkit.Eventually(t, "ping after rebuild", 60*time.Second, func() bool {
		code, _, _ := clitest.Zester(t, url, "run", "--timeout", "3s", "*", "test.ping")
		return code == 0
	})
	if code, out, _ := clitest.Zester(t, url, "job", "list"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("history after rebuild should hold only the new job:\n%s", out)
	}
}

func TestMaster_Ping_TwoPeels(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "web1.example.com", url))
	peeltest.Start(t, peeltest.Config(t, "web2", url))

	code, out, errOut := clitest.Zester(t, url, "run", "--timeout", "10s", "*", "test.ping")
	if code != 0 {
		t.Fatalf("run exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"web1.example.com: true", "web2: true", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// JSON mode: one object per return, then a summary.
	code, out, _ = clitest.Zester(t, url, "run", "--json", "-L", "web2", "test.echo", "hello")
	if code != 0 {
		t.Fatalf("echo exit %d: %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out)
	}
	var r wire.Return
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.Peel != "web2" || string(r.Result) != `"hello"` {
		t.Fatalf("return %q: %v", lines[0], err)
	}
	// Jobs, returns and events are recorded.
	info := testkit.StreamInfo(t, testkit.JetStream(t, url), names.StreamJobEvents)
	if info.State.Msgs < 4 {
		t.Errorf("job-events holds %d events, want created+running+done per job", info.State.Msgs)
	}
	// Peels, facts.
	code, out, _ = clitest.Zester(t, url, "peels")
	if code != 0 || !strings.Contains(out, "web1.example.com") || !strings.Contains(out, "2 peels") {
		t.Fatalf("peels: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "facts", "web2")
	if code != 0 || !strings.Contains(out, `"kernel"`) {
		t.Fatalf("facts: %d %s", code, out)
	}
	// Shell completion of peel ids comes from the facts bucket.
	code, out, _ = clitest.Zester(t, url, "__complete", "facts", "web")
	if code != 0 || !strings.Contains(out, "web1.example.com\n") || !strings.Contains(out, "web2\n") {
		t.Fatalf("completion: %d %q", code, out)
	}
	// An unknown function: a clear error in the return, exit 1.
	code, out, _ = clitest.Zester(t, url, "run", "web2", "no.such")
	if code != 1 || !strings.Contains(out, "unknown_function") {
		t.Fatalf("unknown function: exit %d\n%s", code, out)
	}
	// A target that does not parse never reaches a master.
	code, _, errOut = clitest.Zester(t, url, "run", "-E", "web(", "test.ping")
	if code != 3 || !strings.Contains(errOut, "column") {
		t.Fatalf("bad target: exit %d %s", code, errOut)
	}
}

func TestMaster_Run_NamesMissingPeel(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "alive", url))
	gone := peeltest.Start(t, peeltest.Config(t, "gone", url))
	if err := gone.Stop(); err != nil {
		t.Fatal(err)
	}
	// A peel stopped cleanly said goodbye: the job does not wait for it
	// (TestPresence_* has the rest) and lists it as offline.
	code, out, errOut := clitest.Zester(t, url, "run", "--timeout", "30s", "*", "test.ping")
	if code != 2 {
		t.Fatalf("want exit 2 (offline), got %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "offline (not sent, not waited for): gone") || !strings.Contains(out, "partial") || strings.Contains(out, "did not answer") {
		t.Fatalf("summary does not name the offline peel:\n%s", out)
	}
}

func TestMaster_CmdRun_NonZeroExitIsFailure(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "web1", url))
	code, out, _ := clitest.Zester(t, url, "run", "web1", "cmd.run", "echo partial output; exit 3")
	if code != 1 || !strings.Contains(out, "exited with status 3") || !strings.Contains(out, "partial output") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// A peel that stops cleanly says goodbye: it is offline at once, not after
// offline_after. Offline can only come from the goodbye here: offline_after
// and the beat interval are a minute.
func TestPresence_CleanStop_OfflineAtOnce(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	cfg := mastertest.Config("m1", url)
	cfg.Presence.OfflineAfter = config.Dur(time.Minute)
	mastertest.Start(t, cfg)
	pc := peeltest.Config(t, "web1", url)
	pc.BeatInterval = config.Dur(time.Minute)
	p := peeltest.Start(t, pc)
	peeltest.Start(t, peeltest.Config(t, "web2", url))
	testkit.Eventually(t, "web1 online", 30*time.Second, func() bool { return clitest.PeelState(t, url, "web1") == wire.PresenceOnline })

	stopped := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	took := testkit.Eventually(t, "web1 offline", 30*time.Second, func() bool { return clitest.PeelState(t, url, "web1") == wire.PresenceOffline })
	t.Logf("clean stop: offline %s after Stop returned (%s after it was called)", took, time.Since(stopped))

	// The filters.
	off, on := clitest.Peels(t, url, "--offline"), clitest.Peels(t, url, "--online")
	if len(off) != 1 || off["web1"].ID == "" || len(on) != 1 || on["web2"].ID == "" {
		t.Fatalf("--offline %v, --online %v", off, on)
	}
	if on["web2"].LastSeen.IsZero() || on["web2"].Master != "m1" || on["web2"].Facts != wire.FactsOK {
		t.Fatalf("online row: %+v", on["web2"])
	}
	code, out, _ := clitest.Zester(t, url, "peels")
	if code != 0 || !strings.Contains(out, "2 peels: 1 online, 1 offline") || !strings.Contains(out, "LAST SEEN") {
		t.Fatalf("peels table: %d\n%s", code, out)
	}
	if code, _, errOut := clitest.Zester(t, url, "peels", "--online", "--offline"); code != 3 || !strings.Contains(errOut, "at most one") {
		t.Fatalf("--online --offline: %d %s", code, errOut)
	}
}

// A peel that dies without a goodbye is offline once offline_after (three
// beat intervals) passed without a beat, and online again when it beats.
func TestPresence_Killed_OfflineAfterThreeIntervals(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	const interval = time.Second
	cfg := mastertest.Config("m1", url)
	cfg.Presence.OfflineAfter = config.Dur(3 * interval)
	mastertest.Start(t, cfg)
	pc := peeltest.Config(t, "web1", url)
	pc.BeatInterval = config.Dur(interval)
	p := peeltest.Start(t, pc)
	testkit.Eventually(t, "web1 online", 30*time.Second, func() bool { return clitest.PeelState(t, url, "web1") == wire.PresenceOnline })
	// Beats keep it online past an offline_after window: follow its last
	// seen time through more beats than offline_after spans, and it must be
	// online at every look.
	first := clitest.Peels(t, url)["web1"].LastSeen
	beats := 0
	last := first
	testkit.Eventually(t, "web1 beating past offline_after", 30*time.Second, func() bool {
		row := clitest.Peels(t, url)["web1"]
		if row.State != wire.PresenceOnline {
			t.Fatalf("web1 %s while beating (last seen %s)", row.State, row.LastSeen)
		}
		if row.LastSeen.After(last) {
			beats++
			last = row.LastSeen
		}
		return beats >= 4 && last.Sub(first) > 3*interval
	})
	killed := time.Now()
	p.Kill()
	took := testkit.Eventually(t, "web1 offline", 30*time.Second, func() bool { return clitest.PeelState(t, url, "web1") == wire.PresenceOffline })
	row := clitest.Peels(t, url)["web1"]
	t.Logf("kill without goodbye: offline %s after the kill (interval %s, offline_after %s); last beat %s before the kill",
		took, interval, 3*interval, killed.Sub(row.LastSeen))
	if row.LastSeen.After(killed) {
		t.Fatalf("last seen %s after the kill at %s", row.LastSeen, killed)
	}
	if gap := time.Since(row.LastSeen); gap < 3*interval {
		t.Fatalf("offline %s after the last beat, before offline_after %s", gap, 3*interval)
	}
}

// A real peel whose facts key gets garbage publishes its facts again when
// the master asks, so the store heals by itself.
func TestPresence_CorruptFacts_RealPeelRepublishes(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	pc := peeltest.Config(t, "web1", url)
	pc.FactsInterval = config.Dur(time.Hour)
	peeltest.Start(t, pc)
	kv, _ := testkit.JetStream(t, url).KeyValue(context.Background(), names.BucketFacts)
	if _, err := kv.Put(context.Background(), names.FactsKey("web1"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "republished", 30*time.Second, func() bool {
		e, err := kv.Get(context.Background(), names.FactsKey("web1"))
		if err != nil {
			return false
		}
		doc, err := factcodec.Decode(e.Value())
		var f struct{ ID string }
		return err == nil && json.Unmarshal(doc, &f) == nil && f.ID == "web1"
	})
	testkit.Eventually(t, "facts ok", 30*time.Second, func() bool { return clitest.Peels(t, url)["web1"].Facts == wire.FactsOK })
	// The id fact targets it (Salt's grain "id").
	code, out, _ := clitest.Zester(t, url, "run", "-G", "id:web1", "test.ping")
	if code != 0 || !strings.Contains(out, "web1: true") {
		t.Fatalf("G@id: %d\n%s", code, out)
	}
}

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
