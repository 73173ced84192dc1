// Package kvwatch follows a KV bucket (Watch) or any stream (Follow) through
// a chain of ephemeral pull consumers, with a watchdog.
//
// nats.go's KeyValue.Watch is a push consumer with a 5 s idle heartbeat: when
// the server holding its consumer restarts or loses the stream leadership, the
// watch notices only after two missed heartbeats (about 10 s) and a master's
// membership, fact index and job engine go blind for that long. nats.go's
// ordered consumer notices faster but retries its reset under one consumer
// name forever, which stays blind while that name is placed on a dead node.
// A Follower pulls with a 1 s heartbeat, gives a consumer up after two missed
// heartbeats (or when it is reported gone, or on a reconnect) and creates the
// next one under a fresh name with a bounded wait, resuming after the last
// stream sequence it handed on, so nothing is skipped or seen twice out of
// order. A Monitor reports which watches are blind (for /readyz) and counts
// the replacements.
package kvwatch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
)

// Entry is one KV change. Its methods are those of jetstream.KeyValueEntry
// that a watcher needs, so code can take either.
type Entry struct {
	key      string
	value    []byte
	revision uint64
	op       jetstream.KeyValueOp
	created  time.Time
}

func (e *Entry) Key() string                     { return e.key }
func (e *Entry) Value() []byte                   { return e.value }
func (e *Entry) Revision() uint64                { return e.revision }
func (e *Entry) Created() time.Time              { return e.created }
func (e *Entry) Operation() jetstream.KeyValueOp { return e.op }

// KeyValueEntry is one change of a KV bucket as a watcher sees it: what Entry
// and jetstream.KeyValueEntry have in common, so code can take either.
type KeyValueEntry interface {
	Key() string
	Value() []byte
	Revision() uint64
	Created() time.Time
	Operation() jetstream.KeyValueOp
}

// Options tune a watch.
type Options struct {
	// Name names the watch in health reports and consumer names (default:
	// the bucket).
	Name string
	// Filters are key filters (KV wildcards); none means every key.
	Filters []string
	// UpdatesOnly skips the current values and starts with the next change.
	UpdatesOnly bool
	// MetaOnly delivers keys and revisions without values.
	MetaOnly bool
	// Heartbeat is the idle heartbeat of the consumer (default 1 s).
	Heartbeat time.Duration
	// OnError receives consume errors (resets are handled here).
	OnError func(error)
	// Monitor, when set, tracks the watch's health until Stop.
	Monitor *Monitor
}

// Watcher delivers entries on Updates; a nil entry marks the end of the
// current values (at once with UpdatesOnly or an empty bucket).
type Watcher struct {
	updates chan *Entry
	f       *Follower
	stop    context.CancelFunc
}

// Watch starts following bucket.
func Watch(ctx context.Context, js jetstream.JetStream, bucket string, o Options) (*Watcher, error) {
	prefix := names.KVSubjectPrefix(bucket)
	filters := o.Filters
	if len(filters) == 0 {
		filters = []string{">"}
	}
	name := o.Name
	if name == "" {
		name = bucket
	}
	fo := FollowOptions{Name: name, HeadersOnly: o.MetaOnly, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		Heartbeat: o.Heartbeat, OnError: o.OnError, Monitor: o.Monitor}
	for _, f := range filters {
		fo.Subjects = append(fo.Subjects, prefix+f)
	}
	stream := names.KVStream(bucket)
	if o.UpdatesOnly {
		// An explicit start, not "new": a reset before the first delivery
		// must not skip what arrived in between.
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", bucket, err)
		}
		fo.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		fo.StartSeq = st.CachedInfo().State.LastSeq + 1
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{updates: make(chan *Entry, 256), stop: cancel}
	send := func(e *Entry) bool {
		select {
		case w.updates <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	fo.OnCaughtUp = func() { send(nil) }
	f, err := Follow(ctx, js, stream, fo, func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		e := &Entry{key: strings.TrimPrefix(msg.Subject(), prefix), value: msg.Data(), revision: md.Sequence.Stream, created: md.Timestamp, op: jetstream.KeyValuePut}
		switch msg.Headers().Get(names.HeaderKVOperation) {
		case names.KVOpDelete:
			e.op = jetstream.KeyValueDelete
		case names.KVOpPurge:
			e.op = jetstream.KeyValuePurge
		}
		if msg.Headers().Get(jetstream.MarkerReasonHeader) != "" {
			e.op = jetstream.KeyValuePurge // a TTL limit marker: the key expired
		}
		send(e)
	})
	if err != nil {
		cancel()
		return nil, err
	}
	w.f = f
	return w, nil
}

// Updates delivers the entries.
func (w *Watcher) Updates() <-chan *Entry { return w.updates }

// Current hands fn the bucket's current values, up to the nil entry that
// ends them, and returns; it returns ctx's error if ctx ends first.
func (w *Watcher) Current(ctx context.Context, fn func(KeyValueEntry)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-w.updates:
			if e == nil {
				return nil
			}
			fn(e)
		}
	}
}

// Each hands fn every entry, the current values and each change after them
// (the nil entry between them is not handed on), until ctx ends.
func (w *Watcher) Each(ctx context.Context, fn func(KeyValueEntry)) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-w.updates:
			if e != nil {
				fn(e)
			}
		}
	}
}

// Health is the watch's state now.
func (w *Watcher) Health() Health { return w.f.Health() }

// Stop ends the watch.
func (w *Watcher) Stop() {
	w.stop()
	w.f.Stop()
}
