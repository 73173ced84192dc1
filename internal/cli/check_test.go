package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/shard"
)

// row finds a check's line in the table: name, status, detail.
func row(t *testing.T, out, check string) (status, detail string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(check) + `\s+(ok|FAIL)\s+(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no row %q in:\n%s", check, out)
	}
	return m[1], m[2]
}

// zester check, end to end against a real server and real masters: a
// healthy deployment passes (exit 0), and each fault an operator meets makes
// it exit 1 naming what is wrong.
func TestCheck_HealthyThenFaultsNamed(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	m1 := mastertest.Start(t, mastertest.Config("m1", url))
	m2 := mastertest.Start(t, mastertest.Config("m2", url))
	check := func(args ...string) (int, string) {
		t.Helper()
		code, out, errOut := clitest.Zester(t, url, append([]string{"check", "--dead-after", "1500ms", "--settle", "30s"}, args...)...)
		return code, out + errOut
	}

	code, out := check()
	if code != 0 || !strings.Contains(out, "all 14 checks passed") {
		t.Fatalf("healthy deployment: exit %d\n%s", code, out)
	}
	for _, b := range []string{"facts", "settings-files", "secrets", "basket", "jobs", "job-returns", "master-heartbeat", "enrollments", "enroll-challenges", "state-tree"} {
		if st, _ := row(t, out, "bucket "+b); st != "ok" {
			t.Errorf("bucket %s: %s", b, st)
		}
	}
	if _, d := row(t, out, "bucket facts"); d != "history 5, TTL none, file, R1, leader single, 1/1 current" {
		t.Errorf("bucket facts detail %q", d)
	}
	if _, d := row(t, out, "bucket enroll-challenges"); !strings.Contains(d, "TTL 5m,") || !strings.Contains(d, "memory") {
		t.Errorf("enroll-challenges detail %q", d)
	}
	if _, d := row(t, out, "masters"); !strings.HasPrefix(d, "2 alive: m1 (") || !strings.Contains(d, "m2 (") {
		t.Errorf("masters detail %q", d)
	}
	if _, d := row(t, out, "partitions"); d != "64 of 64 owned exactly once" {
		t.Errorf("partitions detail %q", d)
	}
	code, js, _ := clitest.Zester(t, url, "check", "--json")
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Check string `json:"check"`
			OK    bool   `json:"ok"`
		} `json:"checks"`
	}
	if code != 0 || json.Unmarshal([]byte(js), &rep) != nil || !rep.OK || len(rep.Checks) != 14 {
		t.Fatalf("--json: exit %d %s", code, js)
	}

	if st, d := row(t, out, "peels"); st != "ok" || d != "0 known: 0 online, 0 offline" {
		t.Errorf("peels: %s %q", st, d)
	}

	nc := testkit.Connect(t, url)

	// Faults, made the way an operator would (nats stream edit / rm).
	jsm, _ := jetstream.New(nc)
	ctx := context.Background()
	edit := func(stream string, f func(*jetstream.StreamConfig)) {
		t.Helper()
		st, err := jsm.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		f(&cfg)
		if _, err := jsm.UpdateStream(ctx, cfg); err != nil {
			t.Fatalf("edit %s: %v", stream, err)
		}
	}

	// A retention the operator set is shown, not failed.
	edit("KV_jobs", func(c *jetstream.StreamConfig) { c.MaxAge = 14 * 24 * time.Hour })
	if code, out := check(); code != 0 {
		t.Fatalf("after a retention change: exit %d\n%s", code, out)
	} else if _, d := row(t, out, "bucket jobs"); !strings.Contains(d, "TTL 14d (set by retention; default 7d)") {
		t.Errorf("bucket jobs detail %q", d)
	}

	// Wrong history, wrong TTL, a missing bucket: each named.
	edit("KV_settings-files", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 2 })
	edit("KV_master-heartbeat", func(c *jetstream.StreamConfig) { c.MaxAge = time.Minute })
	if err := jsm.DeleteStream(ctx, "KV_basket"); err != nil {
		t.Fatal(err)
	}
	code, out = check()
	if code != 1 || !strings.Contains(out, "3 of 14 checks failed") {
		t.Fatalf("after three faults: exit %d\n%s", code, out)
	}
	for check, want := range map[string]string{
		"bucket settings-files":   "history 2, want 3",
		"bucket master-heartbeat": "TTL 1m, want 15s",
		"bucket basket":           "missing (stream KV_basket does not exist",
	} {
		if st, d := row(t, out, check); st != "FAIL" || !strings.Contains(d, want) {
			t.Errorf("%s: %s %q, want FAIL naming %q", check, st, d, want)
		}
	}
	// --replicas names every stream that has fewer.
	code, out = check("--replicas", "3")
	if st, d := row(t, out, "stream job-events"); code != 1 || st != "FAIL" || !strings.Contains(d, "1 replicas, want 3") {
		t.Errorf("--replicas 3 on one server: exit %d, job-events %s %q", code, st, d)
	}

	// Peels as the masters' presence sees them, from beats of the real
	// protocol: one online, then stopped cleanly (offline is reported, not
	// failed), then an id beaten by two processes at once (failed).
	beat := func(id, instance string, bye bool) {
		t.Helper()
		if err := nc.PublishMsg(peelproto.BeatMsg(shard.Partition(id, 64), id, wire.Beat{Instance: instance, Bye: bye, Interval: wire.Duration(10 * time.Second)})); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	peels := func(wantStatus, wantDetail string) {
		t.Helper()
		testkit.Until(t, 60*time.Second, func() error {
			_, out := check()
			if st, d := row(t, out, "peels"); st != wantStatus || !strings.Contains(d, wantDetail) {
				return fmt.Errorf("peels row %s %q, want %s with %q", st, d, wantStatus, wantDetail)
			}
			return nil
		})
	}
	beat("web1.example.com", "a1", false)
	peels("ok", "1 known: 1 online, 0 offline")
	beat("web1.example.com", "a1", true)
	peels("ok", "1 known: 0 online, 1 offline (offline: web1.example.com)")
	for _, inst := range []string{"c1", "c2", "c1", "c2"} {
		beat("clone.example.com", inst, false)
	}
	peels("FAIL", "duplicate id, beaten by two processes at once (a cloned host?): clone.example.com")
	if code, _ := check(); code != 1 {
		t.Errorf("with a duplicate id: exit %d, want 1", code)
	}

	// A master that died leaves a heartbeat behind until its TTL: named as
	// dead; its partitions pass to the survivor and are owned once again.
	m2.Kill()
	// m1 owning everything means it found m2's heartbeat older than
	// dead_after (1.5 s, the --dead-after given to check).
	testkit.Eventually(t, "m1 owns all 64 partitions after m2 died", 60*time.Second, func() bool { return len(m1.Owned()) == 64 })
	code, out = check()
	if st, d := row(t, out, "masters"); code != 1 || st != "FAIL" || !strings.Contains(d, "dead: m2 (last heartbeat") || !strings.Contains(d, "1 alive: m1 (64)") {
		t.Errorf("after killing m2: exit %d, masters %s %q", code, st, d)
	}
	if st, d := row(t, out, "partitions"); st != "ok" || d != "64 of 64 owned exactly once" {
		t.Errorf("after killing m2: partitions %s %q", st, d)
	}
	// No master at all.
	if err := m1.Stop(); err != nil {
		t.Fatal(err)
	}
	code, out = check()
	if st, d := row(t, out, "partitions"); code != 1 || st != "FAIL" || !strings.Contains(d, "no live master") {
		t.Errorf("without masters: exit %d, partitions %s %q", code, st, d)
	}
}

// Without NATS the command itself fails (exit 3) and says where it looked.
func TestCheck_NoServer(t *testing.T) {
	code, _, errOut := clitest.Zester(t, "nats://127.0.0.1:1", "check")
	if code != 3 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("exit %d %s", code, errOut)
	}
}
