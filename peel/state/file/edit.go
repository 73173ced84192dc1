package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/zester-io/zester/peel/state/mod"
)

// edit is the common part of file.line and file.replace: read the file,
// let fn compute the new text, and write it back (atomically, keeping
// mode and owner) when it differs.
func edit(env *mod.Env, name string, args mod.Args, missingOK bool, fn func(old string) (string, error)) mod.Result {
	if err := checkName(name); err != nil {
		return mod.Fail(name, "%v", err)
	}
	p := env.Path(name)
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		if missingOK {
			return mod.Result{Name: name, Status: mod.OK, Comment: "File " + name + " is not present; nothing to edit"}
		}
		return mod.Fail(name, "%s does not exist", name)
	}
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	if st.IsDir() {
		return mod.Fail(name, "%s is a directory, not a file", name)
	}
	oldb, err := os.ReadFile(p)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	if binary(oldb) {
		return mod.Fail(name, "%s is a binary file", name)
	}
	old := string(oldb)
	nw, err := fn(old)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	if nw == old {
		return mod.Result{Name: name, Status: mod.OK, Comment: "File " + name + " is in the correct state"}
	}
	changes := map[string]any{"diff": diff(name, oldb, []byte(nw), true, args, false)}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: changes, Comment: "File " + name + " is set to be changed"}
	}
	perm := st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if wantBackup(args) {
		b, err := backup(env, name, oldb, perm)
		if err != nil {
			return mod.Fail(name, "backup of %s: %v", name, err)
		}
		changes["backup"] = b
	}
	uid, gid := -1, -1
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if int(sys.Uid) != os.Getuid() {
			uid = int(sys.Uid)
		}
		if int(sys.Gid) != os.Getgid() {
			gid = int(sys.Gid)
		}
	}
	if err := writeAtomic(p, []byte(nw), perm, uid, gid); err != nil {
		return mod.Fail(name, "%v", err)
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: changes, Comment: "Changes were made to " + name}
}

// splitLines splits text into lines and says whether it ended in a
// newline, so that joining gives the text back.
func splitLines(s string) ([]string, bool) {
	if s == "" {
		return nil, true
	}
	nl := strings.HasSuffix(s, "\n")
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n"), nl
}

func joinLines(l []string, nl bool) string {
	if len(l) == 0 {
		return ""
	}
	s := strings.Join(l, "\n")
	if nl {
		s += "\n"
	}
	return s
}

func optRegexp(args mod.Args, key string) (*regexp.Regexp, error) {
	s, ok, err := args.String(key)
	if err != nil || !ok {
		return nil, err
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return re, nil
}

func find(lines []string, re *regexp.Regexp) int {
	for i, l := range lines {
		if re.MatchString(l) {
			return i
		}
	}
	return -1
}

// line is Salt's file.line: one line made present, replaced or deleted.
//
//	mode: ensure   content is the line right after `after` / before `before`
//	mode: replace  every line matching `match` becomes content
//	mode: delete   every line matching `match` goes
//	mode: insert   content is added (location start|end, or at after/before) unless present
//
// match defaults to the content, as a literal.
func line(env *mod.Env, name string, args mod.Args) mod.Result {
	content, hasContent, err := args.String("content")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	mode, _, _ := args.String("mode")
	match, err := optRegexp(args, "match")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	before, err := optRegexp(args, "before")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	after, err := optRegexp(args, "after")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	location, _, _ := args.String("location")
	if mode != "delete" && !hasContent {
		return mod.Fail(name, "content is required for mode %s", mode)
	}
	if match == nil {
		if !hasContent {
			return mod.Fail(name, "match or content is required")
		}
		match = regexp.MustCompile("^" + regexp.QuoteMeta(strings.TrimSpace(content)) + "$")
	}
	has := func(lines []string) bool {
		for _, l := range lines {
			if strings.TrimSpace(l) == strings.TrimSpace(content) {
				return true
			}
		}
		return false
	}
	return edit(env, name, args, false, func(old string) (string, error) {
		lines, nl := splitLines(old)
		switch mode {
		case "replace":
			for i, l := range lines {
				if match.MatchString(strings.TrimSpace(l)) || match.MatchString(l) {
					lines[i] = content
				}
			}
		case "delete":
			out := lines[:0:0]
			for _, l := range lines {
				if !(match.MatchString(l) || match.MatchString(strings.TrimSpace(l))) {
					out = append(out, l)
				}
			}
			lines = out
		case "ensure":
			switch {
			case after != nil:
				i := find(lines, after)
				if i < 0 {
					return "", fmt.Errorf("no line matches after: %s", after)
				}
				if i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == strings.TrimSpace(content) {
					break
				}
				lines = insertAt(lines, i+1, content)
			case before != nil:
				i := find(lines, before)
				if i < 0 {
					return "", fmt.Errorf("no line matches before: %s", before)
				}
				if i > 0 && strings.TrimSpace(lines[i-1]) == strings.TrimSpace(content) {
					break
				}
				lines = insertAt(lines, i, content)
			default:
				return "", errors.New("mode ensure needs after or before")
			}
		case "insert":
			if has(lines) {
				break
			}
			switch {
			case after != nil:
				i := find(lines, after)
				if i < 0 {
					return "", fmt.Errorf("no line matches after: %s", after)
				}
				lines = insertAt(lines, i+1, content)
			case before != nil:
				i := find(lines, before)
				if i < 0 {
					return "", fmt.Errorf("no line matches before: %s", before)
				}
				lines = insertAt(lines, i, content)
			case location == "start":
				lines = insertAt(lines, 0, content)
			case location == "" || location == "end":
				lines = append(lines, content)
			default:
				return "", fmt.Errorf("location %q: want start or end", location)
			}
		default:
			return "", fmt.Errorf("mode %q: want ensure, replace, delete or insert", mode)
		}
		return joinLines(lines, nl || old == ""), nil
	})
}

func insertAt(l []string, i int, s string) []string {
	l = append(l, "")
	copy(l[i+1:], l[i:])
	l[i] = s
	return l
}

// pyBackref turns a Python replacement (\1, \g<1>, \g<name>) into Go's
// (${1}, ${name}), escaping a literal $.
var pyBackref = regexp.MustCompile(`\\(\d+)|\\g<(\w+)>`)

func goRepl(repl string) string {
	repl = strings.ReplaceAll(repl, "$", "$$")
	return pyBackref.ReplaceAllString(repl, "$${$1$2}")
}

// replace is Salt's file.replace: a regular expression (multi-line mode,
// as Salt's default flags) replaced in the whole file.
func replace(env *mod.Env, name string, args mod.Args) mod.Result {
	pat, ok, err := args.String("pattern")
	if err != nil || !ok {
		return mod.Fail(name, "pattern is required")
	}
	re, err := regexp.Compile("(?m)" + pat)
	if err != nil {
		return mod.Fail(name, "pattern: %v", err)
	}
	repl, ok, err := args.String("repl")
	if err != nil || !ok {
		return mod.Fail(name, "repl is required")
	}
	count := 0
	if c, ok := args["count"].(int64); ok {
		count = int(c)
	}
	appendNF, _, _ := args.Bool("append_if_not_found")
	prependNF, _, _ := args.Bool("prepend_if_not_found")
	nfc, hasNFC, _ := args.String("not_found_content")
	if !hasNFC {
		nfc = repl
	}
	ignore, _, _ := args.Bool("ignore_if_missing")
	gr := goRepl(repl)
	return edit(env, name, args, ignore, func(old string) (string, error) {
		locs := re.FindAllStringSubmatchIndex(old, -1)
		if len(locs) == 0 {
			switch {
			case appendNF:
				if old != "" && !strings.HasSuffix(old, "\n") {
					old += "\n"
				}
				return old + nfc + "\n", nil
			case prependNF:
				return nfc + "\n" + old, nil
			}
			return old, nil
		}
		if count > 0 && len(locs) > count {
			locs = locs[:count]
		}
		var b strings.Builder
		last := 0
		for _, m := range locs {
			b.WriteString(old[last:m[0]])
			b.Write(re.ExpandString(nil, gr, old, m))
			last = m[1]
		}
		b.WriteString(old[last:])
		return b.String(), nil
	})
}
