package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

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
	testkit.Eventually(t, "a spooled return in "+spool, 60*time.Second, func() bool { ents, _ := os.ReadDir(spool); return len(ents) == 1 })
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
	nc := testkit.Connect(t, url)
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

// A peel that is away when a job goes out gets it when it is back: the
// master sends the job again to the peels that have not answered. (A peel
// that died without a goodbye is still online until offline_after; one that
// stopped cleanly is offline and not sent the job at all.)
func TestPeel_AwayAtDispatch_GetsJobWhenBack(t *testing.T) {
	_, url := serverAndMaster(t)
	cfg := peeltest.Config(t, "late.example.com", url)
	p := peeltest.Start(t, cfg)
	p.Kill()
	nc := testkit.Connect(t, url)
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

// The per-peel permission block of docs/security.md is enough for presence
// and the one-process-per-id check: a confined peel beats (a job finds it
// online and runs), and a second process with its id and user is refused.
func TestPeel_ConfinedPermissions_BeatsAndRefusesClone(t *testing.T) {
	const id = "web1.example.com"
	tok, part := names.Token(id), shard.Partition(id, shard.DefaultPartitions)
	s := testkit.StartServer(t, topology.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(t.TempDir(), "nats"),
		Tune: func(o *server.Options) {
			o.Users = []*server.User{
				{Username: "master", Password: "m"},
				{Username: id, Password: "p", Permissions: &server.Permissions{
					Publish: &server.SubjectPermission{Allow: []string{
						"zester.api.info",
						"$KV.facts." + id,
						"$KV.job-returns.*." + id,
						"$JS.API.DIRECT.GET.KV_job-returns.$KV.job-returns.*." + id,
						names.BeatSubject(part, id),
						names.PeelInbox(id),
						"_INBOX." + tok + ".>",
					}},
					Subscribe: &server.SubjectPermission{Allow: []string{
						names.JobSubject(part), names.ControlSubject(part), names.PeelInbox(id), "_INBOX." + tok + ".>",
					}},
				}},
			}
		}})
	withUser := func(user, pw string) string {
		u, _ := url.Parse(s.ClientURL())
		u.User = url.UserPassword(user, pw)
		return u.String()
	}
	masterURL, peelURL := withUser("master", "m"), withUser(id, "p")
	mastertest.Start(t, mastertest.Config("m1", masterURL))
	first := peeltest.Start(t, peeltest.Config(t, id, peelURL))

	nc, js := testkit.ConnectJS(t, masterURL)
	j := waitJob(t, js, submit(t, nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)}), 40*time.Second)
	if j.Status != wire.StatusDone || j.Returned != 1 || j.Offline != 0 {
		t.Fatalf("job on the confined peel: %+v", j)
	}
	p, err := peel.New(peeltest.Config(t, id, peelURL), peel.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var dup *peelproto.ErrDuplicate
	if err := p.Run(ctx); !errors.As(err, &dup) || dup.Other.Instance != first.Instance() {
		t.Fatalf("clone under the same user: %v", err)
	}
}

// A second peel process with the id of a running one refuses to run, with
// an error naming the id; once the first is gone, the id is free again.
func TestPeel_SameIDTwice_SecondRefused(t *testing.T) {
	_, url := serverAndMaster(t)
	first := peeltest.Start(t, peeltest.Config(t, "clone.example.com", url))
	p, err := peel.New(peeltest.Config(t, "clone.example.com", url), peel.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = p.Run(ctx)
	var dup *peelproto.ErrDuplicate
	if !errors.As(err, &dup) || dup.Other.Instance != first.Instance() ||
		!strings.Contains(err.Error(), `another peel with id "clone.example.com" is online`) {
		t.Fatalf("second peel: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the check did not answer before the hang guard")
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	peeltest.Start(t, peeltest.Config(t, "clone.example.com", url))
}
