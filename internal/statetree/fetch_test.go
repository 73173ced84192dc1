package statetree_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/statetree/statetreetest"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
)

// bucket is a real server with the masters' buckets, and a publisher of a
// fresh states_dir holding files.
type bucket struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	dir string
	pub *statetree.Publisher
}

func newBucket(t *testing.T, files map[string]string) *bucket {
	t.Helper()
	nc, js := testkit.ConnectJS(t, testkit.Server(t).ClientURL())
	if err := master.Bootstrap(context.Background(), js, master.Layout{}); err != nil {
		t.Fatal(err)
	}
	b := &bucket{nc: nc, js: js, dir: t.TempDir()}
	b.pub = &statetree.Publisher{NC: nc, JS: js, Dir: b.dir}
	b.write(t, files)
	return b
}

func (b *bucket) write(t *testing.T, files map[string]string) {
	t.Helper()
	statetreetest.Write(t, b.dir, files)
}

func (b *bucket) publish(t *testing.T) statetree.PublishStats {
	t.Helper()
	st, err := b.pub.Publish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (b *bucket) get(t *testing.T, key string) []byte {
	t.Helper()
	v, _, err := peelproto.GetKV(context.Background(), b.nc, names.BucketStateTree, key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return v
}

func (b *bucket) put(t *testing.T, key string, v []byte) {
	t.Helper()
	if _, err := peelproto.PutKV(context.Background(), b.js, names.BucketStateTree, key, v); err != nil {
		t.Fatal(err)
	}
}

func (b *bucket) manifest(t *testing.T, version string) statetree.Manifest {
	t.Helper()
	var m statetree.Manifest
	if err := json.Unmarshal(b.get(t, names.StateTreeManifestKey(version)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fetch fetches version into the peel cache dir, pinned as a job's run is.
func fetch(t *testing.T, b *bucket, cache, version string) (string, statetree.FetchStats) {
	t.Helper()
	tree, st, err := statetree.FetchVersion(t.Context(), b.nc, statetree.DirCache(cache), version)
	if err != nil {
		t.Fatal(err)
	}
	return tree, st
}

// sameTree fails unless tree holds exactly files, byte for byte, and every
// content the cache holds has the SHA-256 it is named by (nothing wrong
// was cached).
func sameTree(t *testing.T, tree, cache string, files map[string]string) {
	t.Helper()
	n := 0
	treeFS := os.DirFS(tree)
	err := fs.WalkDir(treeFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		got, err := fs.ReadFile(treeFS, p)
		if want, ok := files[p]; !ok || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s: %d bytes, want %d (in the tree: %v)", p, len(got), len(want), ok)
		}
		n++
		return err
	})
	if err != nil || n != len(files) {
		t.Fatalf("tree %s: %d files, want %d (%v)", tree, n, len(files), err)
	}
	content := os.DirFS(cache + "/content")
	ents, _ := fs.ReadDir(content, ".")
	for _, e := range ents {
		c, _ := fs.ReadFile(content, e.Name())
		if s := sha256.Sum256(c); hex.EncodeToString(s[:]) != e.Name() {
			t.Errorf("cached content %s has sha256 %x", e.Name(), s)
		}
	}
}

// A cold peel fetches a tree in two gets, the manifest and the pack, and
// materialises it byte for byte; a change of one file then costs the
// manifest and that file (no pack), a large change the manifest and the
// pack again.
func TestFetch_ColdIsManifestAndPack(t *testing.T) {
	files := statetreetest.Highstate(50, "/etc/zester")
	files["web/files/nginx.conf"] = "worker_processes 4;\n"
	files["copy.sls"] = files["svc03.sls"] // one content under two paths
	b := newBucket(t, files)
	v1 := b.publish(t)
	if v1.PackBytes == 0 || v1.NoPack != "" {
		t.Fatalf("publish: no pack (%+v)", v1)
	}
	cache := t.TempDir()
	tree, st := fetch(t, b, cache, v1.Version)
	if st.Gets != 2 || !st.Pack || st.PackRefused != nil || st.Bytes > 2*int64(len(b.get(t, names.StateTreeManifestKey(v1.Version))))+v1.PackBytes {
		t.Fatalf("cold fetch: %+v, want 2 gets (the manifest and a %d B pack)", st, v1.PackBytes)
	}
	sameTree(t, tree, cache, files)
	t.Logf("cold: %d gets, %d B (a pack of %d B)", st.Gets, st.Bytes, v1.PackBytes)

	files["svc07.sls"] = strings.Replace(files["svc07.sls"], "v1", "v2", 1)
	b.write(t, files)
	v2 := b.publish(t)
	tree, st = fetch(t, b, cache, v2.Version)
	if st.Gets != 2 || st.Pack {
		t.Fatalf("after one change: %+v, want 2 gets (the manifest and the file), no pack", st)
	}
	sameTree(t, tree, cache, files)

	for p := range files {
		if strings.HasPrefix(p, "svc") {
			files[p] = strings.Replace(files[p], "- contents: v", "- contents: w", 1)
		}
	}
	b.write(t, files)
	v3 := b.publish(t)
	tree, st = fetch(t, b, cache, v3.Version)
	if st.Gets != 2 || !st.Pack {
		t.Fatalf("after changing 50 files: %+v, want 2 gets (the manifest and the pack)", st)
	}
	sameTree(t, tree, cache, files)
}

// A pack that is not what the manifest promises is refused, naming why,
// and the peel fetches the version file by file: the tree is still byte
// for byte the masters', and nothing from the pack is cached.
func TestFetch_BadPackRefusedThenPerFile(t *testing.T) {
	files := statetreetest.Highstate(8, "/etc/zester")
	for _, c := range []struct {
		name  string
		spoil func(t *testing.T, b *bucket, version string)
		want  string
	}{
		{"corrupt", func(t *testing.T, b *bucket, v string) {
			p := b.get(t, names.StateTreePackKey(v))
			p[len(p)/2] ^= 0xff
			b.put(t, names.StateTreePackKey(v), p)
		}, "the manifest says"},
		{"forged, its manifest rewritten to match", func(t *testing.T, b *bucket, v string) {
			m := b.manifest(t, v)
			lie := map[string][]byte{}
			for _, e := range m.Files {
				lie[e.Digest] = []byte("rm -rf /\n")
			}
			forge(t, b, m, lie)
		}, "is corrupt"},
		{"lacking a file", func(t *testing.T, b *bucket, v string) {
			m := b.manifest(t, v)
			some := map[string][]byte{}
			for p, e := range m.Files {
				if p != "svc02.sls" {
					some[e.Digest] = []byte(files[p])
				}
			}
			forge(t, b, m, some)
		}, "is not in it"},
		{"gone", func(t *testing.T, b *bucket, v string) {
			kv, err := b.js.KeyValue(context.Background(), names.BucketStateTree)
			if err != nil {
				t.Fatal(err)
			}
			if err := kv.Delete(context.Background(), names.StateTreePackKey(v)); err != nil {
				t.Fatal(err)
			}
		}, "not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBucket(t, files)
			v := b.publish(t).Version
			c.spoil(t, b, v)
			cache := t.TempDir()
			tree, st := fetch(t, b, cache, v)
			if st.PackRefused == nil || !strings.Contains(st.PackRefused.Error(), c.want) || !strings.Contains(st.PackRefused.Error(), "one by one") || st.Pack {
				t.Fatalf("pack refusal: %v, want one containing %q", st.PackRefused, c.want)
			}
			if st.Gets != 2+len(files) {
				t.Fatalf("%d gets, want %d: the manifest, the pack, each file", st.Gets, 2+len(files))
			}
			sameTree(t, tree, cache, files)
		})
	}
}

// forge stores a pack of contents as m's pack, and m naming it.
func forge(t *testing.T, b *bucket, m statetree.Manifest, contents map[string][]byte) {
	t.Helper()
	p, err := statetree.EncodePack(contents)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(p)
	m.Pack = &statetree.PackInfo{Digest: hex.EncodeToString(s[:]), Size: int64(len(p))}
	mb, _ := json.Marshal(m)
	b.put(t, names.StateTreePackKey(m.Version), p)
	b.put(t, names.StateTreeManifestKey(m.Version), mb)
}

// Packs are kept for the PacksKept newest versions; an older version's
// manifest and contents stay, and its peels fetch it file by file. A
// master restarted over the bucket keeps the current pack and prunes the
// rest first.
func TestPublish_PacksPrunedToNewest(t *testing.T) {
	files := statetreetest.Highstate(6, "/etc/zester")
	b := newBucket(t, files)
	var versions []string
	for i := range statetree.PacksKept + 2 {
		for p := range files {
			files[p] += "# edit " + string(rune('a'+i)) + "\n"
		}
		b.write(t, files)
		versions = append(versions, b.publish(t).Version)
	}
	hasPack := func(v string) bool {
		_, _, err := peelproto.GetKV(context.Background(), b.nc, names.BucketStateTree, names.StateTreePackKey(v))
		return err == nil
	}
	for i, v := range versions {
		if want := i >= len(versions)-statetree.PacksKept; hasPack(v) != want {
			t.Errorf("version %d of %d: pack kept %v, want %v", i+1, len(versions), hasPack(v), want)
		}
	}
	_, st := fetch(t, b, t.TempDir(), versions[0])
	if st.Pack || st.PackRefused == nil || st.Gets != 2+len(files) {
		t.Fatalf("a pruned version: %+v, want the manifest, the missing pack, and each file", st)
	}

	// A restarted master: the same tree, one more change. It prunes the
	// packs it does not know the order of first.
	b.pub = &statetree.Publisher{NC: b.nc, JS: b.js, Dir: b.dir}
	if st := b.publish(t); st.Manifest || st.Written != 0 {
		t.Fatalf("restart over the same tree wrote %+v", st)
	}
	files["svc00.sls"] += "# after the restart\n"
	b.write(t, files)
	last := b.publish(t).Version
	kept := 0
	for _, v := range append(versions, last) {
		if hasPack(v) {
			kept++
		}
	}
	if !hasPack(last) || !hasPack(versions[len(versions)-1]) || kept != statetree.PacksKept {
		t.Fatalf("after a restart: %d packs kept (want %d, the newest two among them)", kept, statetree.PacksKept)
	}
}

// A tree whose pack would be over the payload limit is published without
// one, saying why, and its peels fetch it file by file.
func TestPublish_NoPackOverPayloadLimit(t *testing.T) {
	files := map[string]string{"top.sls": "base: {}\n"}
	for i := range 6 {
		big := make([]byte, 300<<10) // random: zstd cannot shrink it
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		files["files/blob"+string(rune('0'+i))] = string(big)
	}
	b := newBucket(t, files)
	st := b.publish(t)
	if st.PackBytes != 0 || !strings.Contains(st.NoPack, "over the NATS payload limit") {
		t.Fatalf("publish: %+v, want no pack and why", st)
	}
	if m := b.manifest(t, st.Version); m.Pack != nil {
		t.Fatalf("manifest names a pack: %+v", m.Pack)
	}
	cache := t.TempDir()
	tree, fst := fetch(t, b, cache, st.Version)
	if fst.Pack || fst.PackRefused != nil || fst.Gets != 1+len(files) {
		t.Fatalf("fetch: %+v, want the manifest and each file", fst)
	}
	sameTree(t, tree, cache, files)
}
