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

// A job still running at a third of its timeout is sent again, every third,
// only to the waiting peels that may not have it: a connection that dropped
// and came back mid-job gets it again, the peels connected all along do not
// (at a million peels, resending every waiting id to every peel of a
// partition cost more than the job itself). The job ends done either way.
func TestJobs_Redispatch_OnlyToPeelsThatReconnected(t *testing.T) {
	// The fleet beats just before the job: no margin, so that what the
	// master heard before the job went out counts as connected all along.
	t.Cleanup(master.SetResendSlack(0))
	url := testkit.Server(t).ClientURL()
	set := metrics.NewSet()
	m := mastertest.StartWith(t, mastertest.Config("m1", url), master.Options{Metrics: set})
	counter := func(name string) uint64 { return set.GetOrCreateCounter(name).Get() }
	testkit.Eventually(t, "master settles", 60*time.Second, func() bool { return settled([]*mastertest.Handle{m}) })
	const peels = 400
	fleet := startSimFleet(t, peels, url, m) // 4 connections of 100 peels
	// Every peel answers after 10 s: the redispatch rounds at 4 s and 8 s
	// find all of them waiting.
	fleet.SetLatency(simfleet.Fixed(10 * time.Second))

	nc := testkit.Connect(t, url)
	_, js := testkit.ConnectJS(t, url)
	kvJobs, err := js.KeyValue(context.Background(), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	jid, err := submitJob(nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(12 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	jt := fleet.Job(jid)
	testkit.Eventually(t, "every peel got the job", 30*time.Second, func() bool { return jt.Started.Load() == peels })
	cut := fleet.Connections()[0]
	if err := cut.NC().ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the cut connection is back", 30*time.Second, func() bool { return cut.Reconnects() >= 1 && cut.NC().IsConnected() })

	var job wire.Job
	testkit.Eventually(t, "job final", 60*time.Second, func() bool { job = jobStatus(t, kvJobs, jid); return wire.Final(job.Status) })
	if job.Status != wire.StatusDone || job.Returned != peels {
		t.Fatalf("job: %+v", job)
	}
	cutPeels := uint64(len(cut.Peels()))
	resent, skipped := counter(`zester_master_peels_redispatched_total`), counter(`zester_master_peels_redispatch_skipped_total`)
	t.Logf("redispatched %d, left out %d; the cut connection holds %d peels", resent, skipped, cutPeels)
	// Each of the cut connection's peels once or twice (both rounds, when
	// its beat came between the first dispatch and the first round),
	// nobody else.
	if resent < cutPeels || resent > 2*cutPeels {
		t.Errorf("redispatched %d peels, want the %d of the connection that reconnected (in one or both rounds)", resent, cutPeels)
	}
	if skipped < peels-cutPeels {
		t.Errorf("left %d waiting peels out of the redispatch, want at least the %d connected all along", skipped, peels-cutPeels)
	}
	if dup := jt.DupDispatch.Load(); dup == 0 || uint64(dup) > resent {
		t.Errorf("the fleet saw %d dispatches of a job a peel had already run, want 1..%d (the resends)", dup, resent)
	}
	if twice := jt.DoubleStored.Load(); twice > 0 {
		t.Fatalf("%d returns stored twice", twice)
	}
}
