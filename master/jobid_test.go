package master_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
)

// A job.run sent again with the client's jid (its answer was lost) gets
// the job it created, never a second job; another request that drew the
// same jid gets a conflict, and a malformed jid is refused.
func TestAPI_RunWithClientJID_IsIdempotent(t *testing.T) {
	url, _ := oneMaster(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
	e, err := kv.Get(context.Background(), names.JobKey(jid))
	if err != nil {
		t.Fatal(err)
	}
	var job wire.Job
	if err := json.Unmarshal(e.Value(), &job); err != nil || job.JID != jid || job.Requester != master.Unauthenticated || job.Claimed != "alice@ops1" {
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
