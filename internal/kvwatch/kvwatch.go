// Package kvwatch follows a KV bucket through a pull-based ordered consumer.
//
// nats.go's KeyValue.Watch is a push consumer with a 5 s idle heartbeat: when
// the server holding its consumer restarts or loses the stream leadership, the
// watch notices only after two missed heartbeats (about 10 s) and a master's
// membership, fact index and job engine go blind for that long. The pull
// ordered consumer used here resets at once on a reconnect and after two
// missed 1 s heartbeats otherwise, resuming after the last revision it
// delivered, so nothing is skipped or seen twice out of order.
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

// Interface is what Entry and jetstream.KeyValueEntry have in common.
type Interface interface {
	Key() string
	Value() []byte
	Revision() uint64
	Created() time.Time
	Operation() jetstream.KeyValueOp
}

// Options tune a watch.
type Options struct {
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
}

// Watcher delivers entries on Updates; a nil entry marks the end of the
// current values (at once with UpdatesOnly or an empty bucket).
type Watcher struct {
	updates chan *Entry
	cc      jetstream.ConsumeContext
	stop    context.CancelFunc
}

// Watch starts following bucket.
func Watch(ctx context.Context, js jetstream.JetStream, bucket string, o Options) (*Watcher, error) {
	prefix := names.KVSubjectPrefix(bucket)
	filters := o.Filters
	if len(filters) == 0 {
		filters = []string{">"}
	}
	cfg := jetstream.OrderedConsumerConfig{HeadersOnly: o.MetaOnly, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	for _, f := range filters {
		cfg.FilterSubjects = append(cfg.FilterSubjects, prefix+f)
	}
	stream := names.KVStream(bucket)
	if o.UpdatesOnly {
		// An explicit start, not "new": a reset before the first delivery
		// must not skip what arrived in between.
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", bucket, err)
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = st.CachedInfo().State.LastSeq + 1
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", bucket, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", bucket, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{updates: make(chan *Entry, 256), stop: cancel}
	initial := info.NumPending > 0
	if !initial {
		w.updates <- nil
	}
	hb := o.Heartbeat
	if hb == 0 {
		hb = time.Second
	}
	send := func(e *Entry) bool {
		select {
		case w.updates <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		e := &Entry{key: strings.TrimPrefix(msg.Subject(), prefix), value: msg.Data(), revision: md.Sequence.Stream, created: md.Timestamp, op: jetstream.KeyValuePut}
		switch msg.Headers().Get("KV-Operation") {
		case "DEL":
			e.op = jetstream.KeyValueDelete
		case "PURGE":
			e.op = jetstream.KeyValuePurge
		}
		if msg.Headers().Get("Nats-Marker-Reason") != "" {
			e.op = jetstream.KeyValuePurge // a TTL limit marker: the key expired
		}
		if !send(e) {
			return
		}
		if initial && md.NumPending == 0 {
			initial = false
			send(nil)
		}
	}, jetstream.PullHeartbeat(hb), jetstream.PullExpiry(5*hb), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if o.OnError != nil {
			o.OnError(err)
		}
	}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", bucket, err)
	}
	w.cc = cc
	return w, nil
}

// Updates delivers the entries.
func (w *Watcher) Updates() <-chan *Entry { return w.updates }

// Stop ends the watch.
func (w *Watcher) Stop() {
	w.stop()
	w.cc.Stop()
}
