package master

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
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
	// inputMACs are inputHash's MACs keyed with inputKey, valuesMACs
	// valuesDigest's keyed with hashKey.
	inputMACs, valuesMACs sync.Pool
	// sealer seals each peel's values from the masters' curve key (a
	// one-time key of this process when there is none: nothing to seal
	// but empty value sets then).
	sealer *settings.Sealer

	// basket answers {{ basket TARGET NAME }} (the basket's master-side
	// lookup); nil makes it an error.
	basket func(ctx context.Context, target, name string) (map[string]any, error)

	treeMu sync.RWMutex
	cur    *loadedTree // nil until a tree loads
	// treeErr is why the files on disk are not the tree in use ("" when
	// they are).
	treeErr string

	mu    sync.Mutex
	peels map[string]*peelSettings // owned peels rendered at least once
	dirty map[string]struct{}
	kick  chan struct{}

	storeMu sync.Mutex
	stored  [2]map[string]storedEntry // bucket (filesIdx, secretsIdx) → key → what it holds
	// followers keep stored (followStore); set before the first batch.
	followers [2]*storeFollower
	curves    map[string]string   // peel id → curve key of its accepted enrollment
	lists     map[string][]string // HeaderSettingsFiles value → its list, shared (fileList)

	// batchMu serialises render batches (the loop and refresh), and the
	// sealer's warm-up with them.
	batchMu sync.Mutex
	pub     *kvPublisher

	// warmQ are curve keys whose shared key the sealer is to make ahead of
	// their first seal (warmLoop); warmKick wakes it.
	warmMu   sync.Mutex
	warmQ    []string
	warmKick chan struct{}
	// started is set once the first render batch is done.
	started atomic.Bool

	renders, current, writes, failures *metrics.Counter
}

// storedEntry is what the store holds under one key, from its headers.
// The hashes are kept as arrays, not as their hex: two entries a peel in
// maps of the whole fleet, and three strings each were 600,000 objects for
// the collector to mark and for every write to allocate at 100,000 peels.
type storedEntry struct {
	hash    digest   // HeaderContentHash
	input   digest   // HeaderSettingsInput (zero when none)
	secrets digest   // HeaderSettingsSecrets (settings-files entries)
	files   []string // HeaderSettingsFiles (settings-files entries)
}

// digest is a SHA-256 or HMAC-SHA-256 sum, as the entries' headers carry
// it in hex; the zero digest is none.
type digest [sha256.Size]byte

func (d digest) isZero() bool { return d == digest{} }

// String is the hex of d, as a header carries it ("" for none).
func (d digest) String() string {
	if d.isZero() {
		return ""
	}
	return hex.EncodeToString(d[:])
}

// unreadableDigest stands for a header that is not a hex digest (written
// by someone else): it equals no hash a master computes, so the entry is
// written again, as it was when the header's text was compared.
var unreadableDigest = digest(sha256.Sum256([]byte("zester: unreadable hash header")))

// parseDigest reads a header's hex digest: zero for "", unreadableDigest
// for anything but 64 hex digits.
func parseDigest(s string) digest {
	var d digest
	if s == "" {
		return d
	}
	if len(s) != 2*len(d) {
		return unreadableDigest
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil || d.isZero() {
		return unreadableDigest
	}
	return d
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
	input       digest // inputHash of the last good render (zero when it used the basket)
	filesHash   digest
	secretsHash digest
	masked      []byte
	failed      string // the last render's error; "" when it succeeded
	facts       keptFacts
}

// keptFacts is a compact copy of what of a peel's facts its last render
// read (render.AppendFactsJSON of the filtered document), for the next
// render from the same stored value with the same filter: parsing a few
// hundred bytes instead of decompressing and scanning the document.
type keptFacts struct {
	// raw is the fact index's value it was made of: that very slice (the
	// index stores a copy of every value it takes, so the same slice is the
	// same value; no copy is kept here).
	raw    []byte
	filter *render.FactFilter
	json   []byte
}

// of reports whether k was made of raw with filter f.
func (k keptFacts) of(raw []byte, f *render.FactFilter) bool {
	return k.json != nil && f != nil && k.filter == f && len(raw) > 0 && len(k.raw) == len(raw) && &k.raw[0] == &raw[0]
}

// factsCurveKey is the fact in which a peel publishes its curve public key
// (for peels without an enrollment record: pre-provisioned or insecure).
// In secure mode only the peel may write its facts key, and an accepted
// enrollment record wins over it.
const factsCurveKey = "curve"

func newSettingsRenderer(m *Master) *settingsRenderer {
	s := &settingsRenderer{
		m: m, log: m.log.With("part", "settings"), dir: m.cfg.SettingsDir,
		peels: map[string]*peelSettings{}, dirty: map[string]struct{}{}, kick: make(chan struct{}, 1), warmKick: make(chan struct{}, 1),
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
	sealer, err := settings.NewSealer(sender)
	if err != nil {
		return err
	}
	s.storeMu.Lock() // ownershipChanged may run already
	s.sealer = sealer
	s.storeMu.Unlock()
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
	s.m.opts.Metrics.NewGauge(`zester_master_settings_sealer_keys`, func() float64 { return float64(s.sealer.Len()) })
	go s.warmLoop(ctx)
	// What the store holds, before the first render compares with it, and
	// the curve keys sealed to: the three followers catch up at once.
	var caught []<-chan struct{}
	for i, b := range settingsBuckets {
		c, err := s.followStore(ctx, i, b)
		if err != nil {
			return err
		}
		caught = append(caught, c)
	}
	c, err := s.followEnrollments(ctx)
	if err != nil {
		return err
	}
	caught = append(caught, c)
	bound := time.After(30 * time.Second)
	for i, c := range caught {
		select {
		case <-c:
		case <-bound:
			// A render then may write an entry that was current (harmless),
			// or miss a curve key it learns of later (that peel is marked
			// then).
			s.log.Warn("settings: a follower has not caught up yet; rendering anyway", "follower", i)
			bound = nil
		case <-ctx.Done():
			return ctx.Err()
		}
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

// warmChunk is how many shared keys warmLoop makes at a time (a few ms of
// both cores) before it lets a waiting render batch go first.
const warmChunk = 128

// warm queues curve keys for warmLoop.
func (s *settingsRenderer) warm(curves ...string) {
	if len(curves) == 0 {
		return
	}
	s.warmMu.Lock()
	s.warmQ = append(s.warmQ, curves...)
	s.warmMu.Unlock()
	select {
	case s.warmKick <- struct{}{}:
	default:
	}
}

// warmLoop precomputes the shared key of every owned peel with an accepted
// enrollment (one X25519 each, 32 bytes kept for the master's life), as
// the enrollments follower learns of them: from the start, while the fact
// index and the store's entries are still being read, so that a rebuild
// seals with the keys made during intake and the first settings change
// after a restart seals as fast as later ones. It yields to render batches
// chunk by chunk (a batch makes the keys it needs and finds not made).
func (s *settingsRenderer) warmLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.warmKick:
		}
		for {
			s.warmMu.Lock()
			n := min(warmChunk, len(s.warmQ))
			chunk := slices.Clone(s.warmQ[:n])
			s.warmQ = s.warmQ[n:]
			if len(s.warmQ) == 0 {
				s.warmQ = nil
			}
			s.warmMu.Unlock()
			if n == 0 || ctx.Err() != nil {
				break
			}
			s.batchMu.Lock()
			var wg sync.WaitGroup
			w := runtime.GOMAXPROCS(0)
			if !s.started.Load() {
				// Before the first batch the master is still reading the
				// fleet (the fact index, the store's headers: one goroutine
				// each): one core for the keys, the other for that.
				w = 1
			}
			for k := range w {
				wg.Go(func() {
					for j := k; j < len(chunk); j += w {
						if !s.sealer.Has(chunk[j]) {
							_ = s.sealer.Warm(chunk[j]) // a bad key fails its peel's render, and is reported there
						}
					}
				})
			}
			wg.Wait()
			s.batchMu.Unlock()
		}
	}
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
	// The shared keys follow the peels: made ahead for the gained, dropped
	// for the lost.
	var warm, forget []string
	s.storeMu.Lock()
	for _, id := range ids {
		if c := s.curves[id]; c != "" {
			warm = append(warm, c)
		}
	}
	if len(lost) > 0 {
		for id, c := range s.curves {
			if !s.m.member.owns(shard.Partition(id, s.m.cfg.Partitions)) {
				forget = append(forget, c)
			}
		}
	}
	sealer := s.sealer
	s.storeMu.Unlock()
	if sealer != nil {
		for _, c := range forget {
			sealer.Forget(c)
		}
	}
	s.warm(warm...)
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
		t0 := time.Now()
		st := s.renderBatch(ctx, ids, renderChanged)
		s.started.Store(true)
		if len(ids) >= 1000 {
			s.log.Info("settings batch", "peels", len(ids), "rendered", st.rendered, "written", st.written, "failed", st.failed, "took", time.Since(t0).Round(time.Millisecond))
		}
	}
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

// growStored makes room in the stored maps for n more keys before a batch
// that may write them: at a rebuild the maps are empty and grow to the
// fleet one write acknowledgement at a time, and their rehashes (entries of
// about 120 bytes, copied on every doubling) were 2 % of the master's CPU
// in a 100,000-peel rebuild, on the collector that takes the acks. A map
// that already holds at least half of n is left as it is.
func (s *settingsRenderer) growStored(n int) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	for idx, m := range s.stored {
		if len(m) >= n/2 {
			continue
		}
		g := make(map[string]storedEntry, len(m)+n)
		for k, e := range m {
			g[k] = e
		}
		s.stored[idx] = g
	}
}

// setStored records what the store holds under key (e.hash zero when
// nothing).
func (s *settingsRenderer) setStored(idx int, key string, e storedEntry) {
	s.storeMu.Lock()
	if e.hash.isZero() {
		delete(s.stored[idx], key)
	} else {
		s.stored[idx][key] = e
	}
	s.storeMu.Unlock()
}
