package master

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

// The settings renderer (docs/settings.md, "How the masters render"). For
// every peel of the partitions it owns, a master compiles the settings tree
// of settings_dir with the peel's facts from the fact index and keeps two
// entries current: the peel's sanitized templates in settings-files and its
// secret values, sealed to its curve key, in secrets (both under the peel's
// id). Invariants:
//
//   - An entry is written only when its content differs from what the
//     store holds, judged by the content hash each entry carries in a
//     header (HeaderContentHash), which a headers-only follower of both
//     buckets keeps in memory. So a master restart writes nothing, a change
//     touching 10 peels writes about 10 entries, and an entry that goes
//     missing (deleted, a rebuilt store) is written again.
//   - A peel is rendered only when what it is rendered from changed: the
//     entries carry a keyed hash of their inputs (HeaderSettingsInput: the
//     applicable files' content hashes with top.zy's, the raw facts, the
//     curve key) and the settings-files entry the applicable files' names
//     (HeaderSettingsFiles), which the follower keeps too. A marked peel
//     whose inputs hash to what both entries carry is current and is not
//     compiled (a master restart compiles nothing; a file change compiles
//     the peels that apply it). A render that used the basket stores no
//     input hash: such a peel is always rendered. zester settings refresh
//     renders regardless.
//   - A tree that does not load (a template that does not parse, a file
//     that top.zy names and that is not there) is not used at all: every
//     peel keeps its last good render, and an event names the file, line
//     and column. A peel whose render fails keeps its last good render, and
//     its failure is an event too. Nothing of a failed render is written.
//   - Plaintext exists only in this process's memory while rendering: the
//     secrets entry is sealed to the peel, its header is a keyed hash.

// settingsRenderer is one master's renderer.
type settingsRenderer struct {
	m   *Master
	log *slog.Logger
	dir string

	// curve opens the tree's tokens (master.xk); nil when the master has
	// none, and then a render that needs a secret fails.
	curve nkeys.KeyPair
	// hashKey keys the secrets entries' content hash.
	hashKey []byte
	// inputKey keys the input hashes: hashKey's when the masters have a
	// curve key, else a fixed one (a random one would make every restart
	// of a master without master.xk render and write every peel again;
	// without that key there is no secret for the hash to guard).
	inputKey []byte
	// sealer seals each peel's values from the masters' curve key (a
	// one-time key of this process when there is none: nothing to seal
	// but empty value sets then).
	sealer *settings.Sealer

	// basket answers {{ basket TARGET NAME }} (the basket's master-side
	// lookup); nil makes it an error.
	basket func(ctx context.Context, target, name string) (map[string]any, error)

	treeMu sync.RWMutex
	tree   *settings.Tree
	open   func(string) (string, error)
	hashes map[string]string // settings.Tree.FileHashes of tree
	// treeErr is why the files on disk are not the tree in use ("" when
	// they are).
	treeErr string

	mu    sync.Mutex
	peels map[string]*peelSettings // owned peels rendered at least once
	dirty map[string]struct{}
	kick  chan struct{}

	storeMu sync.Mutex
	stored  [2]map[string]storedEntry // bucket (filesIdx, secretsIdx) → key → what it holds
	curves  map[string]string         // peel id → curve key of its accepted enrollment
	lists   map[string][]string       // HeaderSettingsFiles value → its list, shared (fileList)

	// batchMu serialises render batches (the loop and refresh).
	batchMu sync.Mutex
	pub     *kvPublisher

	renders, current, writes, failures *metrics.Counter
}

// storedEntry is what the store holds under one key, from its headers.
type storedEntry struct {
	hash    string   // HeaderContentHash
	input   string   // HeaderSettingsInput ("" when none)
	secrets string   // HeaderSettingsSecrets (settings-files entries)
	files   []string // HeaderSettingsFiles (settings-files entries)
}

const (
	filesIdx   = 0
	secretsIdx = 1
)

var settingsBuckets = [2]string{names.BucketSettingsFiles, names.BucketSecrets}

// peelSettings is what the renderer remembers of one peel's last good
// render: which files it used (to know whom a changed file touches), the
// content hashes of its two entries, and its masked settings (I@).
type peelSettings struct {
	files       []string
	input       string // inputHash of the last good render ("" when it used the basket)
	filesHash   string
	secretsHash string
	masked      []byte
	failed      string // the last render's error; "" when it succeeded
}

// factsCurveKey is the fact in which a peel publishes its curve public key
// (for peels without an enrollment record: pre-provisioned or insecure).
// In secure mode only the peel may write its facts key, and an accepted
// enrollment record wins over it.
const factsCurveKey = "curve"

func newSettingsRenderer(m *Master) *settingsRenderer {
	s := &settingsRenderer{
		m: m, log: m.log.With("part", "settings"), dir: m.cfg.SettingsDir,
		peels: map[string]*peelSettings{}, dirty: map[string]struct{}{}, kick: make(chan struct{}, 1),
		curves: map[string]string{}, lists: map[string][]string{},
		renders:  m.opts.Metrics.NewCounter(`zester_master_settings_renders_total`),
		current:  m.opts.Metrics.NewCounter(`zester_master_settings_current_total`),
		writes:   m.opts.Metrics.NewCounter(`zester_master_settings_writes_total`),
		failures: m.opts.Metrics.NewCounter(`zester_master_settings_render_failures_total`),
	}
	for i := range s.stored {
		s.stored[i] = map[string]storedEntry{}
	}
	return s
}

// masterCurve is the masters' curve key: the PKI's in secure mode, else
// master.xk from pki_dir when there is one.
func (m *Master) masterCurve() (nkeys.KeyPair, error) {
	if m.pki != nil {
		return m.pki.MasterCurve(), nil
	}
	kp, err := pki.LoadMasterCurve(m.cfg.PKIDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return kp, err
}

func (s *settingsRenderer) start(ctx context.Context) error {
	// One context for every loop below: it ends with the master too.
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		select {
		case <-s.m.done:
		case <-ctx.Done():
		}
	}()
	kp, err := s.m.masterCurve()
	if err != nil {
		return fmt.Errorf("settings: masters' curve key: %w", err)
	}
	s.curve = kp
	sender := kp
	if sender == nil {
		if sender, err = nkeys.CreateCurveKeys(); err != nil {
			return err
		}
	}
	if s.sealer, err = settings.NewSealer(sender); err != nil {
		return err
	}
	s.hashKey = make([]byte, 32)
	if kp != nil {
		seed, _ := kp.Seed()
		sum := sha256.Sum256(append([]byte("zester settings values hash v1\x00"), seed...))
		s.hashKey = sum[:]
	} else if _, err := rand.Read(s.hashKey); err != nil {
		return err
	}
	s.inputKey = s.hashKey
	if kp == nil {
		sum := sha256.Sum256([]byte("zester settings input v1, no masters' curve key"))
		s.inputKey = sum[:]
	}
	s.pub = newKVPublisher(ctx, s)
	// What the store holds, before the first render compares with it.
	for i, b := range settingsBuckets {
		if err := s.followStore(ctx, i, b); err != nil {
			return err
		}
	}
	if err := s.followEnrollments(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.dir, settings.TopFile)); err != nil {
		s.log.Info("no settings tree: settings are off until top.zy appears", "settings_dir", s.dir, "err", err)
	} else {
		s.reload("start")
	}
	if err := s.watchDir(ctx); err != nil {
		s.log.Warn("settings_dir not watched: changes need zester settings refresh", "settings_dir", s.dir, "err", err)
	}
	go s.loop(ctx)
	go s.checkStoreLoop(ctx)
	return nil
}

// reload loads the tree from disk. A tree that loads replaces the current
// one, and the peels it renders differently are marked: all of them when
// top.zy changed (or there was no tree), else those that use a changed
// file and those whose last render failed. One that does not load leaves
// everything as it is and is reported.
func (s *settingsRenderer) reload(why string) (changed bool, err error) {
	t, err := settings.Load(os.DirFS(s.dir), settings.LoadOptions{Nodegroups: s.m.cfg.Nodegroups})
	if err == nil {
		if p := t.Problems(); len(p) > 0 {
			err = errors.Join(p...)
		}
	}
	s.treeMu.Lock()
	if err != nil {
		msg := err.Error()
		repeat := msg == s.treeErr
		s.treeErr = msg
		s.treeMu.Unlock()
		if !repeat {
			s.log.Warn("settings tree does not load; every peel keeps its last good render", "settings_dir", s.dir, "why", why, "err", err)
			s.event("settings.error", "", "tree does not load, last good render kept for every peel: "+msg)
		}
		return false, err
	}
	old := s.hashes
	hashes := t.FileHashes()
	s.tree, s.open, s.hashes, s.treeErr = t, s.opener(), hashes, ""
	s.treeMu.Unlock()

	var diff []string
	for n, h := range hashes {
		if old[n] != h {
			diff = append(diff, n)
		}
	}
	for n := range old {
		if _, ok := hashes[n]; !ok {
			diff = append(diff, n)
		}
	}
	all := old == nil || slices.Contains(diff, settings.TopFile)
	n := s.markAffected(all, diff)
	if len(diff) > 0 || old == nil {
		s.log.Info("settings tree loaded", "why", why, "files", len(t.Files()), "changed", len(diff), "peels_to_render", n)
	}
	return len(diff) > 0, nil
}

// opener is the Secret callback of one tree's renders.
func (s *settingsRenderer) opener() func(string) (string, error) {
	if s.curve == nil {
		return func(string) (string, error) {
			return "", fmt.Errorf("this master has no curve key to open secrets (master.xk in pki_dir %s)", s.m.cfg.PKIDir)
		}
	}
	return settings.CachingOpener(s.curve)
}

// markAffected marks the owned peels a tree change touches and returns how
// many.
func (s *settingsRenderer) markAffected(all bool, changed []string) int {
	var ids []string
	if all {
		for _, p := range s.m.member.ownedList() {
			ids = append(ids, s.m.index.ids(p)...)
		}
	} else {
		uses := func(files []string) bool {
			return slices.ContainsFunc(files, func(f string) bool { return slices.Contains(changed, f) })
		}
		s.mu.Lock()
		for id, ps := range s.peels {
			if ps.failed != "" || uses(ps.files) {
				ids = append(ids, id)
			}
		}
		s.mu.Unlock()
		// Peels not rendered by this process (a restart found them
		// current): their entries' headers say which files they apply.
		s.storeMu.Lock()
		for id, e := range s.stored[filesIdx] {
			if uses(e.files) {
				ids = append(ids, id)
			}
		}
		s.storeMu.Unlock()
	}
	s.markDirty(ids...)
	return len(ids)
}

func (s *settingsRenderer) markDirty(ids ...string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	for _, id := range ids {
		s.dirty[id] = struct{}{}
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// factsChanged is the fact index's hook: an owned peel's facts were stored.
func (s *settingsRenderer) factsChanged(id string) { s.markDirty(id) }

// ownershipChanged forgets the peels of lost partitions and renders those
// of gained ones (whose facts the index fetches; each arrival marks its
// peel again).
func (s *settingsRenderer) ownershipChanged(gained, lost []int) {
	if len(lost) > 0 {
		P := s.m.cfg.Partitions
		gone := map[int]bool{}
		for _, p := range lost {
			gone[p] = true
		}
		s.mu.Lock()
		for id := range s.peels {
			if gone[shard.Partition(id, P)] {
				delete(s.peels, id)
			}
		}
		s.mu.Unlock()
	}
	var ids []string
	for _, p := range gained {
		ids = append(ids, s.m.index.ids(p)...)
	}
	s.markDirty(ids...)
}

// settingsDebounce gathers the marks of a burst (a fleet's facts at start,
// a git checkout writing many files) into one batch.
const settingsDebounce = 20 * time.Millisecond

func (s *settingsRenderer) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		t := time.NewTimer(settingsDebounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]string, 0, len(s.dirty))
		for id := range s.dirty {
			ids = append(ids, id)
		}
		clear(s.dirty)
		s.mu.Unlock()
		s.renderBatch(ctx, ids, renderChanged)
	}
}

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
	tree, open, hashes := s.tree, s.open, s.hashes
	s.treeMu.RUnlock()
	var st batchStats
	if tree == nil || len(ids) == 0 {
		return st
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
				rendered, wrote, err := s.renderOne(ctx, tree, open, hashes, id, mode)
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
func (s *settingsRenderer) renderOne(ctx context.Context, tree *settings.Tree, open func(string) (string, error), hashes map[string]string, id string, mode renderMode) (rendered, wrote bool, err error) {
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
	if curve == "" {
		if facts, err = decodeFactsMap(raw); err != nil {
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
		if facts, err = decodeFactsMap(raw); err != nil {
			return false, false, s.fail(id, fmt.Errorf("facts of %s: %w", id, err))
		}
	}
	var usedBasket atomic.Bool
	opts := settings.Options{Context: ctx, Secret: open}
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
	masked, err := json.Marshal(res.Masked())
	if err != nil {
		return true, false, s.fail(id, err)
	}
	bundle, err := tree.BundleWith(res, settings.SettingsHashOf(masked))
	if err != nil {
		return true, false, s.fail(id, err)
	}
	bj, err := json.Marshal(bundle)
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
	ps := &peelSettings{files: s.fileList(encodeFileList(res.Files)), filesHash: hashHex(bj), masked: masked}
	if !usedBasket.Load() {
		if judged.input != "" && slices.Equal(judged.files, res.Files) {
			ps.input = judged.input
		} else {
			ps.input = s.inputHash(hashes, res.Files, raw, curve)
		}
	}
	if curve != "" {
		ps.secretsHash = settings.ValuesHash(s.hashKey, curve, vals)
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
		tok, err := s.sealer.SealValues(curve, vals)
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
func (s *settingsRenderer) inputHash(hashes map[string]string, files []string, raw []byte, curve string) string {
	h := hmac.New(sha256.New, s.inputKey)
	io.WriteString(h, "zester settings input v1\x00"+hashes[settings.TopFile])
	for _, f := range files {
		io.WriteString(h, "\x00"+f+"\x00"+hashes[f])
	}
	io.WriteString(h, "\x00"+curve+"\x00")
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))
}

// isCurrent reports whether id's entries were rendered from the inputs it
// has now: the settings-files entry carries their hash, and the secrets
// entry holds the values rendered with it. It returns the input hash it
// computed and for which file list (input "" when none), for the render
// to reuse when its list is the same.
func (s *settingsRenderer) isCurrent(id string, hashes map[string]string, raw []byte, curve string) (bool, storedEntry) {
	f := s.storedEntry(filesIdx, names.SettingsFilesKey(id))
	if f.input == "" || f.hash == "" {
		return false, storedEntry{}
	}
	in := storedEntry{input: s.inputHash(hashes, f.files, raw, curve), files: f.files}
	if f.input != in.input {
		return false, in
	}
	return f.secrets == "" || s.storedEntry(secretsIdx, names.SecretsKey(id)).hash == f.secrets, in
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

func decodeFactsMap(raw []byte) (map[string]any, error) {
	doc, err := factcodec.Decode(raw)
	if err != nil {
		return nil, err
	}
	var f map[string]any
	if err := json.Unmarshal(doc, &f); err != nil {
		return nil, err
	}
	return f, nil
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// enrolledCurve is the curve key of a peel's accepted enrollment ("" when
// none): what its values are sealed to.
func (s *settingsRenderer) enrolledCurve(id string) string {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	return s.curves[id]
}

// factsCurve is the curve key a peel's facts publish (for a peel without
// an accepted enrollment).
func factsCurve(facts map[string]any) string {
	if c, ok := facts[factsCurveKey].(string); ok && nkeys.IsValidPublicCurveKey(c) {
		return c
	}
	return ""
}

func (s *settingsRenderer) storedEntry(idx int, key string) storedEntry {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	return s.stored[idx][key]
}

// setStored records what the store holds under key (e.hash "" when
// nothing).
func (s *settingsRenderer) setStored(idx int, key string, e storedEntry) {
	s.storeMu.Lock()
	if e.hash == "" {
		delete(s.stored[idx], key)
	} else {
		s.stored[idx][key] = e
	}
	s.storeMu.Unlock()
}

// masked returns a peel's masked settings as last rendered (nil when
// none): what I@ matches. A peel this process found current and did not
// compile is compiled now (once; its entries are current, so nothing is
// written).
func (s *settingsRenderer) masked(id string) map[string]any {
	s.mu.Lock()
	ps := s.peels[id]
	var b []byte
	if ps != nil {
		b = ps.masked
	}
	s.mu.Unlock()
	if ps == nil {
		s.treeMu.RLock()
		tree, open, hashes := s.tree, s.open, s.hashes
		s.treeMu.RUnlock()
		if tree != nil {
			if _, _, err := s.renderOne(context.Background(), tree, open, hashes, id, compileOnly); err == nil {
				s.mu.Lock()
				if ps = s.peels[id]; ps != nil {
					b = ps.masked
				}
				s.mu.Unlock()
			}
		}
	}
	if b == nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// event records a settings event in job-events.
func (s *settingsRenderer) event(kind, peel, detail string) {
	ev := wire.Event{Kind: kind, Master: s.m.cfg.ID, Peel: peel, Time: time.Now().UTC(), Detail: detail}
	b, _ := json.Marshal(ev)
	if _, err := s.m.js.PublishAsync(names.SettingsEventSubject(kind), b); err != nil {
		s.m.met.errors.Inc()
		s.log.Warn("settings event not recorded", "kind", kind, "err", err)
	}
}

// refresh is zester settings refresh: reload the tree and render the
// owned peels tgt selects (all when nil), now.
func (s *settingsRenderer) refresh(ctx context.Context, tgt target.Expr) wire.SettingsRefreshReply {
	r := wire.SettingsRefreshReply{Master: s.m.cfg.ID, Owned: s.m.member.ownedList()}
	if _, err := s.reload("refresh"); err != nil {
		r.Tree = err.Error()
	}
	var ids []string
	for _, p := range r.Owned {
		if tgt == nil {
			ids = append(ids, s.m.index.ids(p)...)
		} else {
			ids = append(ids, s.m.index.resolve(p, tgt)...)
		}
	}
	r.Peels = len(ids)
	st := s.renderBatch(ctx, ids, renderAlways)
	r.Rendered, r.Written, r.Failed, r.Errors = st.rendered, st.written, st.failed, st.errors
	return r
}

// apiSettingsRefresh serves zester settings refresh (operator, admin).
func (m *Master) apiSettingsRefresh(req micro.Request) {
	if _, err := m.authorize(req, accessRun); err != nil {
		refuse(req, err)
		return
	}
	var r wire.SettingsRefreshRequest
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &r); err != nil {
			respondErr(req, "400", fmt.Errorf("request: %w", err))
			return
		}
	}
	var expr target.Expr
	if r.Target != nil {
		var err error
		if expr, err = target.Parse(target.Kind(r.Target.Kind), r.Target.Expr, target.Options{Nodegroups: m.cfg.Nodegroups}); err != nil {
			respondErr(req, "400", err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	respondJSON(req, m.settings.refresh(ctx, expr))
}

// settingsSubject is a peel as I@ sees it: the index's subject and the
// masked settings this master rendered for it.
type settingsSubject struct {
	*cachedSubject
	settings map[string]any
}

func (s *settingsSubject) Setting(path []string) (any, bool) {
	return (&target.MapSubject{Settings: s.settings}).Setting(path)
}
