package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/statetree/statetreetest"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/peel/state/mod"
)

// recordedHighstate is where the simulated fleet's state answers come
// from (internal/simfleet/state.go): the results of a real peel's first
// (cold) and second (warm) highstate of statetreetest.Highstate(50).
var recordedHighstate = map[string]string{
	"cold": "../simfleet/testdata/highstate50-cold.json",
	"warm": "../simfleet/testdata/highstate50-warm.json",
}

// A real peel's 50-state highstate through the masters, twice: the first
// run changes every state, the second none. The results are what the
// simulated fleet answers with; ZESTER_RECORD=1 rewrites them, otherwise
// the test checks the recording still is what a real peel returns: the
// same states, the same outcome, a size within 20%.
func TestStateRecord_Highstate50Return(t *testing.T) {
	_, url := serverAndMaster(t)
	out := t.TempDir()
	states := t.TempDir()
	writeTree(t, states, statetreetest.Highstate(50, out))
	mcfg := mastertest.Config("m2", url)
	mcfg.StatesDir = states
	mastertest.Start(t, mcfg)
	nc, js := testkit.ConnectJS(t, url)
	waitUntil(t, "the tree published", func() bool { return len(manifestOf(nc).Files) == 51 })
	cfg := peeltest.Config(t, "web1", url)
	cfg.StatesDir = filepath.Join(t.TempDir(), "absent")
	peeltest.Start(t, cfg)
	for _, run := range []string{"cold", "warm"} {
		jid := submit(t, nc, wire.RunRequest{Target: wire.Target{Expr: "web1"}, Function: "state.highstate", Timeout: wire.Duration(60 * time.Second)})
		waitReturn(t, js, jid, "web1")
		r := storedReturn(t, js, jid, "web1")
		var got map[string]mod.Run
		if err := json.Unmarshal(r.Result, &got); err != nil || !r.Success || len(got) != 50 {
			t.Fatalf("%s highstate: %v %+v, %d states", run, err, r.Error, len(got))
		}
		changed := 0
		for _, s := range got {
			if len(s.Changes) > 0 {
				changed++
			}
		}
		if want := map[string]int{"cold": 50, "warm": 0}[run]; changed != want {
			t.Fatalf("%s highstate: %d states changed, want %d", run, changed, want)
		}
		// The host paths as a real tree has them (not the test's temporary
		// directory, whose name is three times longer).
		res := bytes.ReplaceAll(r.Result, []byte(out), []byte("/etc/zester"))
		path := recordedHighstate[run]
		if os.Getenv("ZESTER_RECORD") == "1" {
			if err := os.WriteFile(path, append(res, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("recorded %s: %d bytes", path, len(res))
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (ZESTER_RECORD=1 records it)", err)
		}
		var rec map[string]mod.Run
		if err := json.Unmarshal(b, &rec); err != nil || len(rec) != len(got) {
			t.Fatalf("%s: %v, %d states, want %d", path, err, len(rec), len(got))
		}
		for k, s := range got {
			if rs, ok := rec[k]; ok && (rs.Status != s.Status || (len(rs.Changes) > 0) != (len(s.Changes) > 0)) {
				t.Errorf("%s: state %s: recorded %v, now %v", path, k, rs.Result, s.Result)
			}
		}
		if ratio := float64(len(b)) / float64(len(res)); ratio < 0.8 || ratio > 1.2 {
			t.Errorf("%s: %d bytes, a real peel returns %d now: record again (ZESTER_RECORD=1)", path, len(b), len(res))
		}
	}
}
