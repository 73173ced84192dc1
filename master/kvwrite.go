package master

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/kvleader"
)

// writeWithin bounds how long a job write is retried. A stream whose leader
// died is leaderless until its RAFT group elects another (the election
// timeout is 4–9 s in nats-server 2.15, then a vote): the bound covers that
// with room for a loaded cluster. The CLI's wait for an accepted job must be
// longer than this.
const writeWithin = 25 * time.Second

// Per-attempt bounds: an attempt sent to a leader that just died is never
// answered, and the next one may reach the new leader.
const (
	writeAttempt    = 2 * time.Second
	maxWriteAttempt = 5 * time.Second
	writeRetryBase  = 50 * time.Millisecond
	writeRetryCap   = time.Second
)

// errRefused reports a write the store refused for good: the key is already
// there or moved on (another writer), or the request itself is wrong. A
// retry cannot change these.
func errRefused(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.Is(err, jetstream.ErrInvalidKey) || errors.Is(err, nats.ErrMaxPayload) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, context.Canceled)
}

// errConflict is a refusal because the key is not where we expected it.
func errConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// putOwn stores value at key: a Create when rev is 0, otherwise a
// compare-and-set Update on rev. What an election makes fail (timeouts, no
// responders, no leader) is retried with backoff and full jitter until ctx
// ends.
//
// A write that timed out is indeterminate: it may have committed, and its
// retry is then refused as a conflict; or it may still be in flight at the
// stream leader, which refuses a write with an expected last sequence to a
// subject with a proposal in flight, also as a conflict. Only after such a
// write, a conflict is checked by reading the key from the stream leader (a
// replica that lags behind answers a direct get without the write): if it
// holds our value byte for byte, the write is ours and its revision is
// returned; if the key is still where our write expects it (absent, or at
// rev), the refusal was a write in flight, and we look again later. Callers
// put something unique in value (a job id, a master id, a time), so a
// byte-equal value is ours.
func putOwn(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key string, value []byte, rev uint64) (uint64, error) {
	indeterminate := false
	timeout := writeAttempt
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		var n uint64
		var err error
		if rev == 0 {
			n, err = kv.Create(actx, key, value)
		} else {
			n, err = kv.Update(actx, key, value, rev)
		}
		cancel()
		if err == nil {
			return n, nil
		}
		inFlight := false
		if errConflict(err) && indeterminate {
			actx, cancel := context.WithTimeout(ctx, writeAttempt)
			e, gerr := kvleader.Get(actx, nc, kv.Bucket(), key)
			cancel()
			switch {
			case gerr == nil && bytes.Equal(e.Value, value):
				return e.Revision, nil
			case gerr == nil && e.Revision == rev, rev == 0 && errors.Is(gerr, jetstream.ErrKeyNotFound):
				inFlight = true
			case gerr != nil && !errors.Is(gerr, jetstream.ErrKeyNotFound):
				inFlight = true // the leader did not answer: cannot tell yet
			}
		}
		if (errRefused(err) && !inFlight) || ctx.Err() != nil {
			return 0, err
		}
		// No responders means nobody took the request; anything else (a
		// timeout above all) may have been stored.
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
			indeterminate = true
		}
		if !sleepJitter(ctx, attempt, writeRetryBase, writeRetryCap) {
			return 0, err
		}
		timeout = min(2*timeout, maxWriteAttempt)
	}
}

// getWithin reads key, retrying transient failures until ctx ends.
func getWithin(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, writeAttempt)
		e, err := kv.Get(actx, key)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) || errRefused(err) || ctx.Err() != nil {
			return e, err
		}
		if !sleepJitter(ctx, attempt, writeRetryBase, writeRetryCap) {
			return nil, err
		}
	}
}

// sleepJitter sleeps a random time up to base·2^attempt (at most limit):
// exponential backoff with full jitter, so masters retrying after the same
// fault do not retry in step. It reports false when ctx ended first.
func sleepJitter(ctx context.Context, attempt int, base, limit time.Duration) bool {
	d := backoff.New(base, limit).Delay(attempt)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
