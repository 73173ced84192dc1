package state_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/zester-io/zester/peel/state"
	"github.com/zester-io/zester/peel/state/mod"
)

// tree is a state tree from file name → text.
func tree(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v), Mode: 0o644}
	}
	return m
}

var peelFacts = map[string]any{"os": "Debian", "os_family": "Debian", "role": "web"}

func opts(table *mod.Table) state.Options {
	return state.Options{ID: "web1", Facts: peelFacts, Table: table}
}

// apply compiles sls names (or the highstate when none) and runs them
// against root.
func apply(t testing.TB, fsys fs.FS, root string, test bool, table *mod.Table, sls ...string) state.Return {
	t.Helper()
	p, err := compile(fsys, table, sls...)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p.Apply(context.Background(), state.RunOptions{Options: opts(table), Test: test, Root: root, Tree: fsys})
}

func compile(fsys fs.FS, table *mod.Table, sls ...string) (*state.Plan, error) {
	if len(sls) == 0 {
		return state.CompileHighstate(context.Background(), fsys, opts(table))
	}
	return state.Compile(context.Background(), fsys, sls, opts(table))
}

// byID indexes a return by state id (and name when ids repeat).
func byID(t testing.TB, r state.Return) map[string]mod.Run {
	t.Helper()
	out := map[string]mod.Run{}
	for k, v := range r {
		_, id, name, _, ok := mod.SplitRunKey(k)
		if !ok {
			t.Fatalf("bad run key %q", k)
		}
		if _, dup := out[id]; dup {
			out[id+"|"+name] = v
			continue
		}
		out[id] = v
	}
	return out
}

func changedIDs(r state.Return) []string {
	var ids []string
	for _, k := range r.Ordered() {
		if r[k].Changed() || r[k].Status == mod.WouldChange {
			ids = append(ids, r[k].ID)
		}
	}
	return ids
}

func failures(r state.Return) []string {
	var out []string
	for _, k := range r.Ordered() {
		if r[k].Status == mod.Failed {
			out = append(out, r[k].ID+": "+r[k].Comment)
		}
	}
	return out
}

// snapshot is every path under root with its type, mode, content or link
// target: equal snapshots are byte-for-byte equal trees.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fullTree uses every file and cmd function, includes, a salt:// source, a
// template and requisites.
func fullTree() fstest.MapFS {
	return tree(map[string]string{
		"top.sls": `base:
  '*':
    - common
  'os:Debian':
    - match: grain
    - web
  'db*':
    - db
`,
		"common.sls": `motd:
  file.managed:
    - name: /etc/motd
    - contents: "welcome to {{ .id }}"
    - mode: "0640"
    - makedirs: true
`,
		"web/init.sls": `include:
  - .nginx
app dir:
  file.directory:
    - name: /srv/app
    - mode: 0750
    - makedirs: true
current:
  file.symlink:
    - name: /srv/current
    - target: /srv/app
    - require:
      - file: app dir
`,
		"web/nginx.sls": `nginx conf:
  file.managed:
    - name: /etc/nginx/nginx.conf
    - source: salt://web/files/nginx.conf
    - template: jinja
    - makedirs: true
    - replace: false
hosts line:
  file:
    - line
    - name: /etc/hosts
    - content: "10.0.0.1 db"
    - mode: insert
    - location: end
    - require:
      - hosts
hosts:
  file.managed:
    - name: /etc/hosts
    - contents: "127.0.0.1 localhost"
    - replace: false
tune:
  file.replace:
    - name: /etc/nginx/nginx.conf
    - pattern: "^worker_processes .*$"
    - repl: "worker_processes 4;"
    - require:
      - file: nginx conf
stale:
  file.absent:
    - name: /etc/nginx/old.conf
marker:
  cmd.run:
    - name: echo ran >> $ROOT/ran.log && touch $ROOT/made
    - creates: /made
    - env:
      - ROOT: ROOTDIR
`,
		"web/files/nginx.conf": "# nginx for {{ .id }} ({{ .facts.os }})\nworker_processes 1;\n",
	})
}

// fullTreeAt is fullTree writing under a new root that holds a stale
// /etc/nginx/old.conf for file.absent.
func fullTreeAt(t *testing.T) (fstest.MapFS, string) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/nginx"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/nginx/old.conf"), []byte("x"), 0o644)
	return withRoot(fullTree(), root), root
}

func withRoot(fsys fstest.MapFS, root string) fstest.MapFS {
	f := fsys["web/nginx.sls"]
	f.Data = []byte(strings.ReplaceAll(string(f.Data), "ROOTDIR", root))
	return fsys
}

func TestApply_SecondRunReportsNoChanges(t *testing.T) {
	fsys, root := fullTreeAt(t)

	first := apply(t, fsys, root, false, nil)
	if f := failures(first); len(f) > 0 {
		t.Fatalf("first run failed: %v", f)
	}
	want := []string{"motd", "nginx conf", "hosts", "hosts line", "tune", "stale", "marker", "app dir", "current"}
	if got := changedIDs(first); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("first run changed %v, want %v (in run order)", got, want)
	}
	conf, _ := os.ReadFile(filepath.Join(root, "etc/nginx/nginx.conf"))
	if string(conf) != "# nginx for web1 (Debian)\nworker_processes 4;\n" {
		t.Errorf("nginx.conf = %q", conf)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != "127.0.0.1 localhost\n10.0.0.1 db\n" {
		t.Errorf("hosts = %q", b)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/motd")); st == nil || st.Mode().Perm() != 0o640 {
		t.Errorf("motd mode: %v", st)
	}
	if st, _ := os.Stat(filepath.Join(root, "srv/app")); st == nil || st.Mode().Perm() != 0o750 {
		t.Errorf("app dir mode (mode: 0750 unquoted): %v", st)
	}
	if l, _ := os.Readlink(filepath.Join(root, "srv/current")); l != "/srv/app" {
		t.Errorf("symlink -> %q", l)
	}
	diff, _ := byID(t, first)["tune"].Changes["diff"].(string)
	if !strings.Contains(diff, "-worker_processes 1;") || !strings.Contains(diff, "+worker_processes 4;") {
		t.Errorf("file.replace diff:\n%s", diff)
	}

	before := snapshot(t, root)
	second := apply(t, fsys, root, false, nil)
	if got := changedIDs(second); len(got) > 0 || len(failures(second)) > 0 {
		t.Errorf("second run changed %v, failed %v", got, failures(second))
	}
	if after := snapshot(t, root); !equalMaps(before, after) {
		t.Error("second run modified the tree")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "ran.log")); string(b) != "ran\n" {
		t.Errorf("cmd.run ran %q times", b)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestApply_TestModeChangesNothing(t *testing.T) {
	fsys, root := fullTreeAt(t)
	os.WriteFile(filepath.Join(root, "etc/motd"), []byte("old\n"), 0o644)
	before := snapshot(t, root)
	r := apply(t, fsys, root, true, nil)
	if after := snapshot(t, root); !equalMaps(before, after) {
		t.Fatalf("test mode changed the tree:\nbefore %v\nafter  %v", before, after)
	}
	got := byID(t, r)
	for _, id := range []string{"motd", "app dir", "nginx conf", "stale", "marker"} {
		if got[id].Status != mod.WouldChange {
			t.Errorf("%s: result %v (%s), want null (would change)", id, got[id].Status, got[id].Comment)
		}
	}
	if d, _ := got["motd"].Changes["diff"].(string); !strings.Contains(d, "-old") || !strings.Contains(d, "+welcome to web1") {
		t.Errorf("test mode diff of motd:\n%s", d)
	}
	// After a real run, test mode predicts no change.
	apply(t, fsys, root, false, nil)
	again := apply(t, fsys, root, true, nil)
	if c := changedIDs(again); len(c) > 0 {
		t.Errorf("test mode after apply would change %v", c)
	}
}
