package master_test

// Masters sharing partitions and failing over (kill, clean stop, restart),
// and the servers under them failing (a server restart, a cluster losing a
// node or its quorum), with simulated peels (internal/simfleet).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// settled reports whether the masters own every partition exactly once.
func settled(ms []*mastertest.Handle) bool {
	if len(ms) == 0 {
		return false
	}
	seen := map[int]int{}
	for _, m := range ms {
		for _, p := range m.Owned() {
			seen[p]++
		}
	}
	P := ms[0].Partitions()
	for p := 0; p < P; p++ {
		if seen[p] != 1 {
			return false
		}
	}
	return len(seen) == P
}

func startMasters(t *testing.T, url string, n int) []*mastertest.Handle {
	var ms []*mastertest.Handle
	for i := 0; i < n; i++ {
		ms = append(ms, mastertest.Start(t, mastertest.Config(fmt.Sprintf("m%d", i+1), url)))
	}
	testkit.Eventually(t, "masters settle", 60*time.Second, func() bool { return settled(ms) })
	return ms
}

func TestMasters_ShareAllPartitions_JoinAndCleanLeave(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	ms := startMasters(t, url, 3)
	for _, m := range ms {
		if n := len(m.Owned()); n < 5 || n > 45 {
			t.Errorf("master %s owns %d of 64 partitions", m.ID(), n)
		}
	}
	// `zester masters --json` shows the three with their shares.
	code, out, _ := clitest.Zester(t, url, "masters", "--json")
	var recs []wire.MasterRecord
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 3 {
		t.Fatalf("masters --json: %d %s", code, out)
	}
	// A fourth joins and takes a share.
	m4 := mastertest.Start(t, mastertest.Config("m4", url))
	ms = append(ms, m4)
	took := testkit.Eventually(t, "m4 takes a share", 60*time.Second, func() bool { return settled(ms) })
	if len(m4.Owned()) == 0 {
		t.Fatal("m4 owns nothing")
	}
	t.Logf("join: settled in %s, m4 owns %d", took, len(m4.Owned()))
	// A clean stop hands over within about one heartbeat.
	stopAt := time.Now()
	if err := ms[0].Stop(); err != nil {
		t.Fatal(err)
	}
	rest := ms[1:]
	testkit.Eventually(t, "clean hand-over", 60*time.Second, func() bool { return settled(rest) })
	handover := time.Since(stopAt)
	t.Logf("clean stop: hand-over in %s (heartbeat 500ms)", handover)
	// What makes the hand-over immediate, checked as state rather than as a
	// time: the stopped master deleted its heartbeat (the others react to
	// the delete) instead of leaving it to expire.
	js := testkit.JetStream(t, url)
	kvHB, err := js.KeyValue(context.Background(), names.BucketMasterHeartbeat)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := kvHB.History(context.Background(), names.HeartbeatKey(ms[0].ID()))
	if err != nil {
		t.Fatal(err)
	}
	if last := hist[len(hist)-1]; last.Operation() != jetstream.KeyValueDelete {
		t.Errorf("heartbeat of %s after a clean stop: last operation %v, want a delete", ms[0].ID(), last.Operation())
	}
}

func TestMasters_KillMidJob_NothingLostOrTwice(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	ms := startMasters(t, url, 3)
	const peels = 1200
	fleet := startSimFleet(t, peels, url, ms...)
	fleet.SetLatency(simfleet.Fixed(1500 * time.Millisecond))

	js := testkit.JetStream(t, url)
	nc := testkit.Connect(t, url)
	req, _ := json.Marshal(wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)})
	msg, err := nc.Request(names.APISubject("job.run"), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var resp wire.RunResponse
	json.Unmarshal(msg.Data, &resp)
	if resp.JID == "" {
		t.Fatalf("no jid: %s", msg.Data)
	}
	// Wait until every partition has its part (the job is dispatched), then
	// kill the master owning the most partitions.
	kvJobs, _ := js.KeyValue(context.Background(), names.BucketJobs)
	testkit.Eventually(t, "job running", 60*time.Second, func() bool { return jobStatus(t, kvJobs, resp.JID).Status != wire.StatusPending })
	victim, survivors := busiest(ms)
	killedAt := time.Now()
	victim.Kill()
	failover := testkit.Eventually(t, "reassignment", 60*time.Second, func() bool { return settled(survivors) })
	// The time is a figure, not an assertion: on a shared machine it is
	// whatever the load makes it (the design bound is dead_after +
	// heartbeat/4, 1.625 s here).
	t.Logf("FAILOVER: killed %s (owned %d partitions) with %d peels in flight; full reassignment after %s (heartbeat 500ms, dead_after 1.5s)",
		victim.ID(), len(victim.Owned()), peels, failover)
	var job wire.Job
	testkit.Eventually(t, "job final", 90*time.Second, func() bool { job = jobStatus(t, kvJobs, resp.JID); return wire.Final(job.Status) })
	t.Logf("job %s: %s expected=%d returned=%d in %s after the kill", job.JID, job.Status, job.Expected, job.Returned, time.Since(killedAt))
	if job.Status != wire.StatusDone || job.Expected != peels || job.Returned != peels {
		t.Fatalf("job after failover: %+v", job)
	}
	// Every return recorded exactly once.
	kvRet, _ := js.KeyValue(context.Background(), names.BucketJobReturns)
	lister, err := kvRet.ListKeysFiltered(context.Background(), names.ReturnFilter(resp.JID))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for k := range lister.Keys() {
		_, peel, _ := names.ParseReturnKey(k)
		count[peel]++
	}
	if len(count) != peels {
		t.Fatalf("%d peels have a stored return, want %d", len(count), peels)
	}
	// Never twice: the store took no return key twice, however often the
	// simulated peels published a return (a retry after a lost ack, say).
	jt := fleet.Job(resp.JID)
	if twice := jt.DoubleStored.Load(); twice > 0 {
		t.Fatalf("%d returns stored more than once", twice)
	}
	t.Logf("%d copies of the re-sent dispatch dropped by the peels, %d returns refused as already stored", jt.DupDispatch.Load(), jt.DupRefused.Load())
	// The main record went through every state once, never backwards.
	hist, err := kvJobs.History(context.Background(), names.JobKey(resp.JID))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range hist {
		var j wire.Job
		json.Unmarshal(e.Value(), &j)
		states = append(states, j.Status)
	}
	if got := strings.Join(states, ">"); got != "pending>running>done" {
		t.Fatalf("job status history %s", got)
	}
}

func jobStatus(t *testing.T, kv jetstream.KeyValue, jid string) wire.Job {
	t.Helper()
	return testkit.MustGetJSON[wire.Job](t, kv, names.JobKey(jid))
}

// startSimFleet connects n simulated peels (internal/simfleet: the real
// protocol, as the load generator's) over at most four connections to url (a
// comma-separated list spreads them), named sim-NNNNN.dc1.example.com with
// simFacts, and waits until their facts are stored and each of ms has
// indexed them.
func startSimFleet(t *testing.T, n int, url string, ms ...*mastertest.Handle) *simfleet.Fleet {
	t.Helper()
	f, err := simfleet.NewFleet(simfleet.FleetConfig{Peels: n, Conns: 4, Partitions: shard.DefaultPartitions, URLs: strings.Split(url, ","),
		ID:    func(i int) string { return fmt.Sprintf("sim-%05d.dc1.example.com", i) },
		Facts: func(_ int, id string, _ time.Time) []byte { return []byte(simFacts(id)) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()
	if err := f.Connect(ctx, 0); err != nil {
		t.Fatal(err)
	}
	facts, err := f.EncodeFacts(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.PublishFacts(ctx, facts); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		testkit.Eventually(t, m.ID()+" indexed the fleet", 60*time.Second, func() bool { return m.PeelCount() == n })
	}
	return f
}

// oneMaster starts a server and one master, m1, on it.
func oneMaster(t *testing.T) (string, *mastertest.Handle) {
	t.Helper()
	url := testkit.Server(t).ClientURL()
	return url, mastertest.Start(t, mastertest.Config("m1", url))
}

// simFacts gives sim-NNNNN peels varied facts: even ones run debian, odd
// ones rocky; peel i has address 10.<i/65536>.<i/256%256>.<i%256>.
func simFacts(id string) string {
	var i int
	fmt.Sscanf(id, "sim-%d", &i)
	osid := "debian"
	if i%2 == 1 {
		osid = "rocky"
	}
	addr := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	return fmt.Sprintf(`{"os":{"id":%q},"host":{"hostname":%q},"network":{"interfaces":{"eth0":{"ipv4":[%q]}},"addresses":[%q]}}`, osid, id, addr+"/16", addr)
}

func submitJob(nc *nats.Conn, r wire.RunRequest) (string, error) {
	req, _ := json.Marshal(r)
	msg, err := nc.Request(names.APISubject("job.run"), req, 5*time.Second)
	if err != nil {
		return "", err
	}
	var resp wire.RunResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.JID == "" {
		return "", fmt.Errorf("job.run: %s", msg.Data)
	}
	return resp.JID, nil
}

// The only master restarts while a job is in flight: the new one loads the
// active job from the jobs bucket and finishes it.
func TestMaster_RestartMidJob_Finishes(t *testing.T) {
	url, h := oneMaster(t)
	fleet := startSimFleet(t, 100, url, h)
	fleet.SetLatency(simfleet.Fixed(2 * time.Second))
	nc, js := testkit.ConnectJS(t, url)
	kvJobs, _ := js.KeyValue(context.Background(), names.BucketJobs)
	jid := submitPing(t, nc, 30*time.Second)
	testkit.Eventually(t, "running", 60*time.Second, func() bool { return jobStatus(t, kvJobs, jid).Status == wire.StatusRunning })
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	mastertest.Start(t, mastertest.Config("m1", url))
	var job wire.Job
	testkit.Eventually(t, "final", 60*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusDone || job.Returned != 100 {
		t.Fatalf("%+v", job)
	}
}

// The NATS server restarts under two masters: neither takes the other for
// dead (no partition owned twice at any sample), and a job submitted right
// after the restart completes at once.
func TestMasters_ServerRestart_NoSplitBrainJobsFlow(t *testing.T) {
	s := testkit.Server(t)
	url := s.ClientURL()
	ms := startMasters(t, url, 2)
	startSimFleet(t, 100, url, ms...)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	testkit.Eventually(t, "client connected", 60*time.Second, nc.IsConnected)
	var jid string
	start := time.Now()
	testkit.Eventually(t, "job accepted", 60*time.Second, func() bool {
		var err error
		jid, err = submitJob(nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)})
		return err == nil
	})
	kvJobs, _ := js.KeyValue(context.Background(), names.BucketJobs)
	overlap := 0
	var job wire.Job
	testkit.Eventually(t, "job final", 60*time.Second, func() bool {
		seen := map[int]int{}
		for _, m := range ms {
			for _, p := range m.Owned() {
				if seen[p]++; seen[p] > 1 {
					overlap++
				}
			}
		}
		job = jobStatus(t, kvJobs, jid)
		return wire.Final(job.Status)
	})
	t.Logf("after a server restart: job %s in %s", job.Status, time.Since(start))
	if job.Status != wire.StatusDone || job.Returned != 100 {
		t.Fatalf("%+v", job)
	}
	if overlap > 0 {
		t.Fatalf("partitions owned twice in %d samples", overlap)
	}
}

// A master dies and its partitions are taken over only after the job's
// deadline: the new owner finishes the adopted parts at once instead of
// leaving the job running for ever.
func TestMasters_AdoptAfterDeadline_Finishes(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	ms := startMasters(t, url, 2)
	fleet := startSimFleet(t, 100, url, ms...)
	fleet.SetLatency(simfleet.Fixed(time.Minute)) // nobody answers in time
	nc, js := testkit.ConnectJS(t, url)
	kvJobs, _ := js.KeyValue(context.Background(), names.BucketJobs)
	jid := submitPing(t, nc, time.Second)
	// Dispatched (or, on a very slow machine, already past its deadline:
	// then ms[0] timed its parts out itself and the outcome is the same).
	testkit.Eventually(t, "dispatched", 60*time.Second, func() bool { return jobStatus(t, kvJobs, jid).Status != wire.StatusPending })
	ms[0].Kill() // detected after dead_after (1.5 s), past the 1 s deadline
	var job wire.Job
	testkit.Eventually(t, "final", 60*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusTimedOut || job.Missing != 100 {
		t.Fatalf("%+v", job)
	}
}

// A 3-node cluster with R3 buckets loses one server mid-job: the job
// completes, and the time from the stop to the next successful KV write is
// measured.
func TestCluster_ServerLossMidJob(t *testing.T) {
	tp := testkit.Topology(t, "cluster", topology.Options{})
	url := strings.Join(tp.HubURLs(), ",")
	ms := []*mastertest.Handle{mastertest.Start(t, mastertest.TopologyConfig("m1", tp)), mastertest.Start(t, mastertest.TopologyConfig("m2", tp))}
	testkit.Eventually(t, "settle", 60*time.Second, func() bool { return settled(ms) })
	const peels = 300
	fleet := startSimFleet(t, peels, url, ms...)
	fleet.SetLatency(simfleet.Fixed(time.Second))

	nc, js := testkit.ConnectJS(t, url)
	kvJobs, _ := js.KeyValue(context.Background(), names.BucketJobs)
	jid := submitPing(t, nc, 60*time.Second)
	testkit.Eventually(t, "running", 60*time.Second, func() bool { return jobStatus(t, kvJobs, jid).Status != wire.StatusPending })

	kvProbe, _ := js.KeyValue(context.Background(), names.BucketBasket)
	stopped := time.Now()
	if err := tp.StopServer(0); err != nil {
		t.Fatal(err)
	}
	var writeBack time.Duration
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := kvProbe.Put(ctx, "probe", []byte(fmt.Sprint(i)))
		cancel()
		if err == nil {
			writeBack = time.Since(stopped)
			break
		}
		if time.Since(stopped) > 30*time.Second {
			t.Fatalf("no KV write within 30s of the stop: %v", err)
		}
	}
	t.Logf("SERVER LOSS: first KV write %s after stopping one of 3 servers (R3)", writeBack)
	var job wire.Job
	testkit.Eventually(t, "job final", 60*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusDone || job.Returned != peels {
		t.Fatalf("job after server loss: %+v", job)
	}
	if err := tp.RestartServer(0); err != nil {
		t.Fatal(err)
	}
}

// Cutting a majority off makes writes fail cleanly; nothing is corrupted and
// the cluster heals.
func TestCluster_MinorityLeft_WritesFailThenHeal(t *testing.T) {
	tp := testkit.Topology(t, "cluster", topology.Options{})
	mastertest.Start(t, mastertest.TopologyConfig("m1", tp))
	js := testkit.JetStream(t, tp.HubURLs()[2])
	kv, _ := js.KeyValue(context.Background(), names.BucketBasket)
	if _, err := kv.Put(context.Background(), "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	tp.StopServer(0)
	tp.StopServer(1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := kv.Put(ctx, "k", []byte("during"))
	cancel()
	if err == nil {
		t.Fatal("a write succeeded on a minority")
	}
	t.Logf("write on the minority: %v", err)
	if err := tp.RestartServer(0); err != nil {
		t.Fatal(err)
	}
	if err := tp.RestartServer(1); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "heal", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := kv.Put(ctx, "k2", []byte("after"))
		return err == nil
	})
	// An unacknowledged write is indeterminate, not lost: the proposal may
	// commit once the quorum is back (seen here: it does). Either value is
	// consistent; anything else would be corruption. Zester's own writes are
	// creates and compare-and-sets, so a late commit cannot regress a job.
	e, err := kv.Get(context.Background(), "k")
	if err != nil || (string(e.Value()) != "before" && string(e.Value()) != "during") {
		t.Fatalf("value after heal: %v %v", e, err)
	}
	t.Logf("after heal k=%q (revision %d)", e.Value(), e.Revision())
	// Every replica agrees.
	for i, u := range tp.HubURLs() {
		info := testkit.StreamInfo(t, testkit.JetStream(t, u), names.KVStream(names.BucketBasket))
		if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Errorf("server %d: replicas %+v", i, info.Cluster)
		}
	}
}

func submitPing(t *testing.T, nc *nats.Conn, timeout time.Duration) string {
	t.Helper()
	jid, err := submitJob(nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(timeout)})
	if err != nil {
		t.Fatal(err)
	}
	return jid
}

// A part of a partition this master owns already exists when the master
// resolves the job: another master created it (two masters resolving one
// partition across a handover; here the part is written before the job is
// submitted, the one order a test can hold still), and this master had not
// seen it. Its own Create is refused, and it adopts that part: it tracks the
// peels the part expects and sends them the job, which finishes done, not
// timed out with nobody ever having been asked.
func TestJobs_PartCreatedByAnother_Adopted(t *testing.T) {
	url, h := oneMaster(t)
	fleet := startSimFleet(t, 20, url, h)
	nc, js := testkit.ConnectJS(t, url)
	ctx := context.Background()
	kvJobs, err := js.KeyValue(ctx, names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 20 {
		ids = append(ids, fleet.ID(i))
	}
	p := shard.Partition(ids[0], shard.DefaultPartitions)
	var expected []string
	for _, id := range ids {
		if shard.Partition(id, shard.DefaultPartitions) == p {
			expected = append(expected, id)
		}
	}
	jid := names.NewJID(time.Now())
	part, _ := json.Marshal(wire.JobPart{JID: jid, Partition: p, Master: "m0", Expected: expected, Status: wire.StatusRunning})
	if _, err := kvJobs.Create(ctx, names.JobPartKey(jid, p), part); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(wire.RunRequest{JID: jid, Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(time.Minute)})
	if _, err := nc.Request(names.APISubject("job.run"), b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var job wire.Job
	testkit.Eventually(t, "job final", 90*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusDone || job.Returned != len(ids) {
		t.Fatalf("job %+v; want done, all %d returned (%d of them expected by the adopted part %d)", job, len(ids), len(expected), p)
	}
}

// The same with a part that expects nobody (its only targeted peel is
// offline): the master's create finds the other's part and adopts it, and
// the job ends partial with the peel listed offline.
func TestJobs_PartCreatedByAnother_AllOffline_Adopted(t *testing.T) {
	url, h := oneMaster(t)
	fleet := startSimFleet(t, 4, url, h)
	gone := stopPeel(t, url, fleet, 2)
	nc, js := testkit.ConnectJS(t, url)
	ctx := context.Background()
	kvJobs, err := js.KeyValue(ctx, names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	p := shard.Partition(gone, shard.DefaultPartitions)
	jid := names.NewJID(time.Now())
	part, _ := json.Marshal(wire.JobPart{JID: jid, Partition: p, Master: "m0", Offline: []string{gone}, Status: wire.StatusRunning})
	if _, err := kvJobs.Create(ctx, names.JobPartKey(jid, p), part); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(wire.RunRequest{JID: jid, Target: wire.Target{Kind: "list", Expr: gone}, Function: "test.ping", Timeout: wire.Duration(time.Minute)})
	if _, err := nc.Request(names.APISubject("job.run"), b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var job wire.Job
	testkit.Eventually(t, "job final", 90*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusPartial || job.Expected != 0 || job.Offline != 1 {
		t.Fatalf("job %+v; want partial, nobody expected, %s offline", job, gone)
	}
}

// busiest is the master of ms owning the most partitions, and the others.
func busiest(ms []*mastertest.Handle) (victim *mastertest.Handle, others []*mastertest.Handle) {
	victim = ms[0]
	for _, m := range ms {
		if len(m.Owned()) > len(victim.Owned()) {
			victim = m
		}
	}
	for _, m := range ms {
		if m != victim {
			others = append(others, m)
		}
	}
	return victim, others
}

// stopPeel stops simulated peel i (a goodbye beat) and waits until the
// masters report it offline; it returns its id.
func stopPeel(t *testing.T, url string, fleet *simfleet.Fleet, i int) string {
	t.Helper()
	id := fleet.ID(i)
	if err := fleet.Stop(i); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, id+" offline", 30*time.Second, func() bool { return clitest.PeelState(t, url, id) == wire.PresenceOffline })
	return id
}
