package peel_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// serverAndMaster starts an in-process server and one master on it.
func serverAndMaster(t *testing.T) (*topology.Server, string) {
	t.Helper()
	s, err := topology.Single(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	mastertest.Start(t, mastertest.Config("m1", s.ClientURL()))
	return s, s.ClientURL()
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
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		kv, err := js.KeyValue(context.Background(), names.BucketJobs)
		if err == nil {
			if e, err := kv.Get(context.Background(), names.JobKey(jid)); err == nil {
				var j wire.Job
				if json.Unmarshal(e.Value(), &j) == nil && ok(j) {
					return j
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s not %s after %s", jid, what, d)
	return wire.Job{}
}

// A peel cut off while a job runs keeps the return on disk, survives its own
// restart, and delivers the return when NATS is back; the job completes.
func TestPeel_CutOff_SpoolsAcrossRestartAndDelivers(t *testing.T) {
	s, url := serverAndMaster(t)
	cfg := peeltest.Config(t, "cutoff.example.com", url)
	p := peeltest.Start(t, cfg)

	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	started := filepath.Join(t.TempDir(), "started")
	args, _ := json.Marshal(map[string]string{"cmd": "touch " + started + " && sleep 1"})
	jid := submit(t, nc, wire.RunRequest{Target: wire.Target{Expr: "cutoff.example.com"}, Function: "cmd.run",
		Args: args, Timeout: wire.Duration(60 * time.Second)})
	// The server goes away while the peel runs the job.
	waitFile(t, started)
	s.Shutdown()
	spool := filepath.Join(cfg.DataDir, "spool")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ents, _ := os.ReadDir(spool)
		if len(ents) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no spooled return in %s", spool)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	// The same peel, restarted, delivers what it held.
	peeltest.Start(t, cfg)
	js, _ := jetstream.New(nc)
	j := waitJob(t, js, jid, 60*time.Second)
	if j.Status != wire.StatusDone || j.Returned != 1 {
		t.Fatalf("job after reconnect: %+v", j)
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Fatalf("spool not emptied: %d files", len(ents))
	}
}

// A job delivered twice runs once.
func TestPeel_DuplicateDispatch_RunsOnce(t *testing.T) {
	_, url := serverAndMaster(t)
	cfg := peeltest.Config(t, "dup1", url)
	peeltest.Start(t, cfg)
	nc, _ := nats.Connect(url)
	defer nc.Close()
	marker := filepath.Join(t.TempDir(), "ran")
	dispatch := func(jid, line string) []byte {
		d := wire.Dispatch{JID: jid, Function: "cmd.run", Peels: []string{"dup1"},
			Args: json.RawMessage(`{"cmd":"echo ` + line + ` >> ` + marker + `"}`), Deadline: time.Now().Add(time.Minute)}
		b, _ := json.Marshal(d)
		return b
	}
	// Find the peel's partition subject via the master's answer to info.
	msg, err := nc.Request(names.APISubject("info"), nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info wire.Info
	json.Unmarshal(msg.Data, &info)
	subj := names.JobSubject(shard.Partition("dup1", info.Partitions))
	const first, second = "2026010100000000000001", "2026010100000000000002"
	b := dispatch(first, "x")
	for i := 0; i < 3; i++ {
		nc.Publish(subj, b)
	}
	js, _ := jetstream.New(nc)
	waitReturn(t, js, first, "dup1")
	// The peel takes dispatches in order: once a later job has returned,
	// every copy of the first has been seen (and dropped).
	nc.Publish(subj, dispatch(second, "y"))
	waitReturn(t, js, second, "dup1")
	got, _ := os.ReadFile(marker)
	if string(got) != "x\ny\n" {
		t.Fatalf("marker %q, want the first job once, then the second", got)
	}
}

// waitReturn waits until peel's return of jid is stored.
func waitReturn(t *testing.T, js jetstream.JetStream, jid, peel string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if kv, err := js.KeyValue(context.Background(), names.BucketJobReturns); err == nil {
			if _, err := kv.Get(context.Background(), names.ReturnKey(jid, peel)); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no return of %s from %s after 60s", jid, peel)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not created after 60s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A peel that is away when a job goes out gets it when it is back: the
// master sends the job again to the peels that have not answered. (A peel
// that died without a goodbye is still online until offline_after; one that
// stopped cleanly is offline and not sent the job at all.)
func TestPeel_AwayAtDispatch_GetsJobWhenBack(t *testing.T) {
	_, url := serverAndMaster(t)
	cfg := peeltest.Config(t, "late.example.com", url)
	p := peeltest.Start(t, cfg)
	p.Kill()
	nc, _ := nats.Connect(url)
	defer nc.Close()
	jid := submit(t, nc, wire.RunRequest{Target: wire.Target{Kind: "list", Expr: "late.example.com"}, Function: "test.ping", Timeout: wire.Duration(9 * time.Second)})
	js, _ := jetstream.New(nc)
	// Back only once the job went out without it.
	waitJobStatus(t, js, jid, func(j wire.Job) bool { return j.Status != wire.StatusPending })
	peeltest.Start(t, cfg)
	j := waitJob(t, js, jid, 60*time.Second)
	if j.Status != wire.StatusDone || j.Returned != 1 {
		t.Fatalf("%+v", j)
	}
}
