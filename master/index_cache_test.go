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
	ids, vals := benchDocs(t, 1200)
	for i, doc := range []string{
		`{"id":"%s","roles":["web","db"],"nested":[{"name":"x"}],"none":null,"os":{"id":"debian"},"num":4}`,
		`{"id":"%s","roles":"web","nested":[{"other":1},{"name":"y"}],"os":{"id":"rocky"},"network":{"addresses":["10.0.1.7/24"]}}`,
		`{"id":"%s","roles":[{"web":true}],"os":"flat"}`,
		`{"id":"%s"}`,
	} {
		id := fmt.Sprintf("hand-%d.example.com", i)
		ids, vals = append(ids, id), append(vals, []byte(fmt.Sprintf(doc, id)))
	}
	m := benchMaster(t)
	m.cfg.Partitions = 4
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
	if len(ix.paths) == 0 {
		t.Fatal("no path cached: the index decoded documents for every job")
	}
}
