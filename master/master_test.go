package master_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
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

func TestConfig_UnknownAndBadKeysNamed(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"id: m1\nnats:\n  urll: nats://x\n", "urll"},
		{"id: m1\nbogus: 1\n", "bogus"},
		{"id: m1\npartitions: 0\n", "partitions"},
		{"id: m1\nheartbeat: fast\n", "heartbeat"},
		{"id: 'bad id'\n", "config key id"},
		{"id: m1\nnodegroups:\n  web: 'G@os:'\n", "nodegroups.web"},
		{"id: m1\nindex:\n  fact_paths: [os:id, 'os:']\n", "config key index.fact_paths: fact_paths[1]"},
		{"id: m1\nindex:\n  fact_paths: ['os id']\n", "config key index.fact_paths: fact_paths[0]"},
	} {
		_, err := master.ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v does not name %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := master.ParseConfig([]byte("id: m1\nnats:\n  url: nats://127.0.0.1:4222\nretention:\n  jobs: 14d\n")); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	for yaml, want := range map[string][]string{
		"id: m1\n":                           master.DefaultIndexFactPaths,
		"id: m1\nindex:\n  fact_paths: []\n": {},
		"id: m1\nindex:\n  fact_paths: [network:interfaces:eth0:ipv4]\n": {"network:interfaces:eth0:ipv4"},
	} {
		c, err := master.ParseConfig([]byte(yaml))
		if err != nil || !slices.Equal(c.Index.FactPaths, want) {
			t.Errorf("%q: index.fact_paths %q (%v), want %q", yaml, c.Index.FactPaths, err, want)
		}
	}
}

func configBytes(n int64) config.ByteSize { return config.Bytes(n) }
