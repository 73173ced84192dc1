package settings_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/settings/settingstest"
)

// Compiles through a Memo give each peel exactly what compiles without one
// give (settings, revealed secrets, files, tokens), concurrently, while the
// memo holds far fewer outputs than peels × files; a file that reads .id or
// calls setting is rendered per peel (its values differ per peel).
func TestMemo_SameResultsShared(t *testing.T) {
	kp, pub := curveKey(t)
	files, err := settingstest.Tree(pub)
	if err != nil {
		t.Fatal(err)
	}
	files["fqdn.zy"] = "fqdn: {{ .facts.fqdn }}\n" // unique per peel
	files["top.zy"] += "'peel*': [fqdn]\n"
	tr, err := settings.Load(tree(files), settings.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	open := settings.CachingOpener(kp)
	memo := settings.NewMemo()
	const peels = 300
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
			t.Error(err)
		}
	}
	// common: 3 dcs × 5 roles; users one; db, worker a few each; fqdn
	// one per peel (up to the per-file bound).
	if n := memo.Len(); n > peels+40 || n < peels {
		t.Errorf("memo holds %d outputs for %d peels", n, peels)
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
	// Twice: the second compile of a peel takes every memoised file.
	for range 2 {
		got, err := tr.Compile(id, facts, settings.Options{Secret: open, Memo: memo})
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got.Revealed(), want.Revealed()) || !reflect.DeepEqual(got.Files, want.Files) || !reflect.DeepEqual(got.Tokens, want.Tokens) {
			return fmt.Errorf("%s: with a memo %v %v %v, without %v %v %v", id, got.Revealed(), got.Files, got.Tokens, want.Revealed(), want.Files, want.Tokens)
		}
	}
	return nil
}
