// Package statetree carries the masters' state tree (states_dir) to the
// peels through the state-tree KV bucket (docs/states.md, "How the tree
// reaches the peels"). Each file's content is stored once, under the
// SHA-256 of that content; a manifest (path → digest) is stored under its
// version (the SHA-256 of its files) after every file it names, and the
// version key after the manifest, so a peel that reads the version finds
// its manifest and every file of it. The bucket keeps one revision a key: it is a cache
// rebuilt from states_dir, never backed up.
//
// Each version also has a pack (pack.go): all its contents in one
// compressed value, written before the manifest, which names its digest.
//
// Peels read it with direct gets (peelproto.GetKV) only: the version key
// at each run, and the manifest and each content only when they do not
// have them yet, so an unchanged tree costs a peel one small get and a
// changed file the manifest and that file; a cold peel (or one after a
// large change) gets the pack instead of the contents: two gets.
package statetree

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
)

const hexDigits = "0123456789abcdef"

// Entry is one file of a tree.
type Entry struct {
	Digest string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Manifest is one version of a tree: its files by slash path relative to
// states_dir.
type Manifest struct {
	// Version is the SHA-256 of the files map's JSON (sorted keys): the
	// same tree on two masters is the same version.
	Version string           `json:"version"`
	Files   map[string]Entry `json:"files"`
	// Pack, when set, is the version's pack (StateTreePackKey), written
	// before the manifest. It is not part of Version: the same files are
	// the same version with or without a pack.
	Pack *PackInfo `json:"pack,omitempty"`
}

// digest is the hex SHA-256 of b.
func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// version computes Manifest.Version from Files.
func (m Manifest) version() string {
	b, _ := json.Marshal(m.Files) // map keys marshal sorted: canonical
	return digest(b)
}

// Scan reads the tree under dir: every regular file, skipping names that
// start with a dot (.git, editors' swap files). content maps each digest
// to the file's bytes.
func Scan(dir string) (Manifest, map[string][]byte, error) {
	m := Manifest{Files: map[string]Entry{}}
	content := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h := digest(b)
		m.Files[filepath.ToSlash(rel)] = Entry{Digest: h, Size: int64(len(b))}
		content[h] = b
		return nil
	})
	if err != nil {
		return Manifest{}, nil, fmt.Errorf("state tree %s: %w", dir, err)
	}
	m.Version = m.version()
	return m, content, nil
}

// Publisher writes a states_dir to the bucket. It remembers the digests it
// has stored (and those the bucket's manifest names at its first publish),
// so an unchanged file is never written again.
type Publisher struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	Dir string

	stored  map[string]bool
	version string
	packed  bool     // the manifest of version was written with a pack tried
	packs   []string // versions whose packs this publisher keeps, oldest first
}

// PacksKept is how many tree versions keep their pack: the current one and
// those just before it (a job pinned to a version of a minute ago still
// gets its peels a pack). An older version's manifest and contents stay;
// its peels fetch per file.
const PacksKept = 4

// PublishStats says what one Publish wrote.
type PublishStats struct {
	Version      string
	Files        int // files in the tree
	Written      int // contents written (new or changed)
	WrittenBytes int64
	Manifest     bool   // the manifest was written (a new version)
	PackBytes    int64  // the pack written with it (0: none)
	NoPack       string // why no pack was written with a new manifest
}

// Publish scans Dir and stores what the bucket lacks: new contents first,
// then the version's pack, the manifest and the version key. A file over
// the server's payload limit is refused by name (the tree is not
// published); a pack over it is not written (peels fetch per file).
func (p *Publisher) Publish(ctx context.Context) (PublishStats, error) {
	m, content, err := Scan(p.Dir)
	if err != nil {
		return PublishStats{}, err
	}
	st := PublishStats{Version: m.Version, Files: len(m.Files)}
	if p.stored == nil {
		if err := p.resume(ctx); err != nil {
			return st, err
		}
	}
	limit := p.NC.MaxPayload() - 1024 // room for the headers
	for _, path := range slices.Sorted(maps.Keys(m.Files)) {
		e := m.Files[path]
		if p.stored[e.Digest] {
			continue
		}
		if e.Size > limit {
			return st, fmt.Errorf("state tree %s: %s is %d bytes, over the NATS payload limit (%d)", p.Dir, path, e.Size, limit)
		}
		if _, err := peelproto.PutKV(ctx, p.JS, names.BucketStateTree, names.StateTreeFileKey(e.Digest), content[e.Digest]); err != nil {
			return st, fmt.Errorf("state tree %s: %w", path, err)
		}
		p.stored[e.Digest] = true
		st.Written++
		st.WrittenBytes += e.Size
	}
	if m.Version != p.version || !p.packed {
		if err := p.writeVersion(ctx, &m, content, limit, &st); err != nil {
			return st, err
		}
	}
	return st, p.prune(ctx)
}

// resume reads what a master restarted over a filled bucket finds: what
// the current manifest names is stored (contents are written before it),
// and the packs of other versions are the first to be pruned (their order
// is not known), so the bucket holds at most PacksKept packs again after
// this master's next versions.
func (p *Publisher) resume(ctx context.Context) error {
	p.stored = map[string]bool{}
	cur, err := currentManifest(ctx, p.NC)
	switch {
	case err == nil:
		for _, e := range cur.Files {
			p.stored[e.Digest] = true
		}
		// A missing or spoilt pack is written again (zester check
		// reports it; a master restart repairs it).
		p.version, p.packed = cur.Version, cur.Pack != nil && checkPack(ctx, p.NC, cur) == nil
	case !errors.Is(err, peelproto.ErrKeyNotFound):
		p.stored = nil
		return err
	}
	kv, err := p.JS.KeyValue(ctx, names.BucketStateTree)
	if err == nil {
		var l jetstream.KeyLister
		if l, err = kv.ListKeysFiltered(ctx, names.StateTreePackKey(">")); err == nil {
			for k := range l.Keys() {
				if k != names.StateTreePackKey(cur.Version) {
					p.packs = append(p.packs, strings.TrimPrefix(k, names.StateTreePackKey("")))
				}
			}
			// The channel closes after the last key, the lister stopped.
		}
	}
	if p.packed {
		p.packs = append(p.packs, cur.Version)
	}
	if err != nil {
		p.stored = nil
		return fmt.Errorf("state tree packs: %w", err)
	}
	return nil
}

// writeVersion writes m's pack (when the tree packs under limit), then
// the manifest, then the version key.
func (p *Publisher) writeVersion(ctx context.Context, m *Manifest, content map[string][]byte, limit int64, st *PublishStats) error {
	var total int64
	for _, c := range content {
		total += int64(len(c))
	}
	var pack []byte
	switch {
	case total > MaxPackDecoded:
		st.NoPack = fmt.Sprintf("the tree's %d bytes are over the %d a pack may hold", total, MaxPackDecoded)
	default:
		var err error
		if pack, err = encodePack(content); err != nil {
			return err
		}
		if int64(len(pack)) > limit {
			st.NoPack = fmt.Sprintf("the pack's %d bytes are over the NATS payload limit (%d)", len(pack), limit)
			pack = nil
		}
	}
	if pack != nil {
		if _, err := peelproto.PutKV(ctx, p.JS, names.BucketStateTree, names.StateTreePackKey(m.Version), pack); err != nil {
			return fmt.Errorf("state tree pack: %w", err)
		}
		m.Pack = &PackInfo{Digest: digest(pack), Size: int64(len(pack))}
		st.PackBytes = m.Pack.Size
		p.packs = append(slices.DeleteFunc(p.packs, func(v string) bool { return v == m.Version }), m.Version)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("state tree manifest: %w", err)
	}
	if _, err := peelproto.PutKV(ctx, p.JS, names.BucketStateTree, names.StateTreeManifestKey(m.Version), b); err != nil {
		return fmt.Errorf("state tree manifest: %w", err)
	}
	if _, err := peelproto.PutKV(ctx, p.JS, names.BucketStateTree, names.StateTreeVersionKey, []byte(m.Version)); err != nil {
		return fmt.Errorf("state tree version: %w", err)
	}
	p.version, p.packed = m.Version, true
	st.Manifest = true
	return nil
}

// prune deletes the packs of all but the PacksKept newest versions. A
// failed delete stays in the list, retried at the next publish.
func (p *Publisher) prune(ctx context.Context) error {
	if len(p.packs) <= PacksKept {
		return nil
	}
	kv, err := p.JS.KeyValue(ctx, names.BucketStateTree)
	if err != nil {
		return fmt.Errorf("state tree packs: %w", err)
	}
	for len(p.packs) > PacksKept {
		if err := kv.Delete(ctx, names.StateTreePackKey(p.packs[0])); err != nil {
			return fmt.Errorf("state tree pack of %.12s: delete: %w", p.packs[0], err)
		}
		p.packs = p.packs[1:]
	}
	return nil
}

// currentManifest reads and checks the manifest of the bucket's version.
func currentManifest(ctx context.Context, nc *nats.Conn) (Manifest, error) {
	v, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeVersionKey)
	if err != nil {
		return Manifest{}, err
	}
	b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeManifestKey(string(v)))
	if err != nil {
		return Manifest{}, err
	}
	m, err := parseManifest(b)
	if err == nil && m.Version != string(v) {
		err = fmt.Errorf("state tree manifest %.12s: holds version %.12s", v, m.Version)
	}
	return m, err
}

// parseManifest decodes a manifest and checks it: its version matches its
// files, and every path is a plain relative path (no "..", no leading
// slash), so materialising it stays inside the tree directory.
func parseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("state tree manifest: %w", err)
	}
	if m.Version != m.version() {
		return Manifest{}, fmt.Errorf("state tree manifest: version %q does not match its files (%s)", m.Version, m.version())
	}
	if p := m.Pack; p != nil && (len(p.Digest) != 2*sha256.Size || strings.Trim(p.Digest, hexDigits) != "" || p.Size <= 0) {
		return Manifest{}, fmt.Errorf("state tree manifest: bad pack (sha256 %q, %d bytes)", p.Digest, p.Size)
	}
	for path, e := range m.Files {
		if !fs.ValidPath(path) || path == "." || len(e.Digest) != 2*sha256.Size || strings.Trim(e.Digest, hexDigits) != "" {
			return Manifest{}, fmt.Errorf("state tree manifest: bad entry %q (sha256 %q)", path, e.Digest)
		}
	}
	return m, nil
}

// FetchStats says what one Fetch moved.
type FetchStats struct {
	Version string
	Files   int   // files in the tree
	Gets    int   // direct gets: the manifest, the pack, each content fetched
	Bytes   int64 // payload bytes of those gets
	Pack    bool  // the contents came in the version's pack
	// PackRefused is why a pack that was got could not be used (corrupt,
	// forged, gone); the contents were then fetched per file.
	PackRefused error
}

// PackMinMissing is how many contents a peel must lack before it fetches
// the pack: a change of a few files costs the manifest and those files.
// Past it, the pack is fetched when it moves at most twice the bytes of
// the contents missing (a cold cache, a large change).
const PackMinMissing = 4

// ErrVersionGone is the error of a fetch pinned to a version whose
// manifest the bucket no longer holds.
var ErrVersionGone = errors.New("is no longer in the state-tree bucket")

// Cache is what a peel holds of the masters' tree: contents by digest and
// the versions it has materialised. DirCache is a peel's; the simulated
// fleet keeps one in memory per simulated peel.
type Cache interface {
	// Tree returns the materialised tree of version, if there is one.
	Tree(version string) (string, bool)
	// Has reports whether the content of digest is held.
	Has(digest string) bool
	// Put keeps a content, already checked against its digest.
	Put(digest string, b []byte) error
	// Materialise makes m's tree from held contents and returns it.
	Materialise(m Manifest) (string, error)
}

// DirCache is a peel's cache, its <data_dir>/state-tree: contents in
// content/<digest> (0400), trees in trees/<version> (read-only, renamed
// into place whole).
type DirCache string

func (d DirCache) tree(v string) string         { return filepath.Join(string(d), "trees", v) }
func (d DirCache) content(digest string) string { return filepath.Join(string(d), "content", digest) }
func (d DirCache) Has(digest string) bool       { _, err := os.Stat(d.content(digest)); return err == nil }
func (d DirCache) Tree(version string) (string, bool) {
	_, err := os.Stat(d.tree(version))
	return d.tree(version), err == nil
}

func (d DirCache) Put(digest string, b []byte) error {
	if err := os.MkdirAll(filepath.Join(string(d), "content"), 0o700); err != nil {
		return fmt.Errorf("state tree cache: %w", err)
	}
	if err := writeAtomic(d.content(digest), b, 0o400); err != nil {
		return fmt.Errorf("state tree cache: %w", err)
	}
	return nil
}

func (d DirCache) Materialise(m Manifest) (string, error) {
	tree := d.tree(m.Version)
	if err := materialise(filepath.Join(string(d), "content"), tree, m, slices.Sorted(maps.Keys(m.Files))); err != nil {
		return "", fmt.Errorf("state tree %s: %w", m.Version[:12], err)
	}
	return tree, nil
}

// Fetch brings the bucket's current tree to dir (a peel's DirCache) and
// returns its directory: FetchVersion of the current version.
func Fetch(ctx context.Context, nc *nats.Conn, dir string) (string, FetchStats, error) {
	return FetchVersion(ctx, nc, DirCache(dir), "")
}

// FetchVersion brings version ("" the bucket's current one) into cache:
// the contents it lacks (from the version's pack when it lacks more than
// PackMinMissing; a refused pack falls back to per-file gets), each
// checked against its digest, then the tree itself, which it returns. Every content is in hand before the tree is
// materialised, so a missing or corrupt content fails the fetch, naming
// the path, and nothing runs from it. A version already materialised
// costs nothing but the version get (none when pinned). A pinned version
// whose manifest is gone fails with ErrVersionGone.
func FetchVersion(ctx context.Context, nc *nats.Conn, cache Cache, version string) (string, FetchStats, error) {
	st := FetchStats{Version: version}
	if version == "" {
		v, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeVersionKey)
		if errors.Is(err, peelproto.ErrKeyNotFound) {
			return "", FetchStats{}, errors.New("the masters have published no state tree (master.yaml states_dir)")
		}
		if err != nil {
			return "", FetchStats{}, err
		}
		st = FetchStats{Version: string(v), Gets: 1, Bytes: int64(len(v))}
	}
	if len(st.Version) != 64 || strings.Trim(st.Version, hexDigits) != "" {
		return "", st, fmt.Errorf("state tree version %q: not a sha256", st.Version)
	}
	if tree, ok := cache.Tree(st.Version); ok {
		return tree, st, nil
	}
	b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeManifestKey(st.Version))
	st.Gets++
	switch {
	case errors.Is(err, peelproto.ErrKeyNotFound) && version != "":
		return "", st, fmt.Errorf("state tree %.12s, the version the job was dispatched with, %w (the bucket was rebuilt since); nothing ran: run the job again", st.Version, ErrVersionGone)
	case err != nil:
		return "", st, fmt.Errorf("state tree %.12s: manifest: %w", st.Version, err)
	}
	st.Bytes += int64(len(b))
	m, err := parseManifest(b)
	if err == nil && m.Version != st.Version {
		err = fmt.Errorf("state tree manifest %.12s: holds version %.12s", st.Version, m.Version)
	}
	if err != nil {
		return "", st, err
	}
	st.Files = len(m.Files)
	paths := slices.Sorted(maps.Keys(m.Files))
	packed := fetchPack(ctx, nc, cache, m, paths, &st)
	for _, path := range paths {
		e := m.Files[path]
		if cache.Has(e.Digest) {
			continue
		}
		if c, ok := packed[e.Digest]; ok {
			if err := cache.Put(e.Digest, c); err != nil {
				return "", st, err
			}
			continue
		}
		c, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeFileKey(e.Digest))
		st.Gets++
		switch {
		case errors.Is(err, peelproto.ErrKeyNotFound):
			return "", st, fmt.Errorf("state tree %s: %s: content %s is missing from the %s bucket; nothing ran", m.Version[:12], path, e.Digest[:12], names.BucketStateTree)
		case err != nil:
			return "", st, fmt.Errorf("state tree %s: %s: %w", m.Version[:12], path, err)
		}
		st.Bytes += int64(len(c))
		if got := digest(c); got != e.Digest {
			return "", st, fmt.Errorf("state tree %s: %s: content %s is corrupt (its sha256 is %s); nothing ran", m.Version[:12], path, e.Digest[:12], got[:12])
		}
		if err := cache.Put(e.Digest, c); err != nil {
			return "", st, err
		}
	}
	tree, err := cache.Materialise(m)
	return tree, st, err
}

// fetchPack gets m's pack when cache lacks more than PackMinMissing of
// its contents and the pack is at most twice their size, and returns the
// contents cache lacks, each checked against its digest; nil (and
// st.PackRefused when a pack was got) otherwise.
func fetchPack(ctx context.Context, nc *nats.Conn, cache Cache, m Manifest, paths []string, st *FetchStats) map[string][]byte {
	if m.Pack == nil {
		return nil
	}
	var want []string
	var bytes int64
	seen := map[string]bool{}
	for _, path := range paths {
		e := m.Files[path]
		if !seen[e.Digest] && !cache.Has(e.Digest) {
			want = append(want, e.Digest)
			bytes += e.Size
		}
		seen[e.Digest] = true
	}
	if len(want) <= PackMinMissing || m.Pack.Size > 2*bytes {
		return nil
	}
	b, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreePackKey(m.Version))
	st.Gets++
	st.Bytes += int64(len(b))
	var got map[string][]byte
	if err == nil {
		got, err = openPack(m, b, want)
	}
	if err != nil {
		st.PackRefused = fmt.Errorf("state tree %.12s: pack: %w; fetching its files one by one", m.Version, err)
		return nil
	}
	st.Pack = true
	return got
}

// materialise writes the tree to a temporary directory and renames it to
// tree, so a tree directory is always whole; files are 0444 and
// directories 0555: a run reads the tree, never writes it.
func materialise(cache, tree string, m Manifest, paths []string) error {
	if err := os.MkdirAll(filepath.Dir(tree), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(tree), ".tmp-")
	if err == nil {
		err = func() error {
			for _, path := range paths {
				b, err := os.ReadFile(filepath.Join(cache, m.Files[path].Digest))
				if err != nil {
					return err
				}
				dst := filepath.Join(tmp, filepath.FromSlash(path))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(dst, b, 0o444); err != nil {
					return err
				}
			}
			return filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					err = os.Chmod(p, 0o555)
				}
				return err
			})
		}()
	}
	if err == nil {
		err = os.Rename(tmp, tree)
		if _, serr := os.Stat(tree); err != nil && serr == nil {
			err = nil // another run materialised the same version first
		}
	}
	if err != nil && tmp != "" {
		removeTree(tmp)
	}
	return err
}

// removeTree removes a read-only tree.
func removeTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Pinned reports whether a job of function fn runs from the state tree,
// so that the masters pin it to the tree version current at its creation
// (wire.Job.StateTree) and every peel of the job runs that version.
func Pinned(fn string) bool {
	switch fn {
	case "state.apply", "state.sls", "state.highstate", "state.show_sls", "state.show_top":
		return true
	}
	return false
}

// Current is the bucket's current version ("" when none is published).
func Current(ctx context.Context, nc *nats.Conn) (string, error) {
	v, _, err := peelproto.GetKV(ctx, nc, names.BucketStateTree, names.StateTreeVersionKey)
	if errors.Is(err, peelproto.ErrKeyNotFound) {
		return "", nil
	}
	return string(v), err
}
