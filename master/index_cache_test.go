package master

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/target"
)

// The index's cached fact values select exactly the peels that matching
// the whole documents selects, for documents stored before a path was
// first targeted, after it, and replaced since.
func TestFactIndex_CachedValuesMatchDocuments(t *testing.T) {
	for _, c := range []struct {
		name  string
		paths []string
	}{{"no paths configured", []string{}}, {"index.fact_paths by default", DefaultIndexFactPaths}} {
		t.Run(c.name, func(t *testing.T) { testCachedValuesMatchDocuments(t, c.paths) })
	}
}

func testCachedValuesMatchDocuments(t *testing.T, configured []string) {
	ids, vals := benchDocs(t, 1200)
	for i, doc := range []string{
		`{"id":"%s","roles":["web","db"],"nested":[{"name":"x"}],"none":null,"os":{"id":"debian"},"num":4}`,
		`{"id":"%s","roles":"web","nested":[{"other":1},{"name":"y"}],"os":{"id":"rocky"},"network":{"addresses":["10.0.1.7/24"]}}`,
		`{"id":"%s","roles":[{"web":true}],"os":"flat"}`,
		`{"id":"%s"}`,
		`{"id":"%s","url":"http://x.example.com","nul":["a\u0000b"],"mix":["web",1,{"db":1},["x"]],"f":1.5,"big":12345678901234567890,"t":true,"os":{}}`,
		`{"id":"%s","url":"http:","nul":["a","b"],"mix":[],"f":15e-1,"big":1.2345678901234567e19,"t":"True","os":{"id":null,"id_like":["rhel","fedora"]}}`,
		`{"id":"%s","nul":[],"mix":"web","network":{"addresses":"10.0.1.9"},"os":{"id_like":[]},"e\u0301":"x","x":1e400}`,
		`{"id":"%s","os":{"id":"\u00e9\ud800"},"dup":1,"dup":{"k":2},"network":{"addresses":["fd00::1","bogus",3]}}`,
	} {
		id := fmt.Sprintf("hand-%d.example.com", i)
		ids, vals = append(ids, id), append(vals, []byte(fmt.Sprintf(doc, id)))
	}
	m := benchMaster(t)
	m.cfg.Partitions = 4
	m.cfg.Index.FactPaths = configured
	ix := newFactIndex(m)
	m.index = ix
	rev := uint64(0)
	put := func(i int, v []byte) {
		rev++
		ix.apply(&benchEntry{key: ids[i], val: bytes.Clone(v), rev: rev})
	}
	docs := map[string][]byte{}
	for i := range ids {
		if i%2 == 0 {
			put(i, vals[i])
			docs[ids[i]] = vals[i]
		}
	}
	exprs := []struct {
		kind target.Kind
		expr string
	}{
		{target.KindFact, "os:id:debian"},
		{target.KindFact, "os:id:DEB*"},
		{target.KindFact, "roles:web"},
		{target.KindFact, "nested:0:name:x"},
		{target.KindFact, "nested:name:y"},
		{target.KindFact, "none:None"},
		{target.KindFact, "num:4"},
		{target.KindFact, "missing:x"},
		{target.KindFact, "os:*"},
		{target.KindFact, "kernel:release:6.1.0-1*"},
		{target.KindCompound, "P@os:id:(rocky|alpine) or G@roles:web"},
		{target.KindCompound, "G@os:id:rocky and sim-00* and not S@10.0.0.0/24"},
		{target.KindCompound, "S@10.0.1.0/24"},
		{target.KindCompound, "S@fd00::/64 or S@10.0.1.9"},
		{target.KindFact, "url:http://x*"},
		{target.KindFact, "url:http*"},
		{target.KindFact, "nul:a"},
		{target.KindFact, "nul:b"},
		{target.KindFact, "nul:*"},
		{target.KindFact, "mix:web"},
		{target.KindFact, "mix:1"},
		{target.KindFact, "mix:db"},
		{target.KindFact, "mix:x"},
		{target.KindFact, "f:1.5"},
		{target.KindFact, "big:12345678901234567*"},
		{target.KindFact, "t:true"},
		{target.KindFact, "os:id:None"},
		{target.KindFact, "os:id_like:rhel"},
		{target.KindFact, "os:id_like:*"},
		{target.KindFact, "os:id:\u00e9*"},
		{target.KindFact, "dup:k"},
		{target.KindFact, "dup:1"},
		{target.KindFact, "x:*"},
		{target.KindCompound, "G@os:id_like:* and not G@os:id:*"},
	}
	check := func(stage string) {
		t.Helper()
		for _, c := range exprs {
			e, err := target.Parse(c.kind, c.expr, target.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for p := range m.cfg.Partitions {
				got = append(got, ix.resolve(p, e)...)
			}
			for id, v := range docs {
				doc, err := factcodec.Decode(v)
				if err != nil {
					t.Fatal(err)
				}
				if s, _ := target.SubjectFromJSON(id, doc); e.Match(s) {
					want = append(want, id)
				}
			}
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s %q selects %d peels, the documents %d", stage, c.kind, c.expr, len(got), len(want))
			}
		}
	}
	check("documents stored before the paths were targeted")
	// The other half arrives with the paths registered; some of the first
	// half change OS (the handmade ones swap documents).
	for i := range ids {
		switch {
		case i%2 == 1:
			put(i, vals[i])
			docs[ids[i]] = vals[i]
		case i%10 == 0 && i+1 < len(ids):
			// Peel i now has the facts of peel i+1 (under its own id).
			doc, err := factcodec.Decode(vals[i+1])
			if err != nil {
				t.Fatal(err)
			}
			v := factcodec.Encode(bytes.ReplaceAll(doc, []byte(`"`+ids[i+1]+`"`), []byte(`"`+ids[i]+`"`)))
			put(i, v)
			docs[ids[i]] = v
		}
	}
	check("documents stored or replaced after")
	if len(ix.registered().paths) == 0 {
		t.Fatal("no path cached: the index decoded documents for every job")
	}
}

// A peel's facts that change while the first job on a path scans the
// documents stored before it keep the newer values: the job's scan of the
// old document does not replace what intake extracted from the new one,
// even when intake extracted it with the paths of before the job.
func TestFactIndex_FirstJobKeepsNewerFacts(t *testing.T) {
	m := benchMaster(t)
	m.cfg.Partitions = 1
	m.cfg.Index.FactPaths = []string{}
	ix := newFactIndex(m)
	m.index = ix
	doc := func(id, osid string) []byte {
		return factcodec.Encode([]byte(fmt.Sprintf(`{"id":%q,"os":{"id":%q},"host":{"role":%q}}`, id, osid, osid+"-box")))
	}
	ids := []string{"a.example.com", "b.example.com", "c.example.com"}
	for i, id := range ids {
		ix.apply(&benchEntry{key: id, val: doc(id, "debian"), rev: uint64(i + 1)})
	}
	match := func(expr string) []string {
		t.Helper()
		e, err := target.Parse(target.KindFact, expr, target.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return ix.resolve(0, e)
	}

	// Intake starts on b's new facts before the job registers host:role,
	// and stores them after the job scanned b's old document.
	extracted, proceed := make(chan struct{}), make(chan struct{})
	ix.hookExtracted = func() { close(extracted); <-proceed }
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		ix.apply(&benchEntry{key: ids[1], val: doc(ids[1], "rocky"), rev: 10})
	}()
	<-extracted
	ix.hookExtracted = nil
	scanned, commit := make(chan struct{}), make(chan struct{})
	ix.hookFilled = func() { close(scanned); <-commit }
	first := make(chan []string)
	go func() { first <- match("host:role:debian-box") }()
	<-scanned
	close(proceed)
	<-applied
	close(commit)
	if got := <-first; len(got) < 2 {
		// The racing job may see b either way; a and c are its.
		t.Fatalf("the first job selected %v", got)
	}
	ix.hookFilled = nil
	if got, want := match("host:role:debian-box"), []string{ids[0], ids[2]}; !slices.Equal(got, want) {
		t.Errorf("after the race host:role:debian-box selects %v, want %v", got, want)
	}
	if got, want := match("host:role:rocky-box"), []string{ids[1]}; !slices.Equal(got, want) {
		t.Errorf("after the race host:role:rocky-box selects %v, want %v", got, want)
	}
	if got, want := match("os:id:rocky"), []string{ids[1]}; !slices.Equal(got, want) {
		t.Errorf("os:id:rocky selects %v, want %v", got, want)
	}

	// Facts that change during the scan (intake with every path known).
	ix.hookFilled = func() {
		ix.hookFilled = nil
		ix.apply(&benchEntry{key: ids[2], val: doc(ids[2], "alpine"), rev: 11})
	}
	match("os:version_id:*") // a new path: scans again
	if got, want := match("host:role:alpine-box"), []string{ids[2]}; !slices.Equal(got, want) {
		t.Errorf("host:role:alpine-box selects %v, want %v", got, want)
	}
}

// A document that does not decode, is another peel's, or is refused as JSON
// (a number encoding/json cannot hold) gives its peel no facts: no fact
// target selects it, before or after its path is registered; an id target
// still does.
func TestFactIndex_BadDocumentsMatchNothing(t *testing.T) {
	for _, configured := range [][]string{{}, DefaultIndexFactPaths} {
		m := benchMaster(t)
		m.cfg.Partitions = 1
		m.cfg.Index.FactPaths = configured
		ix := newFactIndex(m)
		m.index = ix
		enc := func(s string) []byte { return factcodec.EncodeFast([]byte(s)) }
		for i, v := range [][]byte{
			[]byte("garbage"),
			enc(`{"id":"someone-else","os":{"id":"debian"}}`),
			enc(`{"id":"bad-2","os":{"id":"debian"},"x":1e400}`),
			enc(`{"id":"bad-3","os":{"id":"debian"}`),
			enc(`{"id":4,"os":{"id":"debian"}}`),
		} {
			ix.apply(&benchEntry{key: fmt.Sprintf("bad-%d", i), val: v, rev: uint64(i + 1)})
		}
		ix.apply(&benchEntry{key: "good", val: enc(`{"id":"good","os":{"id":"debian"}}`), rev: 9})
		for _, c := range []struct {
			kind target.Kind
			expr string
			want []string
		}{
			{target.KindFact, "os:id:debian", []string{"good"}},
			{target.KindFact, "os:*", []string{"good"}},
			{target.KindFact, "x:*", nil},
			{target.KindCompound, "bad-* or G@os:id:*", []string{"bad-0", "bad-1", "bad-2", "bad-3", "bad-4", "good"}},
			{target.KindCompound, "not G@os:id:debian", []string{"bad-0", "bad-1", "bad-2", "bad-3", "bad-4"}},
		} {
			e, err := target.Parse(c.kind, c.expr, target.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := ix.resolve(0, e); !slices.Equal(got, c.want) {
				t.Errorf("configured %v: %q selects %v, want %v", configured, c.expr, got, c.want)
			}
		}
	}
}
