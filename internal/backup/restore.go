package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/jsm.go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// LiveWindow is how recent a master's heartbeat must be for the master to
// count as live: the master-heartbeat bucket's TTL. A master that stops
// cleanly deletes its key at once; one that died stays "live" until then.
const LiveWindow = 15 * time.Second

// LiveMaster is a master whose heartbeat is in master-heartbeat.
type LiveMaster struct {
	ID       string    `json:"id"`
	Host     string    `json:"host,omitempty"`
	LastBeat time.Time `json:"last_heartbeat"`
}

// LiveMasters lists the masters that beat within LiveWindow. A missing
// master-heartbeat bucket means none.
func LiveMasters(ctx context.Context, js jetstream.JetStream) ([]LiveMaster, error) {
	kv, err := js.KeyValue(ctx, names.BucketMasterHeartbeat)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.BucketMasterHeartbeat, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.BucketMasterHeartbeat, err)
	}
	defer w.Stop()
	var entries []jetstream.KeyValueEntry
	for e := range w.Updates() {
		if e == nil {
			break
		}
		entries = append(entries, e)
	}
	// Heartbeats carry the server's time; compare them with the server's
	// clock, not this host's, so that clock skew cannot hide a live master.
	now := time.Now()
	if st, err := js.Stream(ctx, KVStream(names.BucketMasterHeartbeat)); err == nil && !st.CachedInfo().TimeStamp.IsZero() {
		now = st.CachedInfo().TimeStamp
	}
	var out []LiveMaster
	for _, e := range entries {
		if now.Sub(e.Created()) > LiveWindow {
			continue
		}
		lm := LiveMaster{ID: e.Key(), LastBeat: e.Created()}
		var rec wire.MasterRecord
		if json.Unmarshal(e.Value(), &rec) == nil {
			lm.Host = rec.Host
		}
		out = append(out, lm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ExistingStream is a stream that a restore has to delete first (JetStream
// restores only into an absent stream).
type ExistingStream struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// RestorePlan is what a restore will do; nothing on the server has changed
// when one is returned.
type RestorePlan struct {
	Report   *Report          `json:"-"`
	Live     []LiveMaster     `json:"live_masters,omitempty"`
	Existing []ExistingStream `json:"existing,omitempty"`
}

// PlanRestore looks at the server for a restore of a verified backup (see
// Verify, which needs no server: call it first so that a bad backup is
// refused before anything else happens): which masters are live and which
// of the backup's streams exist. Nothing on the server changes.
func PlanRestore(ctx context.Context, js jetstream.JetStream, rep *Report) (*RestorePlan, error) {
	var err error
	p := &RestorePlan{Report: rep}
	if p.Live, err = LiveMasters(ctx, js); err != nil {
		return nil, err
	}
	for _, s := range rep.Streams {
		st, err := js.Stream(ctx, s.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.Name, err)
		}
		state := st.CachedInfo().State
		p.Existing = append(p.Existing, ExistingStream{Name: s.Name, Messages: state.Msgs, Bytes: state.Bytes})
	}
	return p, nil
}

// RestoreResult is one stream's restore.
type RestoreResult struct {
	Stream string `json:"stream"`
	// Replaced is set when an existing stream was deleted first.
	Replaced bool `json:"replaced"`
	// Expected is the number of messages in the backup, Restored what the
	// server holds after the restore.
	Expected        uint64 `json:"expected_messages"`
	Restored        uint64 `json:"restored_messages"`
	ExpectedLastSeq uint64 `json:"expected_last_seq"`
	LastSeq         uint64 `json:"last_seq"`
	// Expired is how many messages of the backup were past the stream's max
	// age or their TTL and were dropped by the server.
	Expired uint64        `json:"expired,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Note    string        `json:"note,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// OK reports whether the stream was restored with the counts the backup
// promised.
func (r RestoreResult) OK() bool { return r.Error == "" }

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Progress   func(Progress)
	APITimeout time.Duration // per JetStream API request, default 10s
}

// Apply restores every stream of the plan: deletes it when it exists,
// restores it from the backup, and compares message counts and the last
// sequence with the backup. It goes on after a stream fails and returns an
// error naming every failure.
func (p *RestorePlan) Apply(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, o ApplyOptions) ([]RestoreResult, error) {
	if o.APITimeout <= 0 {
		o.APITimeout = 10 * time.Second
	}
	mgr, err := jsm.New(nc, jsm.WithTimeout(o.APITimeout))
	if err != nil {
		return nil, err
	}
	report := serialProgress(o.Progress)
	var results []RestoreResult
	var failed []string
	for i := range p.Report.Streams {
		s := &p.Report.Streams[i]
		start := time.Now()
		res := restoreStream(ctx, mgr, js, s, report)
		res.Elapsed = time.Since(start)
		results = append(results, res)
		if !res.OK() {
			failed = append(failed, s.Name+": "+res.Error)
			report(Progress{Stream: s.Name, Phase: PhaseFailed, Err: errors.New(res.Error), Elapsed: res.Elapsed})
		} else {
			report(Progress{Stream: s.Name, Phase: PhaseDone, Elapsed: res.Elapsed, Result: &res})
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("%d of %d streams not restored correctly: %v", len(failed), len(results), failed)
	}
	return results, nil
}

func restoreStream(ctx context.Context, mgr *jsm.Manager, js jetstream.JetStream, s *StreamReport, report func(Progress)) RestoreResult {
	res := RestoreResult{Stream: s.Name, Expected: s.Messages, ExpectedLastSeq: s.LastSeq}
	if err := ctx.Err(); err != nil {
		res.Error = err.Error()
		return res
	}
	switch err := js.DeleteStream(ctx, s.Name); {
	case err == nil:
		res.Replaced = true
	case errors.Is(err, jetstream.ErrStreamNotFound):
	default:
		res.Error = fmt.Sprintf("delete the existing stream: %v", err)
		return res
	}
	var total uint64
	if f := s.file(filepath.Base(s.DataFile)); f != nil {
		total = uint64(f.Size)
	}
	start := time.Now()
	started := false
	var cbMu sync.Mutex
	cb := func(rp jsm.RestoreProgress) {
		cbMu.Lock()
		defer cbMu.Unlock()
		ph := PhaseData
		if !started {
			ph, started = PhaseStart, true
		}
		report(Progress{Stream: s.Name, Phase: ph, Bytes: rp.BytesSent(), Total: total, Elapsed: time.Since(start)})
	}
	_, state, err := mgr.RestoreSnapshotFromDirectory(ctx, s.Name, s.Dir, jsm.RestoreNotify(cb))
	if err != nil {
		res.Error = fmt.Sprintf("restore: %v", err)
		return res
	}
	if state == nil {
		st, err := js.Stream(ctx, s.Name)
		if err != nil {
			res.Error = fmt.Sprintf("restored, but cannot read the stream back: %v", err)
			return res
		}
		res.Restored, res.LastSeq = st.CachedInfo().State.Msgs, st.CachedInfo().State.LastSeq
	} else {
		res.Restored, res.LastSeq = state.Msgs, state.LastSeq
	}
	expired := s.ExpiredBy(time.Now())
	switch {
	case res.Restored == res.Expected:
	case res.Restored < res.Expected && res.Expected-res.Restored <= expired:
		res.Expired = res.Expected - res.Restored
		res.Note = fmt.Sprintf("%d messages of the backup were past the stream's max age or their TTL and were dropped", res.Expired)
	case res.Restored > res.Expected:
		res.Error = fmt.Sprintf("the stream holds %d messages after the restore, the backup %d (written to since?)", res.Restored, res.Expected)
	default:
		res.Error = fmt.Sprintf("message count mismatch: the backup holds %d messages, the restored stream %d", res.Expected, res.Restored)
	}
	if res.Error == "" && res.LastSeq < res.ExpectedLastSeq {
		res.Error = fmt.Sprintf("last sequence %d after the restore, the backup's is %d", res.LastSeq, res.ExpectedLastSeq)
	}
	return res
}
