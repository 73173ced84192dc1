package master_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
)

func TestJobs_Targeting_ExactExpectedSets(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	cfg := mastertest.Config("m1", url)
	cfg.Nodegroups = map[string]string{"firsts": "L@sim-00000.dc1.example.com,sim-00001.dc1.example.com", "debs": "G@os:id:debian"}
	m := mastertest.Start(t, cfg)
	startSimFleet(t, 200, url, m)

	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"*"}, 200},
		{[]string{"sim-0000?.dc1.example.com"}, 10},
		{[]string{"-L", "sim-00003.dc1.example.com,sim-00007.dc1.example.com"}, 2},
		{[]string{"-E", `sim-0001\d\.`}, 10},
		{[]string{"-G", "os:id:debian"}, 100},
		{[]string{"-G", "network:interfaces:eth0:ipv4:10.0.0.1*"}, 111}, // 10.0.0.1/16, .10–.19, .100–.199
		{[]string{"-S", "10.0.0.0/28"}, 16},
		{[]string{"-N", "firsts"}, 2},
		{[]string{"-C", "G@os:id:rocky and sim-000[0-4]*"}, 25},
		{[]string{"-C", "N@debs and not E@sim-0000 or L@sim-00001.dc1.example.com"}, 96},
	} {
		args := append([]string{"run", "--json", "--timeout", "10s"}, tc.args...)
		args = append(args, "test.ping")
		code, out, errOut := clitest.Zester(t, url, args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		sum := clitest.LastSummary(t, out)
		if code != 0 || sum.Summary.Expected != tc.want || sum.Summary.Returned != tc.want || len(lines) != tc.want+1 {
			t.Errorf("%v: exit %d, expected %d returned %d lines %d; want %d\n%s", tc.args, code, sum.Summary.Expected, sum.Summary.Returned, len(lines), tc.want, errOut)
		}
	}
}

func TestJobs_BadInput_ClearErrors(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	cfg := mastertest.Config("m1", url)
	cfg.Jobs.MaxArgs = configBytes(1024)
	mastertest.Start(t, cfg)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-C", "G@os:id:debian and (web*", "test.ping"}, "column"},
		{[]string{"run", "-C", "X@foo", "test.ping"}, "X@"},
		{[]string{"run", "-S", "10.0.0.0/99", "test.ping"}, "10.0.0.0/99"},
		{[]string{"run", "-N", "nosuch", "test.ping"}, "nosuch"},
		{[]string{"run", "*", "test.echo", strings.Repeat("x", 2000)}, "max_args"},
		{[]string{"run", "*", "bad fn!", "x"}, "function"},
		{[]string{"run", "*", "test.echo", "{not json"}, "JSON"},
		{[]string{"run", "--batch", "0", "*", "test.ping"}, "--batch"},
	} {
		code, out, errOut := clitest.Zester(t, url, tc.args...)
		if code != 3 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 3 naming %q", tc.args, code, errOut, out, tc.want)
		}
	}
	// Nothing half-done: no job was recorded.
	code, out, _ := clitest.Zester(t, url, "job", "list", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("job list after refused jobs: %d %s", code, out)
	}
}

func TestJobs_BatchAsyncListShowWait(t *testing.T) {
	url, m := oneMaster(t)
	startSimFleet(t, 50, url, m)

	// A rolling batch of 20% of 50 peels: slices of 3 peels, at most 3
	// slices (9 peels) in flight, 17 jobs, every peel once.
	code, out, errOut := clitest.Zester(t, url, "run", "--batch", "20%", "*", "test.ping")
	if code != 0 || strings.Count(out, "slice ") != 17 || !strings.Contains(out, "17 jobs") || strings.Count(out, ": true") != 50 {
		t.Fatalf("batch: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = clitest.Zester(t, url, "run", "--json", "--batch", "2", "-E", "sim-0000[0-4]", "test.ping")
	if last := clitest.LastSummary(t, out).Summary; code != 0 || last.Returned != 5 || last.Expected != 5 {
		t.Fatalf("json batch: exit %d\n%s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "run", "--async", "-L", "sim-00001.dc1.example.com", "test.ping")
	jid := strings.TrimSpace(out)
	if code != 0 || len(jid) != 22 {
		t.Fatalf("async: %d %q", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "job", "wait", jid)
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("wait: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "job", "show", jid)
	if code != 0 || !strings.Contains(out, "sim-00001.dc1.example.com: true") {
		t.Fatalf("show: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "job", "list", "--json")
	var jobs []wire.Job
	if code != 0 || json.Unmarshal([]byte(out), &jobs) != nil || len(jobs) != 17+5+1 || jobs[0].JID != jid {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "job", "list")
	if code != 0 || !strings.Contains(out, "JID") || !strings.Contains(out, jid) {
		t.Fatalf("list table: %d %s", code, out)
	}
	// Finished jobs leave the active set.
	testkit.Eventually(t, "no active jobs", 60*time.Second, func() bool { return m.ActiveJobs() == 0 })
}

// A return whose body names another peel, or that does not decode, is
// reported as a failure of the peel whose key it is, never as someone else's.
func TestJobs_LyingOrCorruptReturn(t *testing.T) {
	url, m := oneMaster(t)
	startSimFleet(t, 2, url, m)
	nc := testkit.Connect(t, url)
	liar, honest := "sim-00000.dc1.example.com", "sim-00001.dc1.example.com"
	jid, err := submitJob(nc, wire.RunRequest{Target: wire.Target{Kind: "list", Expr: liar}, Function: "test.ping", Timeout: wire.Duration(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := clitest.Zester(t, url, "job", "wait", jid)
	if code != 0 {
		t.Fatalf("honest wait: %d %s", code, out)
	}
	js, _ := jetstream.New(nc)
	body, _ := json.Marshal(wire.Return{JID: "1", Peel: honest, Success: true, Result: json.RawMessage("true")})
	if _, err := js.PublishMsg(context.Background(), peelproto.ReturnMsgRaw("1", liar, true, body)); err != nil {
		t.Fatal(err)
	}
	kvJobs, _ := js.KeyValue(context.Background(), names.BucketJobs)
	b, _ := json.Marshal(wire.Job{JID: "1", Function: "test.ping", Status: wire.StatusDone, Expected: 1, Returned: 1, Partitions: 64})
	kvJobs.Put(context.Background(), "1", b)
	code, out, _ = clitest.Zester(t, url, "job", "show", "1")
	if code != 1 || !strings.Contains(out, liar+": ERROR identity") || strings.Contains(out, honest+": true") {
		t.Fatalf("lying return: exit %d\n%s", code, out)
	}
}

// A job.run sent again with the client's jid (its answer was lost) gets
// the job it created, never a second job; another request that drew the
// same jid gets a conflict, and a malformed jid is refused.
func TestAPI_RunWithClientJID_IsIdempotent(t *testing.T) {
	url, _ := oneMaster(t)
	nc := testkit.Connect(t, url)
	send := func(r wire.RunRequest) (jid, code, msg string) {
		t.Helper()
		b, _ := json.Marshal(r)
		m, err := nc.Request(names.APISubject("job.run"), b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := m.Header.Get(micro.ErrorHeader); e != "" {
			return "", m.Header.Get(micro.ErrorCodeHeader), e
		}
		var resp wire.RunResponse
		json.Unmarshal(m.Data, &resp)
		return resp.JID, "", ""
	}
	jid := names.NewJID(time.Now())
	req := wire.RunRequest{JID: jid, Target: wire.Target{Expr: "nosuchpeel"}, Function: "test.ping", Args: json.RawMessage(`["x"]`), Timeout: wire.Duration(5 * time.Second), Requester: "alice@ops1"}
	for i := 0; i < 3; i++ {
		if got, code, msg := send(req); got != jid {
			t.Fatalf("attempt %d: jid %q, error %s %s; want %s", i+1, got, code, msg, jid)
		}
	}
	kv, err := testkit.JetStream(t, url).KeyValue(context.Background(), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	job, err := testkit.GetJSON[wire.Job](kv, names.JobKey(jid))
	if err != nil || job.JID != jid || job.Requester != master.Unauthenticated || job.Claimed != "alice@ops1" {
		t.Fatalf("record %+v: %v", job, err)
	}
	// Three requests, one job: one "created" event.
	st, _ := testkit.JetStream(t, url).Stream(context.Background(), "job-events")
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(names.JobEventFilter(jid)))
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	for subj, n := range info.State.Subjects {
		if strings.HasSuffix(subj, ".created") {
			created += int(n)
		}
	}
	if created != 1 {
		t.Fatalf("%d created events for jid %s (subjects %v), want 1", created, jid, info.State.Subjects)
	}

	other := req
	other.Function = "test.echo"
	if got, code, msg := send(other); got != "" || code != "409" || !strings.Contains(msg, "taken by another job") {
		t.Fatalf("same jid, other request: jid %q, error %s %q", got, code, msg)
	}
	bad := req
	bad.JID = "2026-01-01"
	if _, code, msg := send(bad); code != "400" || !strings.Contains(msg, `jid "2026-01-01"`) {
		t.Fatalf("bad jid: error %s %q", code, msg)
	}
}
