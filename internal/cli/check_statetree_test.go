package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/statetree/statetreetest"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master/mastertest"
)

// zester check checks the published state tree in its bucket's row: a
// master's tree passes with its pack described; a corrupt pack and a
// missing content fail it, naming them; a master started over the bucket
// writes the pack again.
func TestCheck_StateTreePack(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	dir := t.TempDir()
	files := statetreetest.Highstate(6, "/etc/zester")
	statetreetest.Write(t, dir, files)
	cfg := mastertest.Config("m1", url)
	cfg.StatesDir = dir
	mastertest.Start(t, cfg)
	nc, js := testkit.ConnectJS(t, url)
	ctx := context.Background()
	var version string
	testkit.Eventually(t, "the tree published", 30*time.Second, func() bool {
		version, _ = statetree.Current(ctx, nc)
		return version != ""
	})
	// check runs zester check --json and gives the state-tree row.
	check := func() (code int, ok bool, detail, problems string) {
		t.Helper()
		code, out, _ := clitest.Zester(t, url, "check", "--json", "--dead-after", "1500ms", "--settle", "30s")
		var rep struct {
			Checks []struct {
				Check    string   `json:"check"`
				OK       bool     `json:"ok"`
				Detail   string   `json:"detail"`
				Problems []string `json:"problems"`
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("zester check --json: %v\n%s", err, out)
		}
		for _, r := range rep.Checks {
			if r.Check == "bucket "+names.BucketStateTree {
				return code, r.OK, r.Detail, strings.Join(r.Problems, "; ")
			}
		}
		t.Fatalf("no state-tree row in %s", out)
		return
	}
	if code, ok, d, p := check(); code != 0 || !ok || !strings.Contains(d, "tree "+version[:12]+": 7 files") || !strings.Contains(d, ", pack ") {
		t.Fatalf("healthy: exit %d, ok %v, %q %q", code, ok, d, p)
	}

	pack, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreePackKey(version))
	if err != nil {
		t.Fatal(err)
	}
	spoilt := append([]byte(nil), pack...)
	spoilt[len(spoilt)/2] ^= 0xff
	if _, err := peelproto.PutKV(ctx, js, names.BucketStateTree, names.StateTreePackKey(version), spoilt); err != nil {
		t.Fatal(err)
	}
	if code, ok, _, p := check(); code != 1 || ok || !strings.Contains(p, "state tree "+version[:12]+": state tree pack refused") {
		t.Fatalf("corrupt pack: exit %d, ok %v, problems %q", code, ok, p)
	}

	// A second master's start finds the pack spoilt and writes it again.
	cfg2 := mastertest.Config("m2", url)
	cfg2.StatesDir = dir
	mastertest.Start(t, cfg2)
	testkit.Eventually(t, "the pack written again", 30*time.Second, func() bool {
		_, ok, _, _ := check()
		return ok
	})

	kv, err := js.KeyValue(ctx, names.BucketStateTree)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := statetree.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, names.StateTreeFileKey(m.Files["svc02.sls"].Digest)); err != nil {
		t.Fatal(err)
	}
	if code, ok, _, p := check(); code != 1 || ok || !strings.Contains(p, "svc02.sls: content") || !strings.Contains(p, "is missing") {
		t.Fatalf("missing content: exit %d, ok %v, problems %q", code, ok, p)
	}
}
