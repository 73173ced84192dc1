package master_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
)

func TestMaster_Bootstrap_CreatesSeedBuckets(t *testing.T) {
	s := testkit.Server(t)
	mastertest.Start(t, mastertest.Config("m1", s.ClientURL()))
	js := testkit.JetStream(t, s.ClientURL())
	ctx := context.Background()
	for _, b := range master.Buckets {
		kv, err := js.KeyValue(ctx, b.Name)
		if err != nil {
			t.Fatalf("bucket %s: %v", b.Name, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
		if st.TTL() != b.TTL || st.History() != int64(b.History) || info.Config.Storage != b.Storage {
			t.Errorf("bucket %s: ttl %s history %d storage %s; want %s %d %s", b.Name, st.TTL(), st.History(), info.Config.Storage, b.TTL, b.History, b.Storage)
		}
	}
	st, err := js.Stream(ctx, names.StreamJobEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxAge != 7*24*time.Hour || cfg.Retention != jetstream.LimitsPolicy {
		t.Errorf("job-events: max age %s retention %s", cfg.MaxAge, cfg.Retention)
	}
}

func TestMaster_Restart_KeepsDataAndOperatorRetention(t *testing.T) {
	s := testkit.Server(t)
	h := mastertest.Start(t, mastertest.Config("m1", s.ClientURL()))
	js := testkit.JetStream(t, s.ClientURL())
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "web1.example.com", []byte(`{"os":{"id":"debian"}}`)); err != nil {
		t.Fatal(err)
	}
	// An operator's `nats stream edit KV_jobs --max-age 14d`.
	st, _ := js.Stream(ctx, "KV_jobs")
	c := st.CachedInfo().Config
	c.MaxAge = 14 * 24 * time.Hour
	if _, err := js.UpdateStream(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	mastertest.Start(t, mastertest.Config("m1", s.ClientURL()))
	e, err := kv.Get(ctx, "web1.example.com")
	if err != nil || !strings.Contains(string(e.Value()), "debian") {
		t.Fatalf("facts lost on restart: %v", err)
	}
	st, _ = js.Stream(ctx, "KV_jobs")
	if got := st.CachedInfo().Config.MaxAge; got != 14*24*time.Hour {
		t.Fatalf("restart undid the operator's max age: %s", got)
	}
	// Retention set in the config is applied.
	cfg := mastertest.Config("m2", s.ClientURL())
	cfg.Retention.JobReturns = config.Dur(3 * 24 * time.Hour)
	mastertest.Start(t, cfg)
	st, _ = js.Stream(ctx, "KV_job-returns")
	if got := st.CachedInfo().Config.MaxAge; got != 3*24*time.Hour {
		t.Fatalf("config retention not applied: %s", got)
	}
}

func TestMaster_Ping_TwoPeels(t *testing.T) {
	s := testkit.Server(t)
	url := s.ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "web1.example.com", url))
	peeltest.Start(t, peeltest.Config(t, "web2", url))

	code, out, errOut := clitest.Zester(t, url, "run", "--timeout", "10s", "*", "test.ping")
	if code != 0 {
		t.Fatalf("run exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"web1.example.com: true", "web2: true", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// JSON mode: one object per return, then a summary.
	code, out, _ = clitest.Zester(t, url, "run", "--json", "-L", "web2", "test.echo", "hello")
	if code != 0 {
		t.Fatalf("echo exit %d: %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out)
	}
	var r wire.Return
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.Peel != "web2" || string(r.Result) != `"hello"` {
		t.Fatalf("return %q: %v", lines[0], err)
	}
	// Jobs, returns and events are recorded.
	js := testkit.JetStream(t, url)
	ctx := context.Background()
	st, _ := js.Stream(ctx, names.StreamJobEvents)
	info, _ := st.Info(ctx)
	if info.State.Msgs < 4 {
		t.Errorf("job-events holds %d events, want created+running+done per job", info.State.Msgs)
	}
	// Peels, facts.
	code, out, _ = clitest.Zester(t, url, "peels")
	if code != 0 || !strings.Contains(out, "web1.example.com") || !strings.Contains(out, "2 peels") {
		t.Fatalf("peels: %d %s", code, out)
	}
	code, out, _ = clitest.Zester(t, url, "facts", "web2")
	if code != 0 || !strings.Contains(out, `"kernel"`) {
		t.Fatalf("facts: %d %s", code, out)
	}
	// Shell completion of peel ids comes from the facts bucket.
	code, out, _ = clitest.Zester(t, url, "__complete", "facts", "web")
	if code != 0 || !strings.Contains(out, "web1.example.com\n") || !strings.Contains(out, "web2\n") {
		t.Fatalf("completion: %d %q", code, out)
	}
	// An unknown function: a clear error in the return, exit 1.
	code, out, _ = clitest.Zester(t, url, "run", "web2", "no.such")
	if code != 1 || !strings.Contains(out, "unknown_function") {
		t.Fatalf("unknown function: exit %d\n%s", code, out)
	}
	// A target that does not parse never reaches a master.
	code, _, errOut = clitest.Zester(t, url, "run", "-E", "web(", "test.ping")
	if code != 3 || !strings.Contains(errOut, "column") {
		t.Fatalf("bad target: exit %d %s", code, errOut)
	}
}

func TestMaster_Run_NamesMissingPeel(t *testing.T) {
	s := testkit.Server(t)
	url := s.ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "alive", url))
	gone := peeltest.Start(t, peeltest.Config(t, "gone", url))
	if err := gone.Stop(); err != nil {
		t.Fatal(err)
	}
	// A peel stopped cleanly said goodbye: the job does not wait for it
	// (TestPresence_* has the rest) and lists it as offline.
	code, out, errOut := clitest.Zester(t, url, "run", "--timeout", "30s", "*", "test.ping")
	if code != 2 {
		t.Fatalf("want exit 2 (offline), got %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "offline (not sent, not waited for): gone") || !strings.Contains(out, "partial") || strings.Contains(out, "did not answer") {
		t.Fatalf("summary does not name the offline peel:\n%s", out)
	}
}

func TestConfig_UnknownAndBadKeysNamed(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"id: m1\nnats:\n  urll: nats://x\n", "urll"},
		{"id: m1\nbogus: 1\n", "bogus"},
		{"id: m1\npartitions: 0\n", "partitions"},
		{"id: m1\nheartbeat: fast\n", "heartbeat"},
		{"id: 'bad id'\n", "config key id"},
		{"id: m1\nnodegroups:\n  web: 'G@os:'\n", "nodegroups.web"},
	} {
		_, err := master.ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v does not name %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := master.ParseConfig([]byte("id: m1\nnats:\n  url: nats://127.0.0.1:4222\nretention:\n  jobs: 14d\n")); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func configBytes(n int64) config.ByteSize { return config.Bytes(n) }

func TestMaster_CmdRun_NonZeroExitIsFailure(t *testing.T) {
	s := testkit.Server(t)
	url := s.ClientURL()
	m := mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "web1", url))
	code, out, _ := clitest.Zester(t, url, "run", "web1", "cmd.run", "echo partial output; exit 3")
	if code != 1 || !strings.Contains(out, "exited with status 3") || !strings.Contains(out, "partial output") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// Finished jobs leave the active set.
	testkit.Eventually(t, "no active jobs", 60*time.Second, func() bool { return activeJobs(t, m) == 0 })
}

func activeJobs(t *testing.T, m *mastertest.Handle) int { return m.ActiveJobs() }
