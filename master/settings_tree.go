package master

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
)

// The settings tree a master renders from: loading it, and marking the
// peels a change touches.

// loadedTree is the tree in use and what its renders share: the Secret
// callback (with its cache of opened tokens), the files' content hashes
// (settings.Tree.FileHashes) and the memo of file outputs, which holds
// values opened by that callback and so lives and dies with the tree.
type loadedTree struct {
	tree   *settings.Tree
	open   func(string) (string, error)
	hashes map[string]string
	memo   *settings.Memo
	// facts is what of a peel's facts its render needs: the tree's fact
	// paths and the curve key (nil: the whole document). It is the previous
	// tree's filter when the paths are the same (factsKey), so that the
	// peels' kept facts (peelSettings.facts) serve the new tree too.
	facts    *render.FactFilter
	factsKey string
}

// newLoadedTree makes the loaded tree of t; prev is the one it replaces
// (nil when none).
func newLoadedTree(t *settings.Tree, open func(string) (string, error), prev *loadedTree) *loadedTree {
	lt := &loadedTree{tree: t, open: open, hashes: t.FileHashes(), memo: settings.NewMemo()}
	if paths, ok := t.FactPaths(); ok {
		paths = append(slices.Clone(paths), []string{factsCurveKey})
		// The key of the set of paths: FactPaths lists them in no fixed
		// order, with repeats.
		keys := make([]string, len(paths))
		for i, p := range paths {
			keys[i] = strings.Join(p, "\x00")
		}
		slices.Sort(keys)
		lt.factsKey = strings.Join(slices.Compact(keys), "\x01")
		if prev != nil && prev.facts != nil && prev.factsKey == lt.factsKey {
			lt.facts = prev.facts
		} else {
			lt.facts = render.NewFactFilter(paths)
		}
	}
	return lt
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
	var old map[string]string
	if s.cur != nil {
		old = s.cur.hashes
	}
	s.cur = newLoadedTree(t, s.opener(), s.cur)
	hashes := s.cur.hashes
	s.treeErr = ""
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
		seen := make(map[string]struct{}, len(ids))
		for _, id := range ids {
			seen[id] = struct{}{}
		}
		s.storeMu.Lock()
		for id, e := range s.stored[filesIdx] {
			if _, dup := seen[id]; !dup && uses(e.files) {
				ids = append(ids, id)
			}
		}
		s.storeMu.Unlock()
	}
	s.markDirty(ids...)
	return len(ids)
}
