package master

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/layout"
	"github.com/zester-io/zester/internal/names"
)

// BucketSpec is one KV bucket of the seed document's table.
type BucketSpec = layout.Bucket

// Buckets is the seed's table of KV buckets, in its order.
var Buckets = layout.Buckets

// JobEventsMaxAge is the default retention of the job-events stream.
const JobEventsMaxAge = layout.JobEventsMaxAge

// Layout says where buckets and streams go.
type Layout struct {
	Replicas  int
	Placement string
	Retention RetentionConfig
}

func (l Layout) placement() *jetstream.Placement {
	if l.Placement == "" {
		return nil
	}
	return &jetstream.Placement{Cluster: l.Placement}
}

// Bootstrap creates every KV bucket and the job-events stream that is
// missing, and leaves present ones (and their data) alone, except for the
// retention that the config sets explicitly.
func Bootstrap(ctx context.Context, js jetstream.JetStream, l Layout) error {
	if l.Replicas < 1 {
		l.Replicas = 1
	}
	// The buckets are independent: create them in parallel (a replicated
	// stream needs its own RAFT group, which takes a while on a busy
	// cluster), each call bounded and retried, so that one API request lost
	// during a leader election costs seconds, not the whole start-up.
	var wg sync.WaitGroup
	errs := make([]error, len(Buckets)+1)
	for i, b := range Buckets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = retryAPI(ctx, func(ctx context.Context) error { return ensureBucket(ctx, js, b, l) })
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[len(Buckets)] = retryAPI(ctx, func(ctx context.Context) error { return ensureJobEvents(ctx, js, l) })
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return retryAPI(ctx, func(ctx context.Context) error { return applyRetention(ctx, js, l.Retention) })
}

// retryAPI runs a JetStream API step with a 10 s bound per attempt until it
// succeeds, fails for a reason other than a timeout or a missing responder,
// or ctx ends, with backoff between attempts.
// jsErrClusterNoPeers is nats-server's JSClusterNoPeersErr, which nats.go
// names no constant for.
const jsErrClusterNoPeers jetstream.ErrorCode = 10005

func retryAPI(ctx context.Context, step func(context.Context) error) error {
	return backoff.Retry(ctx, backoff.New(100*time.Millisecond, 2*time.Second), func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := step(actx)
		if err == nil {
			return nil
		}
		// A cluster still forming answers "no suitable peers for placement"
		// (10005) until enough peers have joined the meta group.
		var apiErr *jetstream.APIError
		noPeersYet := errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrClusterNoPeers
		retry := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
			errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || noPeersYet
		if !retry {
			return backoff.Permanent(err)
		}
		return err
	})
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, b BucketSpec, l Layout) error {
	_, err := js.KeyValue(ctx, b.Name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("bucket %s: %w", b.Name, err)
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:    b.Name,
		History:   b.History,
		TTL:       b.TTL,
		Storage:   b.Storage,
		Replicas:  l.Replicas,
		Placement: l.placement(),
	}
	if b.Name == names.BucketMasterHeartbeat {
		// Watchers learn of an expired heartbeat through a purge marker.
		cfg.LimitMarkerTTL = b.TTL
	}
	if _, err := js.CreateKeyValue(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		return fmt.Errorf("create bucket %s: %w", b.Name, err)
	}
	return nil
}

func ensureJobEvents(ctx context.Context, js jetstream.JetStream, l Layout) error {
	_, err := js.Stream(ctx, names.StreamJobEvents)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", names.StreamJobEvents, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        layout.JobEvents.Name,
		Description: "Zester job lifecycle audit log",
		Subjects:    layout.JobEvents.Subjects,
		Retention:   layout.JobEvents.Retention,
		MaxAge:      layout.JobEvents.MaxAge,
		Storage:     layout.JobEvents.Storage,
		Replicas:    l.Replicas,
		Placement:   l.placement(),
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", names.StreamJobEvents, err)
	}
	return nil
}

// applyRetention sets the max age (and bytes) that the config names; a zero
// value leaves what the operator set with `nats stream edit`.
func applyRetention(ctx context.Context, js jetstream.JetStream, r RetentionConfig) error {
	set := []struct {
		stream string
		age    time.Duration
		bytes  int64
	}{
		{names.KVStream(names.BucketJobs), r.Jobs.D(), 0},
		{names.KVStream(names.BucketJobReturns), r.JobReturns.D(), 0},
		{names.StreamJobEvents, r.JobEvents.D(), r.JobEventsMaxBytes.N()},
	}
	for _, s := range set {
		if s.age == 0 && s.bytes == 0 {
			continue
		}
		st, err := js.Stream(ctx, s.stream)
		if err != nil {
			return fmt.Errorf("retention of %s: %w", s.stream, err)
		}
		cfg := st.CachedInfo().Config
		changed := false
		if s.age != 0 && cfg.MaxAge != s.age {
			cfg.MaxAge, changed = s.age, true
		}
		if s.bytes != 0 && cfg.MaxBytes != s.bytes {
			cfg.MaxBytes, changed = s.bytes, true
		}
		if changed {
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("retention of %s: %w", s.stream, err)
			}
		}
	}
	return nil
}
