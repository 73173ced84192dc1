package simfleet

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/statetree/statetreetest"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
)

// Simulated peels answer state jobs as real ones do over NATS: the first
// run fetches the manifest and the pack of the job's version and
// returns the recorded cold result, a second run of the same version
// fetches nothing and returns the warm one, a run after one file changed
// fetches the manifest and that file, and a version the bucket lacks
// fails every return naming it.
func TestStates_FetchLikeAPeel(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	nc, js := testkit.ConnectJS(t, url)
	ctx := context.Background()
	if err := master.Bootstrap(ctx, js, master.Layout{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := statetreetest.Highstate(5, "/etc/zester")
	write := func() { statetreetest.Write(t, dir, files) }
	write()
	pub := &statetree.Publisher{NC: nc, JS: js, Dir: dir}
	v1, err := pub.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n, parts = 20, 4
	f, err := NewFleet(FleetConfig{Peels: n, Conns: 2, Partitions: parts, URLs: []string{url}, BeatInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if err := f.Connect(ctx, 2); err != nil {
		t.Fatal(err)
	}
	st := f.EnableStates(StateConfig{})
	kv, err := js.KeyValue(ctx, names.BucketJobReturns)
	if err != nil {
		t.Fatal(err)
	}
	// highstate dispatches a highstate pinned to version and waits for
	// every return; it gives the gets it cost and one stored return.
	k := 0
	highstate := func(version string) (int64, wire.Return) {
		t.Helper()
		k++
		jid := "statejob" + string(rune('a'+k))
		g0 := st.TreeGets.Load()
		jt := f.Job(jid)
		b, _ := json.Marshal(wire.Dispatch{JID: jid, Function: "state.highstate", All: true, StateTree: version})
		for p := range parts {
			if err := nc.Publish(names.JobSubject(p), b); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, "every return of "+jid+" stored", 30*time.Second, func() bool { return jt.Stored.Load() == n })
		e, err := kv.Get(ctx, names.ReturnKey(jid, f.ID(3)))
		if err != nil {
			t.Fatal(err)
		}
		var r wire.Return
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			t.Fatal(err)
		}
		return st.TreeGets.Load() - g0, r
	}
	gets, r := highstate(v1.Version)
	if gets != n*2 || !r.Success || !bytes.Equal(r.Result, bytes.TrimSpace(highstateCold)) {
		t.Fatalf("cold: %d gets (want %d: the manifest and the pack a peel), success %v, result of %d B", gets, n*2, r.Success, len(r.Result))
	}
	gets, r = highstate(v1.Version)
	if gets != 0 || !bytes.Equal(r.Result, bytes.TrimSpace(highstateWarm)) {
		t.Fatalf("warm: %d gets (want 0), result of %d B", gets, len(r.Result))
	}
	files["svc02.sls"] = strings.Replace(files["svc02.sls"], "v1", "v2", 1)
	write()
	v2, err := pub.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gets, _ = highstate(v2.Version); gets != n*2 {
		t.Fatalf("after one change: %d gets, want %d (the manifest and the changed file a peel)", gets, n*2)
	}
	if _, r = highstate(strings.Repeat("ab", 32)); r.Success || r.Error == nil || !strings.Contains(r.Error.Msg, statetree.ErrVersionGone.Error()) || st.Failed.Load() != n {
		t.Fatalf("a version the bucket lacks: %+v, %d failed", r.Error, st.Failed.Load())
	}
}
