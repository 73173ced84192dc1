// Package file is the file state module: file.managed, file.directory,
// file.absent, file.symlink, file.line and file.replace. Every function
// maps host paths through Env.Root, changes nothing in test mode, and is
// idempotent: a second run reports no changes.
//
// Files are replaced atomically (a temporary file in the same directory,
// renamed over the old one), so a reader never sees half a file and a
// failed write leaves the old one.
package file

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff"

	"github.com/zester-io/zester/peel/state/mod"
)

// Register adds the file functions to t.
func Register(t *mod.Table) {
	owner := []string{"user", "group", "mode"}
	t.Add("file.managed", mod.Entry{Fn: managed, Args: append([]string{"contents", "contents_newline", "source", "source_hash", "skip_verify", "template", "makedirs", "dir_mode", "backup", "replace", "show_changes", "create"}, owner...)})
	t.Add("file.directory", mod.Entry{Fn: directory, Args: append([]string{"dir_mode", "makedirs"}, owner...)})
	t.Add("file.absent", mod.Entry{Fn: absent})
	t.Add("file.symlink", mod.Entry{Fn: symlink, Args: []string{"target", "force", "makedirs", "user", "group"}})
	t.Add("file.line", mod.Entry{Fn: line, Args: []string{"content", "match", "mode", "location", "before", "after", "create", "backup", "show_changes"}})
	t.Add("file.replace", mod.Entry{Fn: replace, Args: []string{"pattern", "repl", "count", "append_if_not_found", "prepend_if_not_found", "not_found_content", "ignore_if_missing", "backup", "show_changes"}})
}

// MaxDiff is the largest file (old plus new) a diff is made of.
const MaxDiff = 1 << 20

// BackupDir is where backup: keeps previous files (Salt's file_backup).
const BackupDir = "/var/cache/zester/file_backup"

// checkName refuses a name that is not an absolute, clean path.
func checkName(name string) error {
	if !filepath.IsAbs(name) {
		return fmt.Errorf("%q is not an absolute path", name)
	}
	if c := filepath.Clean(name); c != name && c+"/" != name {
		return fmt.Errorf("%q is not a clean path (write %s)", name, c)
	}
	return nil
}

// owner is the wanted ownership and mode; -1 and 0 mean "leave as is".
type owner struct {
	uid, gid     int
	user, group  string
	mode         fs.FileMode
	hasMode      bool
	modeSpelling string
}

// parseMode reads Salt's mode: "0644", "644", 644, "0o644".
func parseMode(s string) (fs.FileMode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0")
	if t == "" {
		t = "0"
	}
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil || n > 07777 {
		return 0, fmt.Errorf("mode %q is not an octal file mode (0644)", s)
	}
	return fs.FileMode(n&0777) | modeBits(n), nil
}

func modeBits(n uint64) fs.FileMode {
	var m fs.FileMode
	if n&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func octal(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 04000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 02000
	}
	if m&fs.ModeSticky != 0 {
		n |= 01000
	}
	return fmt.Sprintf("%04o", n)
}

// lookup resolves a user or group argument, by name or else by number,
// to its numeric id.
func lookup[T any](args mod.Args, key string, byName, byID func(string) (T, error), id func(T) string) (int, string, error) {
	s, ok, err := args.String(key)
	if err != nil || !ok {
		return -1, "", err
	}
	v, err := byName(s)
	if err != nil {
		if v, err = byID(s); err != nil {
			return -1, "", fmt.Errorf("%s %s does not exist", key, s)
		}
	}
	n, _ := strconv.Atoi(id(v))
	return n, s, nil
}

func wantOwner(args mod.Args, modeKey string) (owner, error) {
	o := owner{uid: -1, gid: -1}
	var err error
	if o.uid, o.user, err = lookup(args, "user", user.Lookup, user.LookupId, func(u *user.User) string { return u.Uid }); err != nil {
		return o, err
	}
	if o.gid, o.group, err = lookup(args, "group", user.LookupGroup, user.LookupGroupId, func(g *user.Group) string { return g.Gid }); err != nil {
		return o, err
	}
	if s, ok, err := args.String(modeKey); err != nil {
		return o, err
	} else if ok {
		m, err := parseMode(s)
		if err != nil {
			return o, err
		}
		o.mode, o.hasMode, o.modeSpelling = m, true, octal(m)
	}
	return o, nil
}

// ownerChanges lists what differs between st and o (Salt's keys: user,
// group, mode).
func ownerChanges(st fs.FileInfo, o owner, changes map[string]any) {
	if st == nil {
		return
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if o.uid >= 0 && int(sys.Uid) != o.uid {
			changes["user"] = o.user
		}
		if o.gid >= 0 && int(sys.Gid) != o.gid {
			changes["group"] = o.group
		}
	}
	if o.hasMode && st.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != o.mode {
		changes["mode"] = o.modeSpelling
	}
}

// applyOwner sets ownership and mode on p (lchown: never through a link).
func applyOwner(p string, o owner, isLink bool) error {
	if o.uid >= 0 || o.gid >= 0 {
		if err := os.Lchown(p, o.uid, o.gid); err != nil {
			return err
		}
	}
	if o.hasMode && !isLink {
		if err := os.Chmod(p, o.mode); err != nil {
			return err
		}
	}
	return nil
}

// parent makes sure the directory of p exists: made when makedirs, else
// an error naming it.
func parent(env *mod.Env, args mod.Args, p string) error {
	dir := filepath.Dir(p)
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("parent %s is not a directory", dir)
		}
		return nil
	}
	mk, _, err := args.Bool("makedirs")
	if err != nil {
		return err
	}
	if !mk {
		return fmt.Errorf("parent directory %s is not present (makedirs: true creates it)", strings.TrimPrefix(dir, strings.TrimRight(env.Root, "/")))
	}
	dm := fs.FileMode(0o755)
	if s, ok, _ := args.String("dir_mode"); ok {
		if m, err := parseMode(s); err == nil {
			dm = m
		}
	}
	return os.MkdirAll(dir, dm)
}

// writeAtomic replaces p with data: a temporary file beside it, written,
// given perm and owner, synced, renamed over p. A reader sees the old file
// or the new one, and a crash leaves one of them, never a torn or empty
// file. Unlike internal/atomicfile it does not sync the directory: that
// doubles the fsyncs of a state run (500 files: about 1 s more here), and
// a state run is idempotent, so a rename lost in a crash is redone by the
// next run.
func writeAtomic(p string, data []byte, perm fs.FileMode, uid, gid int) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".zester-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	err = func() error {
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			return err
		}
		// Owner first: a chown clears setuid and setgid bits.
		if uid >= 0 || gid >= 0 {
			if err := f.Chown(uid, gid); err != nil {
				return err
			}
		}
		if err := f.Chmod(perm); err != nil {
			return err
		}
		return f.Sync()
	}()
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// diff is the changes.diff of a content change: a unified diff, "New
// file", or why there is none.
func diff(name string, old, new []byte, existed bool, args mod.Args, secret bool) string {
	if show, ok, _ := args.Bool("show_changes"); ok && !show {
		return "<show_changes=False>"
	}
	switch {
	case secret:
		return "<contents hold a secret: no diff>"
	case !existed:
		return "New file"
	case len(old)+len(new) > MaxDiff:
		return fmt.Sprintf("File too large to diff (%d and %d bytes)", len(old), len(new))
	case binary(old) || binary(new):
		return "Replace binary file"
	}
	return udiff.Unified(name, name, string(old), string(new))
}

func binary(b []byte) bool { return bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b) }

// backup copies the current file into BackupDir under its path and the
// time, as Salt's backup: minion does, and returns the host path of the
// copy.
func backup(env *mod.Env, name string, old []byte, perm fs.FileMode) (string, error) {
	dst := filepath.Join(BackupDir, name) + "_" + time.Now().UTC().Format("20060102T150405.000000Z")
	p := env.Path(dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, old, perm.Perm()); err != nil {
		return "", err
	}
	return dst, nil
}

func wantBackup(args mod.Args) bool {
	v, ok := args["backup"]
	if !ok || v == nil {
		return false
	}
	if b, isBool := v.(bool); isBool {
		return b
	}
	s, _, _ := args.String("backup")
	return s != "" && s != "false" && s != "False"
}

// content works out file.managed's wanted content; ok false means "leave
// the content alone" (no contents and no source, or replace: false on an
// existing file is decided by the caller).
func content(env *mod.Env, args mod.Args) (data []byte, ok bool, err error) {
	_, hasContents := args["contents"]
	_, hasSource := args["source"]
	if hasContents && hasSource {
		return nil, false, errors.New("contents and source are exclusive: give one")
	}
	tmpl, _, err := args.String("template")
	if err != nil {
		return nil, false, err
	}
	switch tmpl {
	case "", "jinja", "go", "zy":
	default:
		return nil, false, fmt.Errorf("template %q: the one template engine is Zester's (template: jinja, go or zy all select it)", tmpl)
	}
	var srcName string
	switch {
	case hasContents:
		if l, isList := args["contents"].([]any); isList {
			var b strings.Builder
			for _, e := range l {
				fmt.Fprintf(&b, "%v\n", e)
			}
			data = []byte(b.String())
		} else {
			s, _, err := args.String("contents")
			if err != nil {
				return nil, false, err
			}
			data = []byte(s)
		}
		if nl, set, _ := args.Bool("contents_newline"); (!set || nl) && len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		srcName = "contents"
	case hasSource:
		srcs, _, err := args.Strings("source")
		if err != nil {
			return nil, false, err
		}
		if data, srcName, err = readSource(env, srcs); err != nil {
			return nil, false, err
		}
		if err := verifyHash(args, data); err != nil {
			return nil, false, err
		}
	default:
		return nil, false, nil
	}
	if tmpl != "" {
		if env.Render == nil {
			return nil, false, errors.New("template: no template engine in this run")
		}
		if data, err = env.Render(srcName, data); err != nil {
			return nil, false, fmt.Errorf("template: %w", err)
		}
	}
	return data, true, nil
}

// readSource reads the first source that exists: salt:// and zester://
// from the state tree, an absolute path from the host.
func readSource(env *mod.Env, srcs []string) ([]byte, string, error) {
	var tried []string
	for _, s := range srcs {
		if tp, ok := mod.TreePath(s); ok {
			if env.Tree == nil {
				return nil, "", fmt.Errorf("source %s: no state tree in this run", s)
			}
			b, err := fs.ReadFile(env.Tree, tp)
			if err == nil {
				return b, tp, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, "", fmt.Errorf("source %s: %w", s, err)
			}
			tried = append(tried, s)
			continue
		}
		if filepath.IsAbs(s) {
			b, err := os.ReadFile(env.Path(s))
			if err == nil {
				return b, s, nil
			}
			tried = append(tried, s)
			continue
		}
		return nil, "", fmt.Errorf("source %q: want salt://PATH (the state tree) or an absolute path", s)
	}
	return nil, "", fmt.Errorf("source: none of %s exists", strings.Join(tried, ", "))
}

// verifyHash checks source_hash: "sha256=HEX", "sha512=HEX" or a bare
// hex digest (its length says which).
func verifyHash(args mod.Args, data []byte) error {
	want, ok, err := args.String("source_hash")
	if err != nil || !ok {
		return err
	}
	if skip, _, _ := args.Bool("skip_verify"); skip {
		return nil
	}
	algo, hexd, found := strings.Cut(want, "=")
	if !found {
		hexd, algo = want, map[int]string{64: "sha256", 128: "sha512"}[len(want)]
	}
	var h hash.Hash
	switch algo {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return fmt.Errorf("source_hash %q: want sha256=HEX or sha512=HEX", want)
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, hexd) {
		return fmt.Errorf("source_hash mismatch: the source's %s is %s, not %s", algo, got, hexd)
	}
	return nil
}

func managed(env *mod.Env, name string, args mod.Args) mod.Result {
	if err := checkName(name); err != nil {
		return mod.Fail(name, "%v", err)
	}
	o, err := wantOwner(args, "mode")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	p := env.Path(name)
	st, err := os.Stat(p)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return mod.Fail(name, "%v", err)
	}
	if existed && st.IsDir() {
		return mod.Fail(name, "%s is a directory, not a file", name)
	}
	if create, set, _ := args.Bool("create"); set && !create && !existed {
		return mod.Result{Name: name, Status: mod.OK, Comment: "File " + name + " is not present and create is False"}
	}
	data, manage, err := content(env, args)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	if repl, set, _ := args.Bool("replace"); set && !repl && existed {
		manage = false
	}
	var old []byte
	if existed && manage {
		if old, err = os.ReadFile(p); err != nil {
			return mod.Fail(name, "%v", err)
		}
	}
	changes := map[string]any{}
	writeContent := !existed || (manage && !bytes.Equal(old, data))
	if writeContent {
		changes["diff"] = diff(name, old, data, existed, args, args.Secret("contents"))
	}
	ownerChanges(st, o, changes)
	if len(changes) == 0 {
		return mod.Result{Name: name, Status: mod.OK, Comment: "File " + name + " is in the correct state"}
	}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: changes, Comment: "The file " + name + " is set to be changed"}
	}
	if writeContent {
		if !existed {
			if err := parent(env, args, p); err != nil {
				return mod.Fail(name, "%v", err)
			}
		}
		perm := fs.FileMode(0o644)
		if existed {
			perm = st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		}
		if o.hasMode {
			perm = o.mode
		}
		uid, gid := o.uid, o.gid
		if existed {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				// A rewrite keeps the owner unless one is asked for.
				if uid < 0 && int(sys.Uid) != os.Getuid() {
					uid = int(sys.Uid)
				}
				if gid < 0 && int(sys.Gid) != os.Getgid() {
					gid = int(sys.Gid)
				}
			}
			if wantBackup(args) {
				b, err := backup(env, name, old, perm)
				if err != nil {
					return mod.Fail(name, "backup of %s: %v", name, err)
				}
				changes["backup"] = b
			}
		}
		if err := writeAtomic(p, data, perm, uid, gid); err != nil {
			return mod.Fail(name, "%v", err)
		}
	} else if err := applyOwner(p, o, false); err != nil {
		return mod.Fail(name, "%v", err)
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: changes, Comment: "File " + name + " updated"}
}

// look gives a path's host path, its Lstat (nil when missing) and the
// wanted owner and mode.
func look(env *mod.Env, name string, args mod.Args, modeKey string) (string, fs.FileInfo, owner, error) {
	o, err := wantOwner(args, modeKey)
	if err != nil {
		return "", nil, o, err
	}
	p := env.Path(name)
	st, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil, o, err
	}
	return p, st, o, nil
}

func directory(env *mod.Env, name string, args mod.Args) mod.Result {
	if err := checkName(name); err != nil {
		return mod.Fail(name, "%v", err)
	}
	modeKey := "mode"
	if _, ok := args["dir_mode"]; ok {
		modeKey = "dir_mode"
	}
	p, st, o, err := look(env, name, args, modeKey)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	changes := map[string]any{}
	if st == nil {
		changes[name] = "New Dir"
	} else if !st.IsDir() {
		return mod.Fail(name, "%s exists and is not a directory", name)
	} else {
		ownerChanges(st, o, changes)
	}
	if len(changes) == 0 {
		return mod.Result{Name: name, Status: mod.OK, Comment: "The directory " + name + " is in the correct state"}
	}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: changes, Comment: "The directory " + name + " is set to be changed"}
	}
	if st == nil {
		if err := parent(env, args, p); err != nil {
			return mod.Fail(name, "%v", err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return mod.Fail(name, "%v", err)
		}
	}
	if err := applyOwner(p, o, false); err != nil {
		return mod.Fail(name, "%v", err)
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: changes, Comment: "Directory " + name + " updated"}
}

func absent(env *mod.Env, name string, args mod.Args) mod.Result {
	if err := checkName(name); err != nil {
		return mod.Fail(name, "%v", err)
	}
	if name == "/" {
		return mod.Fail(name, "refusing to remove /")
	}
	p := env.Path(name)
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return mod.Result{Name: name, Status: mod.OK, Comment: "File " + name + " is not present"}
	}
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	what := "File"
	if st.IsDir() {
		what = "Directory"
	}
	changes := map[string]any{"removed": name}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: changes, Comment: what + " " + name + " is set for removal"}
	}
	if err := os.RemoveAll(p); err != nil {
		return mod.Fail(name, "%v", err)
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: changes, Comment: "Removed " + strings.ToLower(what) + " " + name}
}

func symlink(env *mod.Env, name string, args mod.Args) mod.Result {
	if err := checkName(name); err != nil {
		return mod.Fail(name, "%v", err)
	}
	tgt, ok, err := args.String("target")
	if err != nil || !ok || tgt == "" {
		return mod.Fail(name, "target: the path the link points to is required")
	}
	p, st, o, err := look(env, name, args, "")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	changes := map[string]any{}
	replaceOld := false
	switch {
	case st == nil:
		changes["new"] = name
	case st.Mode()&fs.ModeSymlink != 0:
		cur, err := os.Readlink(p)
		if err != nil {
			return mod.Fail(name, "%v", err)
		}
		if cur != tgt {
			changes["new"] = name
			changes["old_target"] = cur
			replaceOld = true
		} else {
			ownerChanges(st, o, changes)
		}
	default:
		force, _, _ := args.Bool("force")
		if !force {
			return mod.Fail(name, "%s exists and is not a symlink (force: true replaces it)", name)
		}
		changes["forced"] = "Symlink was forcibly replaced"
		changes["new"] = name
		replaceOld = true
	}
	if len(changes) == 0 {
		return mod.Result{Name: name, Status: mod.OK, Comment: "Symlink " + name + " is present and owned by the correct user"}
	}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: changes, Comment: "Symlink " + name + " to " + tgt + " is set for creation"}
	}
	if st == nil || replaceOld {
		if st == nil {
			if err := parent(env, args, p); err != nil {
				return mod.Fail(name, "%v", err)
			}
		}
		// Make the new link beside the old one and rename it over: no
		// moment without a link.
		tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".zester-link")
		os.Remove(tmp)
		if err := os.Symlink(tgt, tmp); err != nil {
			return mod.Fail(name, "%v", err)
		}
		if st != nil && st.IsDir() {
			if err := os.RemoveAll(p); err != nil {
				os.Remove(tmp)
				return mod.Fail(name, "%v", err)
			}
		}
		if err := os.Rename(tmp, p); err != nil {
			os.Remove(tmp)
			return mod.Fail(name, "%v", err)
		}
	}
	if err := applyOwner(p, o, true); err != nil {
		return mod.Fail(name, "%v", err)
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: changes, Comment: "Created new symlink " + name + " -> " + tgt}
}
