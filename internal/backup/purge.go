package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jsm.go"
	"github.com/nats-io/jsm.go/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
)

// PurgePlan is one purge of the seed's "Purging Old Data" section, worked
// out against the server but not yet done.
type PurgePlan struct {
	Stream string `json:"stream"`
	// Key is set for a KV key delete.
	Bucket string `json:"bucket,omitempty"`
	Key    string `json:"key,omitempty"`
	// What says in words what will go.
	What string `json:"what"`
	// Messages is how many messages the stream holds now, Remove how many
	// of them the purge removes.
	Messages uint64 `json:"messages"`
	Remove   uint64 `json:"remove"`

	req *api.JSApiStreamPurgeRequest
}

// PlanPurgeReturns plans removing job returns stored before now-olderThan,
// or all of them (the seed's `nats stream purge KV_job-returns --keep 0`).
func PlanPurgeReturns(ctx context.Context, js jetstream.JetStream, olderThan time.Duration, all bool) (*PurgePlan, error) {
	name := KVStream(names.BucketJobReturns)
	st, err := stream(ctx, js, name)
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	p := &PurgePlan{Stream: name, Messages: state.Msgs}
	if all {
		p.Remove = state.Msgs
		p.What = fmt.Sprintf("all %d job returns (every message of %s)", state.Msgs, name)
		p.req = &api.JSApiStreamPurgeRequest{}
		return p, nil
	}
	if olderThan <= 0 {
		return nil, errors.New("purge job-returns: give --older-than DURATION or --all")
	}
	cutoff := time.Now().Add(-olderThan)
	// The first message stored at or after the cutoff, and how many follow,
	// come from a consumer that starts there: everything before it goes.
	cons, err := js.CreateConsumer(ctx, name, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &cutoff,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	defer func() { _ = js.DeleteConsumer(context.WithoutCancel(ctx), name, cons.CachedInfo().Name) }()
	seq := state.LastSeq + 1 // nothing newer than the cutoff: purge everything
	var keep uint64
	if pending := cons.CachedInfo().NumPending; pending > 0 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			seq = md.Sequence.Stream
			keep = md.NumPending + 1
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		if keep == 0 {
			return nil, fmt.Errorf("stream %s: could not read the first message after %s", name, cutoff.Format(time.RFC3339))
		}
	}
	if keep > state.Msgs {
		keep = state.Msgs
	}
	p.Remove = state.Msgs - keep
	p.What = fmt.Sprintf("%d of %d job returns, those stored before %s (older than %s)", p.Remove, state.Msgs, cutoff.Format(time.RFC3339), olderThan)
	p.req = &api.JSApiStreamPurgeRequest{Sequence: seq}
	return p, nil
}

// PlanPurgeEvents plans keeping only the newest keep messages of job-events
// (the seed's `nats stream purge job-events --keep 10000`).
func PlanPurgeEvents(ctx context.Context, js jetstream.JetStream, keep uint64) (*PurgePlan, error) {
	st, err := stream(ctx, js, names.StreamJobEvents)
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	p := &PurgePlan{Stream: names.StreamJobEvents, Messages: state.Msgs}
	if state.Msgs > keep {
		p.Remove = state.Msgs - keep
	}
	p.What = fmt.Sprintf("%d of %d job events, keeping the newest %d", p.Remove, state.Msgs, keep)
	if keep == 0 {
		p.req = &api.JSApiStreamPurgeRequest{}
	} else {
		p.req = &api.JSApiStreamPurgeRequest{Keep: keep}
	}
	return p, nil
}

// PlanPurgeFacts plans deleting a peel's facts (the seed's
// `nats kv del facts <peel-id>`). A running peel republishes them at once.
func PlanPurgeFacts(ctx context.Context, js jetstream.JetStream, peel string) (*PurgePlan, error) {
	if err := names.ValidateID(peel); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, names.BucketFacts)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.BucketFacts, err)
	}
	key := names.FactsKey(peel)
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("no facts for peel %s in bucket %s", peel, names.BucketFacts)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.BucketFacts, err)
	}
	return &PurgePlan{
		Stream:   KVStream(names.BucketFacts),
		Bucket:   names.BucketFacts,
		Key:      key,
		Messages: 1,
		Remove:   1,
		What: fmt.Sprintf("the facts of peel %s (revision %d, %d bytes, written %s); a running peel republishes them at once",
			peel, e.Revision(), len(e.Value()), e.Created().Local().Format(time.DateTime)),
	}, nil
}

// Apply does the purge and returns how many messages the server removed
// (for a KV delete: 1, the key's value, which a delete marker replaces).
func (p *PurgePlan) Apply(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (uint64, error) {
	if p.Key != "" {
		kv, err := js.KeyValue(ctx, p.Bucket)
		if err != nil {
			return 0, fmt.Errorf("bucket %s: %w", p.Bucket, err)
		}
		if err := kv.Delete(ctx, p.Key); err != nil {
			return 0, fmt.Errorf("delete %s from %s: %w", p.Key, p.Bucket, err)
		}
		return 1, nil
	}
	mgr, err := jsm.New(nc, jsm.WithTimeout(30*time.Second))
	if err != nil {
		return 0, err
	}
	st, err := mgr.LoadStream(p.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", p.Stream, err)
	}
	resp, err := st.PurgeExt(p.req)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", p.Stream, err)
	}
	return resp.Purged, nil
}

func stream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s not found (is a master running against this server?)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return st, nil
}
