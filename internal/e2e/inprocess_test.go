package e2e

// Tests that need a master and a real peel together live here, in process:
// mastertest and peeltest start them on an in-process server (testkit), so
// that neither master/ nor peel/ imports the other daemon, tests included.
// The tests that drive the binaries are in e2e_test.go and beside it.

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/topology"
)

// serverAndMaster starts an in-process server and one master on it.
func serverAndMaster(t *testing.T) (*topology.Server, string) {
	t.Helper()
	s := testkit.Server(t)
	mastertest.Start(t, mastertest.Config("m1", s.ClientURL()))
	return s, s.ClientURL()
}

// awaitPeelEvents reads peel id's job-events of kind until, for every
// pattern in want, one event's detail matches it (match), and returns the
// detail that matched each pattern; within is a hang guard.
func awaitPeelEvents(t *testing.T, js jetstream.JetStream, id, kind string, within time.Duration, want []string, match func(detail, pattern string) bool) map[string]string {
	t.Helper()
	cons, err := js.OrderedConsumer(context.Background(), names.StreamJobEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.PeelEventSubject(id, kind)}})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	deadline := time.Now().Add(within)
	for len(found) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s events of %s: want a match for each of %q, found %q", kind, id, want, found)
		}
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		var ev wire.Event
		if json.Unmarshal(m.Data(), &ev) != nil || ev.Peel != id {
			continue
		}
		for _, p := range want {
			if _, ok := found[p]; !ok && match(ev.Detail, p) {
				found[p] = ev.Detail
			}
		}
	}
	return found
}

func submit(t *testing.T, nc *nats.Conn, r wire.RunRequest) string {
	t.Helper()
	b, _ := json.Marshal(r)
	msg, err := nc.Request(names.APISubject("job.run"), b, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var resp wire.RunResponse
	if json.Unmarshal(msg.Data, &resp) != nil || resp.JID == "" {
		t.Fatalf("job.run: %s", msg.Data)
	}
	return resp.JID
}

func waitJob(t *testing.T, js jetstream.JetStream, jid string, d time.Duration) wire.Job {
	t.Helper()
	return waitJobStatusFor(t, js, jid, d, "final", func(j wire.Job) bool { return wire.Final(j.Status) })
}

// waitJobStatus waits (hang guard 60 s) until the job record satisfies ok.
func waitJobStatus(t *testing.T, js jetstream.JetStream, jid string, ok func(wire.Job) bool) wire.Job {
	t.Helper()
	return waitJobStatusFor(t, js, jid, 60*time.Second, "in the awaited state", ok)
}

func waitJobStatusFor(t *testing.T, js jetstream.JetStream, jid string, d time.Duration, what string, ok func(wire.Job) bool) wire.Job {
	t.Helper()
	var j wire.Job
	testkit.Eventually(t, "job "+jid+" "+what, d, func() bool {
		kv, err := js.KeyValue(context.Background(), names.BucketJobs)
		if err != nil {
			return false
		}
		j, err = testkit.GetJSON[wire.Job](kv, names.JobKey(jid))
		return err == nil && ok(j)
	})
	return j
}

// waitReturn waits until peel's return of jid is stored.
func waitReturn(t *testing.T, js jetstream.JetStream, jid, peel string) {
	t.Helper()
	testkit.Eventually(t, "the return of "+jid+" from "+peel, 60*time.Second, func() bool {
		kv, err := js.KeyValue(context.Background(), names.BucketJobReturns)
		if err != nil {
			return false
		}
		_, err = kv.Get(context.Background(), names.ReturnKey(jid, peel))
		return err == nil
	})
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	testkit.Eventually(t, path+" created", 60*time.Second, func() bool { _, err := os.Stat(path); return err == nil })
}
