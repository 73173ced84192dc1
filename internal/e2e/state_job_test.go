package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/peel/state"
	"github.com/zester-io/zester/peel/state/mod"
)

// state.apply sent through a master runs on the peel against its
// states_dir: test mode returns null results and writes nothing, a real
// run writes and returns Salt's shape, a failed state fails the job with
// every result kept.
func TestPeel_StateApply_ThroughMaster(t *testing.T) {
	_, url := serverAndMaster(t)
	tree, out := t.TempDir(), t.TempDir()
	target := filepath.Join(out, "motd")
	os.WriteFile(filepath.Join(tree, "web.sls"), []byte("motd:\n  file.managed:\n    - name: "+target+"\n    - contents: 'hello {{ .id }}'\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "bad.sls"), []byte("bad:\n  cmd.run:\n    - name: exit 3\n"), 0o644)
	cfg := peeltest.Config(t, "st1", url)
	cfg.StatesDir = tree
	peeltest.Start(t, cfg)
	get := func(args ...string) wire.Return {
		t.Helper()
		a, _ := json.Marshal(args)
		if len(args) == 1 && args[0][0] == '{' {
			a = json.RawMessage(args[0])
		}
		return stateApply(t, url, "st1", a)
	}
	key := mod.RunKey("file", "motd", target, "managed")
	// The CLI's form of `state.apply web test=true`.
	r := get(`{"_args": ["web"], "test": true}`)
	var ret map[string]mod.Run
	if err := json.Unmarshal(r.Result, &ret); err != nil || !r.Success {
		t.Fatalf("test run: %v %+v %s", err, r.Error, r.Result)
	}
	if ret[key].Status != mod.WouldChange {
		t.Errorf("test run: %+v", ret[key])
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("test run wrote the file")
	}
	r = get("web")
	json.Unmarshal(r.Result, &ret)
	if !r.Success || ret[key].Status != mod.OK || ret[key].Changes["diff"] != "New file" {
		t.Errorf("apply: %+v %s", r.Error, r.Result)
	}
	if b, _ := os.ReadFile(target); string(b) != "hello st1\n" {
		t.Errorf("file %q", b)
	}
	r = get("bad")
	if r.Success || r.Error == nil || r.Error.Code != state.CodeFailed || len(r.Result) == 0 {
		t.Errorf("failed state: success %v, error %+v, result %s", r.Success, r.Error, r.Result)
	}
}

// {{ basket }} in an .sls reads another peel's basket entry through the
// masters: st2 publishes role=db, st1's state writes it.
func TestPeel_StateApply_BasketInTemplates(t *testing.T) {
	_, url := serverAndMaster(t)
	tree, out := t.TempDir(), t.TempDir()
	target := filepath.Join(out, "peers")
	os.WriteFile(filepath.Join(tree, "peers.sls"), []byte("peers:\n  file.managed:\n    - name: "+target+"\n    - contents: '{{ index (basket \"G@id:st2 or G@id:st1\" \"role\") \"st2\" }}'\n"), 0o644)
	cfg := peeltest.Config(t, "st1", url)
	cfg.StatesDir = tree
	peeltest.Start(t, cfg)
	cfg2 := peeltest.Config(t, "st2", url)
	cfg2.Basket = map[string]peel.BasketSpec{"role": {Function: "test.echo", Args: json.RawMessage(`["db"]`)}}
	peeltest.Start(t, cfg2)
	// Until st2's entry is in the basket the template fails (a missing
	// key): apply again until it is there (hang guard 60 s).
	testkit.Until(t, 60*time.Second, func() error {
		r := stateApply(t, url, "st1", json.RawMessage(`["peers"]`))
		if r.Success {
			return nil
		}
		if r.Error == nil || r.Error.Code != state.CodeCompile {
			t.Fatalf("state.apply: %+v %s", r.Error, r.Result)
		}
		return fmt.Errorf("state.apply: %+v %s", r.Error, r.Result)
	})
	if b, _ := os.ReadFile(target); string(b) != "db\n" {
		t.Errorf("peers = %q, want st2's basket entry", b)
	}
}

// stateApply runs state.apply with args on peel through the masters and
// returns its stored return.
func stateApply(t *testing.T, url, peel string, args json.RawMessage) wire.Return {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	jid := submit(t, nc, wire.RunRequest{Target: wire.Target{Expr: peel}, Function: "state.apply", Args: args})
	waitReturn(t, js, jid, peel)
	return storedReturn(t, js, jid, peel)
}
