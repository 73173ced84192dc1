package settings_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/settings/settingstest"
)

// Compiles through a Memo give each peel exactly what compiles without one
// give (settings, revealed secrets, masked JSON, files, tokens),
// concurrently, while the memo holds far fewer outputs than peels × files;
// a file that reads .id or calls setting is rendered per peel (its values
// differ per peel), and so is one that reads a fact unique to each peel.
func TestMemo_SameResultsShared(t *testing.T) {
	kp, pub := curveKey(t)
	base, err := settingstest.Tree(pub)
	if err != nil {
		t.Fatal(err)
	}
	open := settings.CachingOpener(kp)
	const peels = 300
	for _, tc := range []struct {
		name               string
		extra              map[string]string
		maxFiles           int
		minRes, maxResults int
	}{
		// common: 3 dcs × 5 roles; users one; db, worker a few each.
		// Web peels (a fifth) read .id: no whole result.
		{"fleet", nil, 40, 10, 40},
		{"unique fact", map[string]string{"fqdn.zy": "fqdn: {{ .facts.fqdn }}\n", "top.zy": base["top.zy"] + "'peel*': [fqdn]\n"}, peels + 40, peels * 4 / 5, peels},
	} {
		files := maps.Clone(base)
		maps.Copy(files, tc.extra)
		tr, err := settings.Load(tree(files), settings.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		memo := settings.NewMemo()
		var wg sync.WaitGroup
		errs := make(chan error, peels)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < peels; i += 4 {
					errs <- compareMemo(tr, i, open, memo)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		nf, nr := memo.Len()
		t.Logf("%s: %d file outputs, %d whole results for %d peels", tc.name, nf, nr, peels)
		if nf > tc.maxFiles || nr < tc.minRes || nr > tc.maxResults {
			t.Errorf("%s: memo holds %d file outputs, %d whole results for %d peels", tc.name, nf, nr, peels)
		}
	}
}

func compareMemo(tr *settings.Tree, i int, open func(string) (string, error), memo *settings.Memo) error {
	id := fmt.Sprintf("peel%05d", i)
	var facts map[string]any
	if err := json.Unmarshal(settingstest.Facts(i), &facts); err != nil {
		return err
	}
	want, err := tr.Compile(id, facts, settings.Options{Secret: open})
	if err != nil {
		return err
	}
	// What the master compiles from: the facts parsed for the tree's
	// paths only, used as they are.
	filter := (*render.FactFilter)(nil)
	if paths, ok := tr.FactPaths(); ok {
		filter = render.NewFactFilter(paths)
	} else {
		return fmt.Errorf("the fleet's tree reads every fact")
	}
	some, err := render.ParseFactsFiltered(settingstest.Facts(i), filter)
	if err != nil {
		return err
	}
	if len(some) >= len(facts) {
		return fmt.Errorf("the filter kept %d facts of %d", len(some), len(facts))
	}
	// Twice: the second compile of a peel takes every memoised file.
	for range 2 {
		got, err := tr.Compile(id, some, settings.Options{Secret: open, Memo: memo, FactsNormalized: true})
		if err != nil {
			return err
		}
		if got.ID != id || !reflect.DeepEqual(got.Revealed(), want.Revealed()) || !reflect.DeepEqual(got.Files, want.Files) || !reflect.DeepEqual(got.Tokens, want.Tokens) {
			return fmt.Errorf("%s: with a memo %s %v %v %v, without %v %v %v", id, got.ID, got.Revealed(), got.Files, got.Tokens, want.Revealed(), want.Files, want.Tokens)
		}
		gm, err := got.MaskedJSON()
		if err != nil {
			return err
		}
		wm, _ := json.Marshal(want.Masked())
		if string(gm) != string(wm) {
			return fmt.Errorf("%s: masked JSON %s, want %s", id, gm, wm)
		}
	}
	return nil
}
