package master

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvleader"
	"github.com/zester-io/zester/internal/testkit"
)

// answerLost is a bucket whose next write commits but whose answer is lost
// on the way back, as when the stream leader that stored it dies before
// acknowledging, or the client's server goes away: the writer sees the
// timeout nats.go reports when no acknowledgement comes.
type answerLost struct {
	jetstream.KeyValue
	lose bool
}

func (a *answerLost) lost(n uint64, err error) (uint64, error) {
	if err == nil && a.lose {
		a.lose = false
		return 0, context.DeadlineExceeded
	}
	return n, err
}

func (a *answerLost) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return a.lost(a.KeyValue.Create(ctx, key, value, opts...))
}

func (a *answerLost) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return a.lost(a.KeyValue.Update(ctx, key, value, rev))
}

// A create or compare-and-set whose answer was lost is retried and refused
// as a conflict with itself. putOwn takes the write for its own and returns
// its revision even when a replica that lags behind answers the read that
// checks it (testkit.LaggingReplica answers about half the direct gets,
// without the key): otherwise a master takes its own job part for another
// master's and neither tracks it nor sends it to its peels (the job times
// out with every peel missing), and the API draws a second job id for a
// job it recorded. Twelve keys, each written twice: with the direct get,
// all 24 checks would pass by chance once in 16 million.
func TestPutOwn_AnswerLost_LaggingReplica_WriteIsOurs(t *testing.T) {
	ctx := context.Background()
	nc, js := testkit.ConnectJS(t, testkit.Server(t).ClientURL())
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "jobs"})
	for _, k := range []string{"held", "probe"} {
		if err == nil {
			_, err = kv.Put(ctx, k, []byte("x"))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	testkit.LaggingReplica(t, js, kv, "held", "probe")
	for i := range 12 {
		key := fmt.Sprintf("job%02d", i)
		for _, step := range []struct {
			what string
			rev  uint64
		}{{"create", 0}, {"update", 0}} {
			if step.what == "update" {
				e, err := kvleader.Get(ctx, nc, kv.Bucket(), key)
				if err != nil {
					t.Fatal(err)
				}
				step.rev = e.Revision
			}
			value := []byte(fmt.Sprintf("%s of %s by m1", step.what, key))
			wctx, cancel := context.WithTimeout(ctx, writeWithin)
			rev, err := putOwn(wctx, nc, &answerLost{KeyValue: kv, lose: true}, key, value, step.rev)
			cancel()
			if err != nil {
				t.Fatalf("%s %s with its answer lost: %v; want the write taken as ours", step.what, key, err)
			}
			e, err := kvleader.Get(ctx, nc, kv.Bucket(), key)
			if err != nil || e.Revision != rev || string(e.Value) != string(value) {
				t.Fatalf("%s %s: putOwn says revision %d; the leader has %+v, %v", step.what, key, rev, e, err)
			}
		}
	}
}
