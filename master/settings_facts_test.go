package master

import (
	"bytes"
	"testing"
	"testing/fstest"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
)

func loadTestTree(t *testing.T, files map[string]string) *settings.Tree {
	t.Helper()
	fsys := fstest.MapFS{}
	for p, s := range files {
		fsys[p] = &fstest.MapFile{Data: []byte(s)}
	}
	tr, err := settings.Load(fsys, settings.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A tree loaded again with the same fact paths (listed in another order:
// FactPaths follows a map) keeps the previous tree's filter, so the peels'
// kept facts serve it; other paths get a filter of their own, and a kept
// copy serves only the very stored value it was made of.
func TestLoadedTree_FactFilterKeptAcrossLoads(t *testing.T) {
	files := map[string]string{
		"top.zy": "'G@role:web': [a, b, c]\n",
		"a.zy":   "x: {{ .facts.os }}\n",
		"b.zy":   "y: {{ .facts.dc }}\n",
		"c.zy":   "z: {{ .facts.net.ip }}\n",
	}
	open := func(string) (string, error) { return "", nil }
	var lt *loadedTree
	for i := range 20 {
		files["a.zy"] = "x: {{ .facts.os }}\n# " + string(rune('a'+i)) + "\n"
		next := newLoadedTree(loadTestTree(t, files), open, lt)
		if next.facts == nil {
			t.Fatal("no filter")
		}
		if lt != nil && next.facts != lt.facts {
			t.Fatalf("load %d: a new filter for the same paths (%q, before %q)", i, next.factsKey, lt.factsKey)
		}
		lt = next
	}
	files["c.zy"] = "z: {{ .facts.net.mask }}\n"
	other := newLoadedTree(loadTestTree(t, files), open, lt)
	if other.facts == lt.facts || other.factsKey == lt.factsKey {
		t.Fatal("other fact paths kept the filter")
	}

	raw := []byte("stored value")
	m, _ := render.ParseFacts([]byte(`{"os":"debian"}`))
	j, _ := render.AppendFactsJSON(nil, m)
	k := keptFacts{raw: raw, filter: lt.facts, json: j}
	if !k.of(raw, lt.facts) {
		t.Fatal("not of its own value")
	}
	if k.of(bytes.Clone(raw), lt.facts) || k.of(raw, other.facts) || k.of(nil, lt.facts) || (keptFacts{raw: raw, filter: lt.facts}).of(raw, lt.facts) {
		t.Fatal("of another value, another filter, none, or without a copy")
	}
}
