package master

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// The settings render itself: a batch of dirty peels, one peel's compile,
// seal and publish, and the input hash that lets a peel whose inputs did
// not change be counted current without compiling it.

// batchStats is what a batch did.
type batchStats struct {
	rendered, written, failed int
	errors                    []string
}

// renderBatch renders ids (those this master owns and has facts of; with
// renderChanged those whose inputs changed), writes what changed, tells the
// peels whose entries were written, and reports failures as events (one
// per distinct error).
func (s *settingsRenderer) renderBatch(ctx context.Context, ids []string, mode renderMode) batchStats {
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	s.treeMu.RLock()
	lt := s.cur
	s.treeMu.RUnlock()
	var st batchStats
	if lt == nil || len(ids) == 0 {
		return st
	}
	// A large batch pauses the store's followers while it writes: its own
	// writes need not come back to this master (storeFollower).
	var paused [2]uint64
	pause := len(ids) >= followPauseMin && mode != compileOnly && s.followers[filesIdx] != nil
	if pause {
		for idx, sf := range s.followers {
			paused[idx] = sf.pause()
			s.pub.track(idx, paused[idx])
		}
		if h := afterFollowPause; h != nil {
			h()
		}
		s.growStored(len(ids))
	}
	work := make(chan string)
	type failure struct{ id, err string }
	var (
		mu       sync.Mutex
		failures []failure
		changed  = map[int][]string{}
	)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				rendered, wrote, err := s.renderOne(ctx, lt, id, mode)
				mu.Lock()
				if rendered {
					st.rendered++
				}
				if err != nil {
					st.failed++
					failures = append(failures, failure{id, err.Error()})
				}
				if wrote {
					st.written++
					p := shard.Partition(id, s.m.cfg.Partitions)
					changed[p] = append(changed[p], id)
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	// The peels learn of a change once the store has it.
	failedWrites := s.pub.wait(ctx)
	if pause {
		for idx, sf := range s.followers {
			own, highest := s.pub.untrack(idx)
			sf.resume(paused[idx], own, highest)
		}
	}
	if len(failedWrites) > 0 {
		s.log.Warn("settings entries not written; retrying", "entries", len(failedWrites), "err", failedWrites[0].err)
		go s.retryLater(ctx, failedWrites)
	}
	for p, l := range changed {
		sort.Strings(l)
		for i := 0; i < len(l); i += dispatchChunk {
			s.m.control(p, wire.Control{Op: wire.ControlSettingsChanged, Peels: l[i:min(i+dispatchChunk, len(l))]})
		}
	}
	// One event per distinct error, with how many peels and which first.
	byErr := map[string][]string{}
	for _, f := range failures {
		byErr[f.err] = append(byErr[f.err], f.id)
	}
	for msg, l := range byErr {
		sort.Strings(l)
		st.errors = append(st.errors, fmt.Sprintf("%s (%d peels: %s)", msg, len(l), strings.Join(l[:min(3, len(l))], ", ")))
		s.event("settings.error", l[0], fmt.Sprintf("render failed for %d peels, last good render kept: %s", len(l), msg))
		s.log.Warn("settings render failed; last good render kept", "peels", len(l), "first", l[0], "err", msg)
	}
	sort.Strings(st.errors)
	return st
}

// retryLater marks the peels of failed writes again after a backoff.
func (s *settingsRenderer) retryLater(ctx context.Context, failed []pubFailure) {
	if !sleepJitter(ctx, 3, 100*time.Millisecond, 5*time.Second) {
		return
	}
	ids := make([]string, 0, len(failed))
	for _, f := range failed {
		ids = append(ids, f.key)
	}
	s.markDirty(ids...)
}

// renderMode is what renderOne does with a peel.
type renderMode int

const (
	renderChanged renderMode = iota // compile and write unless the inputs are those of the entries
	renderAlways                    // compile and write what differs
	compileOnly                     // compile, write nothing (I@ of a peel found current)
)

// renderOne compiles one peel and queues the writes of what changed.
func (s *settingsRenderer) renderOne(ctx context.Context, lt *loadedTree, id string, mode renderMode) (rendered, wrote bool, err error) {
	tree, open, hashes := lt.tree, lt.open, lt.hashes
	P := s.m.cfg.Partitions
	if !s.m.member.owns(shard.Partition(id, P)) {
		return false, false, nil
	}
	raw, ok := s.m.index.rawFacts(id)
	if !ok {
		return false, false, nil // no facts yet: marked again when they come
	}
	// The curve key before the facts are decoded: the accepted
	// enrollment's is enough to tell whether the peel is current.
	curve := s.enrolledCurve(id)
	var facts map[string]any
	var kept keptFacts
	if curve == "" {
		if facts, kept, err = s.peelFacts(id, raw, lt); err != nil {
			return false, false, s.fail(id, fmt.Errorf("facts of %s: %w", id, err))
		}
		curve = factsCurve(facts)
	}
	var judged storedEntry // the input hash of the stored file list, when computed
	if mode == renderChanged {
		var current bool
		if current, judged = s.isCurrent(id, hashes, raw, curve); current {
			s.current.Inc()
			return false, false, nil
		}
	}
	if facts == nil {
		if facts, kept, err = s.peelFacts(id, raw, lt); err != nil {
			return false, false, s.fail(id, fmt.Errorf("facts of %s: %w", id, err))
		}
	}
	var usedBasket atomic.Bool
	opts := settings.Options{Context: ctx, Secret: open, Memo: lt.memo, FactsNormalized: true}
	if s.basket != nil {
		opts.Basket = func(tgt, name string) (map[string]any, error) {
			usedBasket.Store(true)
			return s.basket(ctx, tgt, name)
		}
	} else {
		opts.Basket = func(string, string) (map[string]any, error) {
			return nil, errors.New("basket not available yet")
		}
	}
	s.renders.Inc()
	res, err := tree.Compile(id, facts, opts)
	if err != nil {
		return true, false, s.fail(id, err)
	}
	// Shared with the peels a memo gives the same result (do not change).
	masked, settingsHash, err := res.MaskedJSONHash()
	if err != nil {
		return true, false, s.fail(id, err)
	}
	bj, err := tree.BundleJSON(res, settingsHash)
	if err != nil {
		return true, false, s.fail(id, err)
	}
	vals, err := res.Values(open)
	if err != nil {
		return true, false, s.fail(id, err)
	}
	if curve == "" && len(vals.Values) > 0 {
		return true, false, s.fail(id, fmt.Errorf("peel %s: no curve key known (no accepted enrollment, no %q fact) to seal its %d secrets to", id, factsCurveKey, len(vals.Values)))
	}
	ps := &peelSettings{files: s.fileList(encodeFileList(res.Files)), filesHash: sha256.Sum256(bj), masked: masked, facts: kept}
	if !usedBasket.Load() {
		if !judged.input.isZero() && slices.Equal(judged.files, res.Files) {
			ps.input = judged.input
		} else {
			ps.input = s.inputHash(hashes, res.Files, raw, curve)
		}
	}
	var valuesJSON []byte // the plaintext sealed, cleared on return
	if curve != "" {
		if valuesJSON, err = settings.ValuesJSON(vals); err != nil {
			return true, false, s.fail(id, err)
		}
		defer settings.ClearJSON(valuesJSON)
		ps.secretsHash = s.valuesDigest(curve, valuesJSON)
	}
	if mode == compileOnly {
		s.mu.Lock()
		s.peels[id] = ps
		s.mu.Unlock()
		return true, false, nil
	}
	// The writes, each only when the store holds something else; the
	// values first, so that a peel reading between the two more likely
	// finds the values its new templates need (when not, its render fails,
	// it keeps the last good one and reads again on the change message).
	if curve != "" && s.storedEntry(secretsIdx, names.SecretsKey(id)).hash != ps.secretsHash {
		tok, err := s.sealer.SealValuesJSON(curve, id, valuesJSON)
		if err != nil {
			return true, false, s.fail(id, err)
		}
		s.pub.put(ctx, secretsIdx, names.SecretsKey(id), []byte(tok), storedEntry{hash: ps.secretsHash})
		wrote = true
	}
	fe := storedEntry{hash: ps.filesHash, input: ps.input, secrets: ps.secretsHash, files: ps.files}
	if old := s.storedEntry(filesIdx, names.SettingsFilesKey(id)); old.hash != fe.hash || old.input != fe.input || old.secrets != fe.secrets {
		s.pub.put(ctx, filesIdx, names.SettingsFilesKey(id), bj, fe)
		wrote = true
	}
	s.mu.Lock()
	s.peels[id] = ps
	s.mu.Unlock()
	return true, wrote, nil
}

// inputHash is the keyed hash of what a peel's render is a function of
// (with the basket unused): top.zy and the applicable files, in merge
// order, by content hash; the raw fact document; the curve key sealed to.
// The key (from the masters' curve seed, when there is one) makes it change
// with the masters' key too.
func (s *settingsRenderer) inputHash(hashes map[string]string, files []string, raw []byte, curve string) digest {
	// One MAC per worker, reset (same key), and the text before raw built
	// in its buffer: this runs for every marked peel, current or not.
	m, _ := s.inputMACs.Get().(*inputMAC)
	if m == nil {
		m = &inputMAC{h: hmac.New(sha256.New, s.inputKey)}
	}
	defer s.inputMACs.Put(m)
	m.h.Reset()
	b := append(m.buf[:0], "zester settings input v1\x00"...)
	b = append(b, hashes[settings.TopFile]...)
	for _, f := range files {
		b = append(append(append(append(b, 0), f...), 0), hashes[f]...)
	}
	b = append(append(append(b, 0), curve...), 0)
	m.buf = b
	m.h.Write(b)
	m.h.Write(raw)
	var d digest
	m.h.Sum(d[:0])
	return d
}

// valuesDigest is settings.ValuesDigestJSON with the renderer's hashKey,
// from a pooled MAC (hmac.New for every peel allocated two SHA-256 states
// and the key's pads).
func (s *settingsRenderer) valuesDigest(curve string, valuesJSON []byte) digest {
	m, _ := s.valuesMACs.Get().(*inputMAC)
	if m == nil {
		m = &inputMAC{h: hmac.New(sha256.New, s.hashKey)}
	}
	defer s.valuesMACs.Put(m)
	return digest(settings.ValuesDigestWith(m.h, curve, valuesJSON))
}

// inputMAC is a reusable inputHash state.
type inputMAC struct {
	h   hash.Hash
	buf []byte
}

// isCurrent reports whether id's entries were rendered from the inputs it
// has now: the settings-files entry carries their hash, and the secrets
// entry holds the values rendered with it. It returns the input hash it
// computed and for which file list (input zero when none), for the render
// to reuse when its list is the same.
func (s *settingsRenderer) isCurrent(id string, hashes map[string]string, raw []byte, curve string) (bool, storedEntry) {
	f := s.storedEntry(filesIdx, names.SettingsFilesKey(id))
	if f.input.isZero() || f.hash.isZero() {
		return false, storedEntry{}
	}
	in := storedEntry{input: s.inputHash(hashes, f.files, raw, curve), files: f.files}
	if f.input != in.input {
		return false, in
	}
	return f.secrets.isZero() || s.storedEntry(secretsIdx, names.SecretsKey(id)).hash == f.secrets, in
}

// fail records a failed render: the peel keeps its last good one.
func (s *settingsRenderer) fail(id string, err error) error {
	s.failures.Inc()
	s.mu.Lock()
	ps := s.peels[id]
	if ps == nil {
		ps = &peelSettings{}
		s.peels[id] = ps
	}
	ps.failed = err.Error()
	s.mu.Unlock()
	return err
}

// peelFacts decodes what of a peel's facts a render with lt needs: from
// the copy its last render kept when that was made of the same stored
// value raw with the same filter, else from raw (and returns the copy to
// keep).
func (s *settingsRenderer) peelFacts(id string, raw []byte, lt *loadedTree) (map[string]any, keptFacts, error) {
	if lt.facts == nil {
		m, err := decodeFactsMap(raw, nil)
		return m, keptFacts{}, err
	}
	s.mu.Lock()
	var k keptFacts
	if ps := s.peels[id]; ps != nil {
		k = ps.facts
	}
	s.mu.Unlock()
	if k.of(raw, lt.facts) {
		if m, err := render.ParseFactsFiltered(k.json, lt.facts); err == nil {
			return m, k, nil
		}
	}
	m, err := decodeFactsMap(raw, lt.facts)
	if err != nil {
		return nil, keptFacts{}, err
	}
	k = keptFacts{raw: raw, filter: lt.facts}
	bp := factDocs.Get().(*[]byte)
	if j, ok := render.AppendFactsJSON((*bp)[:0], m); ok {
		k.json = bytes.Clone(j)
		if cap(j) <= maxPooledFactDoc {
			*bp = j[:0]
		}
	}
	factDocs.Put(bp)
	return m, k, nil
}

// decodeFactsMap decodes a stored fact document as the templates see it
// (render.ParseFacts: normalised, in one pass), keeping what f keeps.
func decodeFactsMap(raw []byte, f *render.FactFilter) (map[string]any, error) {
	var m map[string]any
	err := withFactDoc(raw, func(doc []byte) (err error) {
		m, err = render.ParseFactsFiltered(doc, f)
		return err
	})
	return m, err
}

// factDocs are the buffers fact documents are decompressed into while
// they are read (the parsers copy what they keep): one document a peel a
// render would be garbage otherwise.
var factDocs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// maxPooledFactDoc bounds the buffers kept in factDocs.
const maxPooledFactDoc = 256 << 10

// withFactDoc calls f with the JSON of a stored fact value, in a pooled
// buffer that f must not keep.
func withFactDoc(raw []byte, f func(doc []byte) error) error {
	bp := factDocs.Get().(*[]byte)
	doc, err := factcodec.DecodeAppend((*bp)[:0], raw)
	if err == nil {
		err = f(doc)
	}
	if cap(doc) > cap(*bp) && cap(doc) <= maxPooledFactDoc && (len(raw) == 0 || raw[0] != '{') {
		*bp = doc[:0] // grown: keep the larger one
	}
	factDocs.Put(bp)
	return err
}
