package master

import (
	"testing"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/target"
)

// FuzzIndexMatch: a compound target selects a peel through the fact
// index's cached values exactly when it matches the peel's document as the
// CLI's --batch matches it (target.SubjectFromJSON), whether the target's
// paths were registered before the document arrived (extracted at intake)
// or after (scanned by the first job). Seeds: testdata/fuzz/FuzzIndexMatch.
func FuzzIndexMatch(f *testing.F) {
	const id = "fuzz-peel"
	f.Fuzz(func(t *testing.T, doc, expr string) {
		e, err := target.Parse(target.KindCompound, expr, target.Options{})
		if err != nil {
			return
		}
		raw := factcodec.EncodeFast([]byte(doc))
		want := subjectOf(id, nil)
		if checkFacts(id, raw) == "" {
			want, _ = target.SubjectFromJSON(id, []byte(doc))
		}
		wantMatch := e.Match(want)
		for _, early := range []bool{false, true} {
			m := benchMaster(t)
			m.cfg.Partitions = 1
			m.cfg.Index.FactPaths = []string{}
			ix := newFactIndex(m)
			if early {
				ix.register(target.FactPaths(e))
			}
			ix.apply(&benchEntry{key: id, val: raw, rev: 1})
			got := ix.resolve(0, e)
			if (len(got) == 1) != wantMatch {
				t.Fatalf("doc %q, target %q (paths registered before the document: %v): index selects %v, the document matches: %v",
					doc, expr, early, got, wantMatch)
			}
		}
	})
}
