// Package user is the user state module: user.present, user.absent and
// group.present, as Salt does them with shadow-utils (useradd, usermod,
// userdel, groupadd, groupmod).
//
// The current state is read from /etc/passwd and /etc/group under
// Env.Root, and only the differences are passed to the tools, so a second
// run changes nothing. With a Root other than "/", every tool gets
// --prefix ROOT: shadow-utils then edit ROOT/etc/passwd, group, shadow and
// gshadow and create homes under ROOT, which is how the tests run the real
// tools on a temporary root. Test mode only reads.
package user

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/zester-io/zester/peel/state/mod"
)

// Register adds user.present, user.absent and group.present to t.
func Register(t *mod.Table) {
	t.Add("user.present", mod.Entry{Fn: present, Args: []string{"uid", "gid", "groups", "home", "shell", "fullname", "createhome", "system"}})
	t.Add("user.absent", mod.Entry{Fn: absent, Args: []string{"purge"}})
	t.Add("group.present", mod.Entry{Fn: groupPresent, Args: []string{"gid", "system", "members", "addusers", "delusers"}})
}

// shadow runs one shadow-utils program with --prefix for a Root other
// than "/".
func shadow(env *mod.Env, prog string, args ...string) error {
	argv := []string{prog}
	if env.Root != "" && env.Root != "/" {
		argv = append(argv, "--prefix", env.Root)
	}
	argv = append(argv, args...)
	out, err := env.Run(env.Ctx, mod.Command{Argv: argv})
	if err != nil {
		return fmt.Errorf("%s: %w", prog, err)
	}
	if out.Code != 0 {
		return fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), out.Code, strings.TrimSpace(out.Stderr+" "+out.Stdout))
	}
	return nil
}

// checkName refuses names the tools would read as options or that break
// the colon-separated files.
func checkName(kind, name string) error {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, ":,\n \t/") {
		return fmt.Errorf("%s name %q: not a valid name", kind, name)
	}
	return nil
}

// namedDB checks a user or group name (kind) and reads the host's
// account files.
func namedDB(env *mod.Env, kind, name string) (*db, error) {
	if err := checkName(kind, name); err != nil {
		return nil, err
	}
	return readDB(env)
}

// intArg reads a non-negative integer argument (YAML gives numbers,
// strings are accepted).
func intArg(a mod.Args, key string) (int, bool, error) {
	s, ok, err := a.String(key)
	if err != nil || !ok {
		return 0, ok, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, true, fmt.Errorf("argument %s: want a non-negative integer, got %q", key, s)
	}
	return n, true, nil
}

// userWant is user.present's arguments; nil fields are not managed.
type userWant struct {
	uid, gid              *int
	groups                []string
	haveGroups            bool
	home, shell, fullname *string
	createhome, system    bool
}

func readUserWant(d *db, a mod.Args) (userWant, error) {
	var w userWant
	if n, ok, err := intArg(a, "uid"); err != nil {
		return w, err
	} else if ok {
		w.uid = &n
	}
	if s, ok, err := a.String("gid"); err != nil {
		return w, err
	} else if ok {
		n, err := d.gidOf(s)
		if err != nil {
			return w, fmt.Errorf("argument gid: %w", err)
		}
		w.gid = &n
	}
	gs, ok, err := a.Strings("groups")
	if err != nil {
		return w, err
	}
	w.haveGroups = ok
	for _, g := range gs {
		if _, ok := d.groups[g]; !ok {
			return w, fmt.Errorf("argument groups: group %s does not exist", g)
		}
		if !slices.Contains(w.groups, g) {
			w.groups = append(w.groups, g)
		}
	}
	for key, dst := range map[string]**string{"home": &w.home, "shell": &w.shell, "fullname": &w.fullname} {
		s, ok, err := a.String(key)
		if err != nil {
			return w, err
		}
		if ok {
			if strings.ContainsAny(s, ":\n") {
				return w, fmt.Errorf("argument %s: %q contains ':' or a newline", key, s)
			}
			*dst = &s
		}
	}
	w.createhome = true
	if b, ok, err := a.Bool("createhome"); err != nil {
		return w, err
	} else if ok {
		w.createhome = b
	}
	if w.system, _, err = a.Bool("system"); err != nil {
		return w, err
	}
	return w, nil
}

func present(env *mod.Env, name string, args mod.Args) mod.Result {
	d, err := namedDB(env, "user", name)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	w, err := readUserWant(d, args)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	cur, exists := d.users[name]
	if !exists {
		return createUser(env, name, w)
	}
	ch := map[string]any{}
	var flags []string
	if w.uid != nil && *w.uid != cur.uid {
		ch["uid"], flags = *w.uid, append(flags, "-u", strconv.Itoa(*w.uid))
	}
	if w.gid != nil && *w.gid != cur.gid {
		ch["gid"], flags = *w.gid, append(flags, "-g", strconv.Itoa(*w.gid))
	}
	if w.home != nil && *w.home != cur.home {
		ch["home"], flags = *w.home, append(flags, "-d", *w.home)
	}
	if w.shell != nil && *w.shell != cur.shell {
		ch["shell"], flags = *w.shell, append(flags, "-s", *w.shell)
	}
	if w.fullname != nil && *w.fullname != strings.Split(cur.gecos, ",")[0] {
		ch["fullname"], flags = *w.fullname, append(flags, "-c", *w.fullname)
	}
	// groups is the exact list of supplementary groups (Salt's default
	// remove_groups: true).
	if have := d.groupsOf(name); w.haveGroups && !sameSet(have, w.groups) {
		ch["groups"], flags = sortedCopy(nonNil(w.groups)), append(flags, "-G", strings.Join(w.groups, ","))
	}
	if len(ch) == 0 {
		return mod.Result{Name: name, Status: mod.OK, Comment: fmt.Sprintf("User %s is present and up to date", name)}
	}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: ch,
			Comment: fmt.Sprintf("User %s would be changed: %s", name, keys(ch))}
	}
	if err := shadow(env, "usermod", append(flags, name)...); err != nil {
		return mod.Fail(name, "%v", err)
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: ch, Comment: fmt.Sprintf("Updated user %s: %s", name, keys(ch))}
}

func createUser(env *mod.Env, name string, w userWant) mod.Result {
	var flags []string
	if w.uid != nil {
		flags = append(flags, "-u", strconv.Itoa(*w.uid))
	}
	if w.gid != nil {
		flags = append(flags, "-g", strconv.Itoa(*w.gid))
	}
	if len(w.groups) > 0 {
		flags = append(flags, "-G", strings.Join(w.groups, ","))
	}
	if w.home != nil {
		flags = append(flags, "-d", *w.home)
	}
	if w.shell != nil {
		flags = append(flags, "-s", *w.shell)
	}
	if w.fullname != nil {
		flags = append(flags, "-c", *w.fullname)
	}
	if w.createhome {
		flags = append(flags, "-m")
	} else {
		flags = append(flags, "-M")
	}
	if w.system {
		flags = append(flags, "-r")
	}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: map[string]any{name: "new"},
			Comment: fmt.Sprintf("User %s would be created", name)}
	}
	if err := shadow(env, "useradd", append(flags, name)...); err != nil {
		return mod.Fail(name, "%v", err)
	}
	d, err := readDB(env)
	if err != nil {
		return mod.Fail(name, "created, but: %v", err)
	}
	u, ok := d.users[name]
	if !ok {
		return mod.Fail(name, "useradd succeeded but %s is not in %s", name, env.Path("/etc/passwd"))
	}
	groups := d.groupsOf(name)
	if groups == nil {
		groups = []string{}
	}
	return mod.Result{Name: name, Status: mod.OK, Comment: fmt.Sprintf("New user %s created", name),
		Changes: map[string]any{"name": name, "uid": u.uid, "gid": u.gid, "home": u.home, "shell": u.shell, "groups": groups, "fullname": u.gecos}}
}

func absent(env *mod.Env, name string, args mod.Args) mod.Result {
	if err := checkName("user", name); err != nil {
		return mod.Fail(name, "%v", err)
	}
	purge, _, err := args.Bool("purge")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	d, err := readDB(env)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	if _, ok := d.users[name]; !ok {
		return mod.Result{Name: name, Status: mod.OK, Comment: fmt.Sprintf("User %s is not present", name)}
	}
	ch := map[string]any{name: "removed"}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: ch, Comment: fmt.Sprintf("User %s would be removed", name)}
	}
	flags := []string{}
	if purge {
		flags = append(flags, "-r")
	}
	if err := shadow(env, "userdel", append(flags, name)...); err != nil {
		return mod.Fail(name, "%v", err)
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: ch, Comment: fmt.Sprintf("Removed user %s", name)}
}

func groupPresent(env *mod.Env, name string, args mod.Args) mod.Result {
	d, err := namedDB(env, "group", name)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	gid, haveGid, err := intArg(args, "gid")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	system, _, err := args.Bool("system")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	lists := map[string][]string{}
	for _, k := range []string{"members", "addusers", "delusers"} {
		l, ok, err := args.Strings(k)
		if err != nil {
			return mod.Fail(name, "%v", err)
		}
		if ok {
			lists[k] = l
		}
	}
	members, haveMembers := lists["members"]
	add, haveAdd := lists["addusers"]
	del, haveDel := lists["delusers"]
	if haveMembers && (haveAdd || haveDel) {
		return mod.Fail(name, "members cannot be combined with addusers or delusers: members is the whole list")
	}
	cur, exists := d.groups[name]
	want := slices.Clone(cur.members)
	manageMembers := haveMembers || haveAdd || haveDel
	if haveMembers {
		want = nil
		for _, m := range members {
			if !slices.Contains(want, m) {
				want = append(want, m)
			}
		}
	}
	for _, m := range add {
		if !slices.Contains(want, m) {
			want = append(want, m)
		}
	}
	want = slices.DeleteFunc(want, func(m string) bool { return slices.Contains(del, m) })
	for _, m := range want {
		if _, ok := d.users[m]; !ok && !slices.Contains(cur.members, m) {
			return mod.Fail(name, "member %s: no such user in %s", m, env.Path("/etc/passwd"))
		}
	}
	if !exists {
		flags := []string{}
		if haveGid {
			flags = append(flags, "-g", strconv.Itoa(gid))
		}
		if system {
			flags = append(flags, "-r")
		}
		if len(want) > 0 {
			flags = append(flags, "-U", strings.Join(want, ","))
		}
		if env.Test {
			return mod.Result{Name: name, Status: mod.WouldChange, Changes: map[string]any{name: "new"}, Comment: fmt.Sprintf("Group %s would be created", name)}
		}
		if err := shadow(env, "groupadd", append(flags, name)...); err != nil {
			return mod.Fail(name, "%v", err)
		}
		d, err := readDB(env)
		if err != nil {
			return mod.Fail(name, "created, but: %v", err)
		}
		g := d.groups[name]
		return mod.Result{Name: name, Status: mod.OK, Comment: fmt.Sprintf("New group %s created", name),
			Changes: map[string]any{"name": name, "gid": g.gid, "members": nonNil(g.members)}}
	}
	ch := map[string]any{}
	if haveGid && gid != cur.gid {
		ch["gid"] = gid
	}
	if manageMembers && !sameSet(cur.members, want) {
		ch["members"] = sortedCopy(nonNil(want))
	}
	if len(ch) == 0 {
		return mod.Result{Name: name, Status: mod.OK, Comment: fmt.Sprintf("Group %s is present and up to date", name)}
	}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: ch, Comment: fmt.Sprintf("Group %s would be changed: %s", name, keys(ch))}
	}
	if _, ok := ch["gid"]; ok {
		if err := shadow(env, "groupmod", "-g", strconv.Itoa(gid), name); err != nil {
			return mod.Fail(name, "%v", err)
		}
	}
	if _, ok := ch["members"]; ok {
		// groupmod -U without -a replaces the member list ("" empties it).
		if err := shadow(env, "groupmod", "-U", strings.Join(want, ","), name); err != nil {
			return mod.Fail(name, "%v", err)
		}
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: ch, Comment: fmt.Sprintf("Updated group %s: %s", name, keys(ch))}
}

func sameSet(a, b []string) bool {
	return slices.Equal(sortedCopy(a), sortedCopy(b))
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ", ")
}
