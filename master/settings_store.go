package master

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/fswatch"
	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/shard"
)

// followStore keeps s.stored[idx] equal to the content hashes the bucket
// holds, from the headers alone (a headers-only follower of the last value
// per key). The channel it returns is closed once the current entries are
// known. An entry deleted or purged, or written by someone else (no hash
// header), is rendered and written again. A large render batch pauses it
// (storeFollower.pause) for the time it writes.
func (s *settingsRenderer) followStore(ctx context.Context, idx int, bucket string) (<-chan struct{}, error) {
	sf := &storeFollower{s: s, idx: idx, bucket: bucket, ctx: ctx}
	s.followers[idx] = sf
	caught := make(chan struct{})
	var once sync.Once
	if err := sf.follow(kvwatch.FollowOptions{
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		OnCaughtUp:    func() { once.Do(func() { close(caught) }) },
	}); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { sf.stop() })
	return caught, nil
}

// storeFollower is followStore's follower of one bucket. A master's own
// writes come back to it as well: 200,000 headers the server delivers and
// the master reads for a change every peel's render depends on, though the
// master recorded each entry when the server acknowledged it. So a batch
// that writes many entries pauses the follower (no consumer) and resumes it
// after its writes: right after them when every stream sequence in between
// is one of its own acknowledged writes, else from where it paused, reading
// everything it missed (a delete, another master's write) in order.
type storeFollower struct {
	s      *settingsRenderer
	idx    int
	bucket string
	ctx    context.Context

	mu   sync.Mutex
	f    *kvwatch.Follower // nil while paused
	gen  uint64            // of the handler current; others' messages are dropped
	last uint64            // stream sequence of the last message handled (or resumed after)
}

// followPauseMin is the smallest batch that pauses the followers: a
// consumer's deletion and creation are a few requests, worth it once the
// writes' deliveries are thousands.
var followPauseMin = 2000

// afterFollowPause, when set (tests), runs once a batch has paused the
// followers and before it renders.
var afterFollowPause func()

// follow starts a follower with o's placement, handling its messages as
// the current generation.
func (sf *storeFollower) follow(o kvwatch.FollowOptions) error {
	prefix := names.KVSubjectPrefix(sf.bucket)
	sf.mu.Lock()
	sf.gen++
	gen := sf.gen
	sf.mu.Unlock()
	o.Name, o.Subjects, o.HeadersOnly = "settings-"+sf.bucket, []string{prefix + ">"}, true
	o.OnError, o.Monitor = sf.s.m.watchErr(sf.bucket), sf.s.m.watches
	f, err := kvwatch.Follow(sf.ctx, sf.s.m.js, names.KVStream(sf.bucket), o, func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		sf.mu.Lock()
		defer sf.mu.Unlock()
		if sf.gen != gen {
			return // paused: this and later ones are read again on resume
		}
		sf.s.storeMsg(sf.idx, strings.TrimPrefix(msg.Subject(), prefix), msg.Headers())
		sf.last = md.Sequence.Stream
	})
	if err != nil {
		return err
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.gen != gen { // stopped or paused meanwhile
		f.Stop()
		return nil
	}
	sf.f = f
	return nil
}

// pause stops the follower and returns the stream sequence up to which it
// handled every message.
func (sf *storeFollower) pause() uint64 {
	sf.mu.Lock()
	f := sf.f
	sf.f = nil
	sf.gen++
	last := sf.last
	sf.mu.Unlock()
	if f != nil {
		f.Stop()
	}
	return last
}

// stop ends the follower for good (the renderer's context ended).
func (sf *storeFollower) stop() { sf.pause() }

// resume follows again after a pause at paused, during which this master's
// acknowledged writes to the bucket numbered own, the highest at
// sequence ownMax: from right after ownMax when they are every sequence
// after paused, else from right after paused. A failed creation is retried
// in the background.
func (sf *storeFollower) resume(paused uint64, own, ownMax uint64) {
	from := paused + 1
	if own > 0 && ownMax > paused && own == ownMax-paused {
		from = ownMax + 1
	}
	sf.mu.Lock()
	sf.last = from - 1
	sf.mu.Unlock()
	o := kvwatch.FollowOptions{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, StartSeq: from}
	if err := sf.follow(o); err == nil || sf.ctx.Err() != nil {
		return
	}
	sf.mu.Lock()
	gen := sf.gen
	sf.mu.Unlock()
	go func() {
		for attempt := 0; ; attempt++ {
			sf.s.log.Warn("settings: store follower not resumed; retrying", "bucket", sf.bucket, "from", from)
			if !sleepJitter(sf.ctx, attempt, 200*time.Millisecond, 5*time.Second) {
				return
			}
			sf.mu.Lock()
			again := sf.gen == gen && sf.f == nil
			sf.mu.Unlock()
			if !again {
				return // paused again (that resume starts it) or stopped
			}
			if err := sf.follow(o); err == nil {
				return
			}
			sf.mu.Lock()
			gen = sf.gen
			sf.mu.Unlock()
		}
	}()
}

// storeMsg records one message of bucket idx's stream: key's entry, or
// that it is gone.
func (s *settingsRenderer) storeMsg(idx int, key string, h nats.Header) {
	switch op := h.Get("KV-Operation"); {
	case op == "DEL" || op == "PURGE" || h.Get("Nats-Marker-Reason") != "":
		s.setStored(idx, key, storedEntry{})
		s.storeGone(key)
	default:
		e := storedEntry{hash: parseDigest(h.Get(names.HeaderContentHash)), input: parseDigest(h.Get(names.HeaderSettingsInput)), secrets: parseDigest(h.Get(names.HeaderSettingsSecrets))}
		if idx == filesIdx {
			e.files = s.fileList(h.Get(names.HeaderSettingsFiles))
		}
		s.setStored(idx, key, e)
		if e.hash.isZero() {
			s.storeGone(key)
		}
	}
}

// storeCheckEvery is how often a master compares the number of keys each
// bucket holds with the number it believes stored: a purge of a whole
// stream (`nats stream purge KV_secrets`, a restore without these buckets)
// leaves no per-key marker for the follower to see.
const storeCheckEvery = 10 * time.Second

// checkStoreLoop re-renders every owned peel into a bucket that holds fewer
// keys than were stored, with the stored hashes of that bucket forgotten, so
// every missing entry is written again.
func (s *settingsRenderer) checkStoreLoop(ctx context.Context) {
	t := time.NewTicker(storeCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for idx, b := range settingsBuckets {
			// Count before asking: every key counted was stored before the
			// stream's state is read (a delete leaves its key a marker), so
			// only a loss makes the store hold fewer.
			s.storeMu.Lock()
			known := len(s.stored[idx])
			s.storeMu.Unlock()
			st, err := s.m.js.Stream(ctx, names.KVStream(b))
			if err != nil {
				continue
			}
			lost := int(st.CachedInfo().State.NumSubjects) < known
			if lost {
				s.storeMu.Lock()
				clear(s.stored[idx])
				s.storeMu.Unlock()
			}
			if lost {
				s.log.Warn("settings entries missing from the store; writing them again", "bucket", b, "keys", st.CachedInfo().State.NumSubjects, "stored", known)
				s.markAffected(true, nil)
			}
		}
	}
}

// storeGone marks the peel of a key that no longer holds our entry, when it
// is ours to render (keys are peel ids).
func (s *settingsRenderer) storeGone(key string) {
	if names.ValidateID(key) != nil || !s.m.member.owns(shard.Partition(key, s.m.cfg.Partitions)) {
		return
	}
	s.mu.Lock()
	_, known := s.peels[key]
	s.mu.Unlock()
	if known {
		s.markDirty(key)
	}
}

// followEnrollments keeps the curve keys of accepted enrollments: what a
// peel's values are sealed to, and queues those of owned peels for the
// sealer's warm-up. A changed key (a peel enrolled again with new keys)
// renders that peel again. The channel it returns is closed once the
// current records are known.
func (s *settingsRenderer) followEnrollments(ctx context.Context) (<-chan struct{}, error) {
	w, err := kvwatch.Watch(ctx, s.m.js, names.BucketEnrollments, kvwatch.Options{Name: "settings-enrollments", OnError: s.m.watchErr(names.BucketEnrollments), Monitor: s.m.watches})
	if err != nil {
		return nil, err
	}
	caught := make(chan struct{})
	go func() {
		defer w.Stop()
		first := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					if first {
						first = false
						close(caught)
					}
					continue
				}
				key := e.Key()
				if names.IsEnrollReservedKey(key) || names.ValidateID(key) != nil {
					continue
				}
				curve := ""
				if e.Operation() == jetstream.KeyValuePut {
					curve = acceptedCurve(key, e.Value())
				}
				s.storeMu.Lock()
				old := s.curves[key]
				if curve == "" {
					delete(s.curves, key)
				} else {
					s.curves[key] = curve
				}
				s.storeMu.Unlock()
				if old != curve && old != "" {
					s.sealer.Forget(old) // that key is sealed to no more
				}
				if old != curve && curve != "" && s.m.member.owns(shard.Partition(key, s.m.cfg.Partitions)) {
					s.warm(curve)
				}
				if old != curve && !first {
					s.markDirty(key)
				}
			}
		}
	}()
	return caught, nil
}

// acceptedCurve is the curve key of a stored enrollment record when it is
// peel key's accepted record ("" when not): what enroll.Record.Decode checks
// of it (valid JSON, an object naming key, an accepted state), decoding only
// the three fields the renderer reads. A master start reads every record of
// the fleet before its first render, and the whole record's decode (the
// claimed facts, four times) was three quarters of that follower's CPU. The
// one difference: a record with another field of the wrong JSON type (which
// no master writes) fails Record.Decode and still counts here.
func acceptedCurve(key string, value []byte) string {
	var r struct {
		ID    string       `json:"id"`
		State enroll.State `json:"state"`
		Curve string       `json:"curve"`
	}
	if json.Unmarshal(value, &r) != nil || r.ID != key || r.State != enroll.StateAccepted {
		return ""
	}
	return r.Curve
}

// settingsReloadDebounce gathers the events of one edit or checkout (an
// editor writes, renames and chmods; git writes many files) into one
// reload.
const settingsReloadDebounce = 200 * time.Millisecond

// watchDir reloads the tree when anything under settings_dir changes
// (fswatch: one reload per burst, .git not watched).
func (s *settingsRenderer) watchDir(ctx context.Context) error {
	if _, err := os.Stat(s.dir); err != nil {
		return err
	}
	go func() {
		err := fswatch.Watch(ctx, s.dir, settingsReloadDebounce, func() { s.reload("settings_dir changed") },
			func(err error) { s.log.Warn("settings_dir watch; reloading", "err", err) })
		if err != nil {
			s.log.Warn("settings_dir not watched: changes need zester settings refresh", "settings_dir", s.dir, "err", err)
		}
	}()
	return nil
}

// kvPublisher writes KV entries with a content-hash header, many in
// flight at once (PublishMsgAsync), and records each acknowledged one as
// stored. One collector goroutine takes the acks in publish order (the
// server acknowledges a stream's writes in order), so a write costs no
// goroutine of its own; the queue's capacity bounds the writes in flight.
type kvPublisher struct {
	js       jetstream.JetStream
	s        *settingsRenderer
	inflight chan inflightPut

	mu      sync.Mutex
	pending sync.WaitGroup
	failed  []pubFailure
	// own counts the acknowledged writes to each bucket after a stream
	// sequence (track), for a paused follower's resume.
	own [2]ownWrites
}

// ownWrites are the acknowledged writes to one bucket after after.
type ownWrites struct {
	on             bool
	after          uint64
	count, highest uint64
}

type inflightPut struct {
	f   jetstream.PubAckFuture
	idx int
	key string
	e   storedEntry
}

type pubFailure struct {
	key string
	err error
}

// publishWindow bounds the writes in flight: below the JetStream context's
// async limit (nats.go's default, 4000), past which a publish stalls and
// then fails.
const publishWindow = 2048

func newKVPublisher(ctx context.Context, s *settingsRenderer) *kvPublisher {
	p := &kvPublisher{js: s.m.js, s: s, inflight: make(chan inflightPut, publishWindow)}
	go p.collect(ctx)
	return p
}

// collect records the outcome of every write, in publish order. After ctx
// ends, what is still queued fails with ctx's error.
func (p *kvPublisher) collect(ctx context.Context) {
	for {
		var w inflightPut
		select {
		case w = <-p.inflight:
		case <-ctx.Done():
			return
		}
		select {
		case ack := <-w.f.Ok():
			p.s.setStored(w.idx, w.key, w.e)
			p.s.writes.Inc()
			p.mu.Lock()
			if o := &p.own[w.idx]; o.on && ack != nil && ack.Sequence > o.after {
				o.count++
				o.highest = max(o.highest, ack.Sequence)
			}
			p.mu.Unlock()
		case err := <-w.f.Err():
			p.fail(w.key, err)
		case <-ctx.Done():
			p.fail(w.key, ctx.Err())
		}
		p.pending.Done()
	}
}

func (p *kvPublisher) put(ctx context.Context, idx int, key string, value []byte, e storedEntry) {
	msg := nats.NewMsg(names.KVSubjectPrefix(settingsBuckets[idx]) + key)
	msg.Header.Set(names.HeaderContentHash, e.hash.String())
	if !e.input.isZero() {
		msg.Header.Set(names.HeaderSettingsInput, e.input.String())
	}
	if !e.secrets.isZero() {
		msg.Header.Set(names.HeaderSettingsSecrets, e.secrets.String())
	}
	if idx == filesIdx {
		msg.Header.Set(names.HeaderSettingsFiles, encodeFileList(e.files))
	}
	msg.Data = value
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		p.fail(key, err)
		return
	}
	p.pending.Add(1)
	select {
	case p.inflight <- inflightPut{f: f, idx: idx, key: key, e: e}:
	case <-ctx.Done():
		p.pending.Done()
		p.fail(key, ctx.Err())
	}
}

// track starts counting the acknowledged writes to bucket idx after
// stream sequence after; untrack stops and returns how many and the
// highest sequence.
func (p *kvPublisher) track(idx int, after uint64) {
	p.mu.Lock()
	p.own[idx] = ownWrites{on: true, after: after}
	p.mu.Unlock()
}

func (p *kvPublisher) untrack(idx int) (count, highest uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.own[idx]
	p.own[idx] = ownWrites{}
	return o.count, o.highest
}

func (p *kvPublisher) fail(key string, err error) {
	p.mu.Lock()
	p.failed = append(p.failed, pubFailure{key, err})
	p.mu.Unlock()
}

// wait waits for every write in flight and returns (and forgets) the
// failed ones.
func (p *kvPublisher) wait(ctx context.Context) []pubFailure {
	done := make(chan struct{})
	go func() { p.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.failed
	p.failed = nil
	if len(f) > 0 && errors.Is(f[0].err, context.Canceled) {
		return nil
	}
	return f
}

// encodeFileList is HeaderSettingsFiles of a list of settings file names:
// each path-escaped (a name may hold a comma), comma-separated.
func encodeFileList(files []string) string {
	esc := make([]string, len(files))
	for i, f := range files {
		esc[i] = url.PathEscape(f)
	}
	return strings.Join(esc, ",")
}

// fileList is decodeFileList of v, one shared slice per distinct list: a
// fleet has a few dozen distinct lists, and 100,000 copies of one would
// be garbage the collector scans. The returned slice is never changed.
func (s *settingsRenderer) fileList(v string) []string {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	if l, ok := s.lists[v]; ok {
		return l
	}
	l := decodeFileList(v)
	if len(s.lists) < maxFileLists {
		s.lists[v] = l
	}
	return l
}

// maxFileLists bounds the interned file lists (a tree whose top.zy gives
// every peel its own list gets copies past it).
const maxFileLists = 4096

// decodeFileList reverses encodeFileList; nil when a name does not decode
// (the peel is then rendered, not judged current).
func decodeFileList(v string) []string {
	if v == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		f, err := url.PathUnescape(p)
		if err != nil {
			return nil
		}
		parts[i] = f
	}
	return parts
}
