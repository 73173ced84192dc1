package master_test

import (
	"context"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
)

// A master killed mid-job: the survivors, which counted every part's
// returns alongside from the start of the job (shadow counts), take its
// parts over without reading the job's returns again, and the job ends done
// with exact counts. A master that joins while the job runs has not seen it
// all: if it takes a part over, it rescans, and the counts are exact too.
func TestJobs_FailoverWithShadowCounts_NoRescan(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	sets := map[string]*metrics.Set{}
	start := func(id string) *mastertest.Handle {
		sets[id] = metrics.NewSet()
		return mastertest.StartWith(t, mastertest.Config(id, url), master.Options{Metrics: sets[id]})
	}
	counter := func(id, name string) uint64 { return sets[id].GetOrCreateCounter(name).Get() }
	ms := []*mastertest.Handle{start("m1"), start("m2"), start("m3")}
	testkit.Eventually(t, "masters settle", 60*time.Second, func() bool { return settled(ms) })
	const peels = 3000
	fleet := startSimFleet(t, peels, url, ms...)
	fleet.SetLatency(simfleet.Uniform(time.Second, 3*time.Second))

	_, js := testkit.ConnectJS(t, url)
	nc := testkit.Connect(t, url)
	jid, err := submitJob(nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(40 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	kvJobs, err := js.KeyValue(context.Background(), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "job running", 60*time.Second, func() bool { return jobStatus(t, kvJobs, jid).Status != wire.StatusPending })
	victim, survivors := busiest(ms)
	victim.Kill()
	testkit.Eventually(t, "survivors own every partition", 60*time.Second, func() bool { return settled(survivors) })
	// A newcomer while the job runs.
	m4 := start("m4")
	all := append(survivors, m4)
	testkit.Eventually(t, "m4 takes a share", 60*time.Second, func() bool { return settled(all) })

	var job wire.Job
	testkit.Eventually(t, "job final", 90*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusDone || job.Expected != peels || job.Returned != peels || job.Missing != 0 || job.Failed != 0 {
		t.Fatalf("job after failover: %+v", job)
	}
	adopted := 0
	for _, m := range survivors {
		a, r := counter(m.ID(), `zester_master_job_parts_adopted_total`), counter(m.ID(), `zester_master_job_rescans_total`)
		t.Logf("%s adopted %d parts, rescanned %d times", m.ID(), a, r)
		adopted += int(a)
		if r != 0 {
			t.Errorf("%s rescanned the job %d times: it counted every part from the start", m.ID(), r)
		}
	}
	if adopted == 0 {
		t.Fatal("no survivor adopted a part of the killed master")
	}
	if a, r := counter("m4", `zester_master_job_parts_adopted_total`), counter("m4", `zester_master_job_rescans_total`); a > 0 && r == 0 {
		t.Errorf("m4 joined mid-job, adopted %d parts and did not rescan", a)
	} else {
		t.Logf("m4 adopted %d parts, rescanned %d times", a, r)
	}
	if twice := fleet.Job(jid).DoubleStored.Load(); twice > 0 {
		t.Fatalf("%d returns stored twice", twice)
	}
	// Every part says the same as the main record: exact counts per part.
	sum := 0
	for p := 0; p < ms[0].Partitions(); p++ {
		part := testkit.MustGetJSON[wire.JobPart](t, kvJobs, names.JobPartKey(jid, p))
		if part.Status != wire.StatusDone || part.Returned != len(part.Expected) || len(part.Missing) != 0 {
			t.Fatalf("part %d: %s returned %d of %d, missing %d", p, part.Status, part.Returned, len(part.Expected), len(part.Missing))
		}
		sum += part.Returned
	}
	if sum != peels {
		t.Fatalf("parts count %d returns, want %d", sum, peels)
	}
}

// At the deadline a master that counted the job from its start waits for its
// returns consumer instead of reading the job's returns again: a job nobody
// answers in time ends timed-out with every peel missing, and no rescan.
func TestJobs_Deadline_CoveredNoRescan(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	set := metrics.NewSet()
	m := mastertest.StartWith(t, mastertest.Config("m1", url), master.Options{Metrics: set})
	const peels = 200
	fleet := startSimFleet(t, peels, url, m)
	fleet.SetLatency(simfleet.Fixed(time.Minute)) // nobody answers in time
	_, js := testkit.ConnectJS(t, url)
	jid, err := submitJob(testkit.Connect(t, url), wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(3 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	kvJobs, err := js.KeyValue(context.Background(), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	var job wire.Job
	testkit.Eventually(t, "job final", 60*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusTimedOut || job.Expected != peels || job.Missing != peels || job.Returned != 0 {
		t.Fatalf("job: %+v", job)
	}
	if r := set.GetOrCreateCounter(`zester_master_job_rescans_total`).Get(); r != 0 {
		t.Fatalf("%d rescans at the deadline of a covered job", r)
	}
}
