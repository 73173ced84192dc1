package master_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
)

func submitRaw(t *testing.T, nc *nats.Conn, r wire.RunRequest) (string, string) {
	t.Helper()
	b, _ := json.Marshal(r)
	msg, err := nc.Request(names.APISubject("job.run"), b, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := msg.Header.Get(micro.ErrorHeader); e != "" {
		return "", e
	}
	var resp wire.RunResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.JID, ""
}

// A request carrying the client's job id can be sent again (the client timed
// out and cannot know whether the first was recorded): the retry answers
// with the same job and records nothing more. Another request with that id
// is refused, and an id not in the master's format is refused naming it.
func TestAPIRun_ClientJID_RetryIsIdempotent(t *testing.T) {
	s := single(t)
	mastertest.Start(t, mastertest.Config("m1", s.ClientURL()))
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	jid := master.NewJID(time.Now())
	req := wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Args: json.RawMessage(`{ "x": 1 }`), Requester: "t", JID: jid}
	for i := 0; i < 2; i++ {
		got, errMsg := submitRaw(t, nc, req)
		if errMsg != "" || got != jid {
			t.Fatalf("submission %d: jid %q error %q, want %s", i+1, got, errMsg, jid)
		}
	}
	js := jsFor(t, s.ClientURL())
	kv, err := js.KeyValue(context.Background(), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := kv.History(context.Background(), names.JobKey(jid))
	if err != nil {
		t.Fatal(err)
	}
	var created int
	for _, e := range hist {
		var j wire.Job
		if json.Unmarshal(e.Value(), &j) == nil && j.Status == wire.StatusPending {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d pending records for %s, want the one creation", created, jid)
	}

	other := req
	other.Function = "test.echo"
	if got, errMsg := submitRaw(t, nc, other); !strings.Contains(errMsg, "already used by another job") {
		t.Fatalf("another request with jid %s: jid %q error %q, want it refused", jid, got, errMsg)
	}
	bad := req
	bad.JID = "12ab"
	if _, errMsg := submitRaw(t, nc, bad); !strings.Contains(errMsg, `jid "12ab"`) {
		t.Fatalf("malformed jid: error %q, want it named", errMsg)
	}
}
