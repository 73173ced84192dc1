package master_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/shard"
)

// `zester run '*'` with a peel stopped: the job does not wait for it, lists
// it as offline (in the summary, in --json and in job show), and exits 2.
func TestPresence_Run_SkipsOfflinePeel(t *testing.T) {
	url, m := oneMaster(t)
	fleet := startSimFleet(t, 20, url, m)
	gone := stopPeel(t, url, fleet, 7)

	code, out, errOut := clitest.Zester(t, url, "run", "--json", "--timeout", "60s", "*", "test.ping")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	r := clitest.LastSummary(t, out).Summary
	if code != 2 || r.Status != wire.StatusPartial || r.Expected != 19 || r.Returned != 19 || len(r.Missing) != 0 ||
		len(r.Offline) != 1 || r.Offline[0] != gone || len(lines) != 20 {
		t.Fatalf("run: exit %d %+v (%d lines)\n%s", code, r, len(lines), errOut)
	}
	// It ended when the online peels had answered, not at its deadline.
	kvJobs, _ := testkit.JetStream(t, url).KeyValue(context.Background(), names.BucketJobs)
	job := jobStatus(t, kvJobs, r.JID)
	if !job.Finished.Before(job.Deadline) || job.Offline != 1 {
		t.Fatalf("job record: finished %s, deadline %s, offline %d", job.Finished, job.Deadline, job.Offline)
	}
	t.Logf("job with one peel offline: done in %s (timeout 60s)", job.Finished.Sub(job.Created))
	code, out, _ = clitest.Zester(t, url, "job", "show", r.JID)
	if code != 2 || !strings.Contains(out, "offline (not sent, not waited for): "+gone) {
		t.Fatalf("job show: %d\n%s", code, out)
	}
	// Every targeted peel offline: partial at once, nothing sent.
	code, out, _ = clitest.Zester(t, url, "run", "--timeout", "60s", "-L", gone, "test.ping")
	if code != 2 || !strings.Contains(out, "partial") || !strings.Contains(out, "offline (not sent, not waited for): "+gone) {
		t.Fatalf("all offline: %d\n%s", code, out)
	}
}

// A master that gains partitions, at start or from a master that died,
// learns who is up before it resolves a job there: no online peel is called
// offline because its master is new.
func TestPresence_Takeover_KnowsPeelsAtOnce(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	ms := startMasters(t, url, 2)
	const peels = 300
	startSimFleet(t, peels, url, ms...)
	nc := testkit.Connect(t, url)
	kvJobs, _ := testkit.JetStream(t, url).KeyValue(context.Background(), names.BucketJobs)
	run := func(what string) wire.Job {
		jid, err := submitJob(nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		var job wire.Job
		testkit.Eventually(t, what, 40*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
		if job.Status != wire.StatusDone || job.Expected != peels || job.Offline != 0 {
			t.Fatalf("%s: %+v", what, job)
		}
		return job
	}
	// The first job right after the kill: the survivor gained the victim's
	// partitions and asked their peels to beat.
	ms[0].Kill()
	testkit.Eventually(t, "reassignment", 10*time.Second, func() bool { return settled(ms[1:]) })
	run("job after a master kill")
	// A master that starts now (taking a share) knows its peels too.
	m3 := mastertest.Start(t, mastertest.Config("m3", url))
	testkit.Eventually(t, "m3 takes a share", 10*time.Second, func() bool { return settled([]*mastertest.Handle{ms[1], m3}) })
	job := run("job after a master joined")
	t.Logf("after a join: %d peels, done in %s", job.Expected, job.Finished.Sub(job.Created))
	// `zester peels` merges both masters' answers: every peel online.
	rows := clitest.Peels(t, url, "--online")
	if len(rows) != peels {
		t.Fatalf("peels --online: %d, want %d", len(rows), peels)
	}
	masters := map[string]int{}
	for _, r := range rows {
		masters[r.Master]++
	}
	if masters["m2"] == 0 || masters["m3"] == 0 {
		t.Fatalf("answers from %v, want m2 and m3", masters)
	}
}

// Two processes beating with one id (a cloned host that slipped past the
// peel's own check): the master flags the id, and a restart (new instance,
// old one silent) is not taken for a duplicate.
func TestPresence_DuplicateID_Flagged(t *testing.T) {
	url, _ := oneMaster(t)
	nc := testkit.Connect(t, url)
	beat := func(id, inst string) {
		nc.PublishMsg(peelproto.BeatMsg(shard.Partition(id, 64), id, wire.Beat{Instance: inst, Interval: wire.Duration(10 * time.Second)}))
	}
	a, b, c := peelproto.NewInstance(), peelproto.NewInstance(), peelproto.NewInstance()
	// clone1: instances a and b beat alternately.
	// restarted: instance a, then b only.
	beat("clone1", a)
	beat("restarted", a)
	beat("clone1", b)
	beat("restarted", c)
	nc.Flush()
	testkit.Eventually(t, "beats heard", 30*time.Second, func() bool {
		rows := clitest.Peels(t, url, "--online")
		return rows["clone1"].ID != "" && rows["restarted"].ID != ""
	})
	beat("restarted", c)
	beat("clone1", a)
	nc.Flush()
	testkit.Eventually(t, "duplicate flagged", 30*time.Second, func() bool { return clitest.Peels(t, url)["clone1"].Duplicate })
	if clitest.Peels(t, url)["restarted"].Duplicate {
		t.Fatal("a restarted peel is flagged as a duplicate")
	}
	code, out, _ := clitest.Zester(t, url, "peels")
	if code != 0 || !strings.Contains(out, "DUPLICATE ID") {
		t.Fatalf("peels table does not mark the duplicate:\n%s", out)
	}
}

// Garbage in a peel's facts key, or another peel's document under it: the
// owning master asks the peel to republish, shows its facts as bad meanwhile,
// and keeps targeting it by its last good facts.
func TestPresence_CorruptFacts_RepublishAsked(t *testing.T) {
	url, m := oneMaster(t)
	fleet := startSimFleet(t, 4, url, m) // simulated peels do not republish: the bad state stays visible
	victim, other := fleet.ID(0), fleet.ID(1)
	nc := testkit.Connect(t, url)
	asks := make(chan wire.Control, 16)
	sub, err := nc.Subscribe(names.ControlSubject(shard.Partition(victim, 64)), func(msg *nats.Msg) {
		var c wire.Control
		if json.Unmarshal(msg.Data, &c) == nil && c.Op == wire.ControlRepublishFacts {
			asks <- c
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	kv, _ := testkit.JetStream(t, url).KeyValue(context.Background(), names.BucketFacts)
	for _, tc := range []struct {
		what  string
		value []byte
		why   string
	}{
		{"garbage", []byte("garbage"), "does not decode"},
		{"another peel's document", factcodec.Encode([]byte(fmt.Sprintf(`{"id":%q,"os":{"id":"debian"}}`, other))), "peel \"" + other + "\"'s"},
	} {
		if _, err := kv.Put(context.Background(), names.FactsKey(victim), tc.value); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-asks:
			if len(c.Peels) != 1 || c.Peels[0] != victim {
				t.Fatalf("%s: republish asked of %v", tc.what, c.Peels)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no republish asked", tc.what)
		}
		row := clitest.Peels(t, url)[victim]
		if row.Facts != wire.FactsBad || !strings.Contains(row.FactsError, tc.why) {
			t.Fatalf("%s: peels row %+v", tc.what, row)
		}
	}
	code, out, _ := clitest.Zester(t, url, "peels")
	if code != 0 || !strings.Contains(out, "facts bad") || !strings.Contains(out, "republish asked") {
		t.Fatalf("peels table:\n%s", out)
	}
	// simFacts: peel 0 runs debian; the last good document still targets it.
	code, out, _ = clitest.Zester(t, url, "run", "--json", "-G", "os:id:debian", "test.ping")
	if code != 0 || !strings.Contains(out, victim) {
		t.Fatalf("fact target after corruption: %d\n%s", code, out)
	}
	// A good document again clears the flag.
	kv.Put(context.Background(), names.FactsKey(victim), factcodec.Encode([]byte(simFacts(victim))))
	testkit.Eventually(t, "facts ok", 30*time.Second, func() bool { return clitest.Peels(t, url)[victim].Facts == wire.FactsOK })
}

// The masters and the CLI's --batch resolve a fact target through the one
// matcher (target.SubjectFromJSON): the same peels for the same target,
// lists indexed included.
func TestTargeting_MasterAndBatchAgree(t *testing.T) {
	url, m := oneMaster(t)
	startSimFleet(t, 60, url, m)
	returned := func(args ...string) []string {
		code, out, errOut := clitest.Zester(t, url, append(append([]string{"run", "--json", "--timeout", "20s"}, args...), "test.ping")...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		var ids []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r wire.Return
			if json.Unmarshal([]byte(l), &r) == nil && r.Peel != "" {
				ids = append(ids, r.Peel)
			}
		}
		sort.Strings(ids)
		return ids
	}
	for _, tc := range []struct {
		target []string
		want   int
	}{
		{[]string{"-G", "network:addresses:0:10.0.0.1*"}, 11},            // list index 0
		{[]string{"-G", "network:interfaces:eth0:ipv4:0:10.0.0.2*"}, 11}, // nested list index
		{[]string{"-G", "network:addresses:-1:10.0.0.3?"}, 10},           // negative index
		{[]string{"-G", "os:id:rocky"}, 30},
		{[]string{"-P", "network:addresses:0:^10\\.0\\.0\\.[0-9]$"}, 10},
		{[]string{"-C", "G@os:id:debian and G@network:addresses:0:10.0.0.4*"}, 6},
	} {
		master := returned(tc.target...)
		batch := returned(append([]string{"--batch", "100%"}, tc.target...)...)
		if len(master) != tc.want || strings.Join(master, ",") != strings.Join(batch, ",") {
			t.Errorf("%v: master %d peels, --batch %d peels, want %d each and the same:\nmaster %v\nbatch  %v", tc.target, len(master), len(batch), tc.want, master, batch)
		}
	}
}

// A master whose new partitions' peels answer late (a fleet that reconnected
// all at once, a master busy reading their beats): the takeover grace ends
// while peels not heard before are still coming in, and a job resolved then
// waits until they have stopped coming, instead of calling the late ones
// offline.
func TestPresence_Takeover_AnswersStillComing_JobWaits(t *testing.T) {
	url, m1 := oneMaster(t)
	const peels = 50
	fleet := startSimFleet(t, peels, url, m1)
	ids := make([]string, peels)
	for i := range ids {
		ids[i] = fleet.ID(i)
	}
	fleet.Close()
	m1.Kill()
	// A new master with the default grace (2 s) gains every partition and
	// hears nobody: the fleet is gone, and the test beats for it, one peel
	// every 60 ms (the first round takes 3 s, past the grace), round after
	// round until the job's parts are written.
	cfg := mastertest.Config("m2", url)
	cfg.Presence.TakeoverGrace = config.Dur(2 * time.Second)
	mastertest.Start(t, cfg)
	nc := testkit.Connect(t, url)
	stop := make(chan struct{})
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		for i := 0; ; i++ {
			id := ids[i%peels]
			if err := nc.PublishMsg(peelproto.BeatMsg(shard.Partition(id, shard.DefaultPartitions), id, wire.Beat{Instance: fmt.Sprintf("%016x", i%peels+1), Interval: wire.Duration(10 * time.Second)})); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(60 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-beaten }()
	jid, err := submitJob(nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	kvJobs, _ := testkit.JetStream(t, url).KeyValue(context.Background(), names.BucketJobs)
	var expected, offline []string
	testkit.Eventually(t, "every part of the job written", 30*time.Second, func() bool {
		expected, offline = nil, nil
		for p := range shard.DefaultPartitions {
			e, err := kvJobs.Get(context.Background(), names.JobPartKey(jid, p))
			if err != nil {
				continue
			}
			var part wire.JobPart
			if err := json.Unmarshal(e.Value(), &part); err != nil {
				t.Fatal(err)
			}
			expected, offline = append(expected, part.Expected...), append(offline, part.Offline...)
		}
		return len(expected)+len(offline) == peels
	})
	if len(offline) != 0 || len(expected) != peels {
		t.Fatalf("the job expects %d peels and calls %d offline (%v): a peel whose answer came after the grace was skipped", len(expected), len(offline), offline)
	}
}
