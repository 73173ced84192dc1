package pkg

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/zester-io/zester/peel/state/mod"
)

// backend is one package manager. installed and candidates only query;
// install and remove are one transaction each for all their packages.
type backend interface {
	// installed maps each of names that is installed to its version.
	installed(env *mod.Env, names []string) (map[string]string, error)
	// candidates maps each of names to the version the repositories would
	// install (pkg.latest).
	candidates(env *mod.Env, names []string) (map[string]string, error)
	install(env *mod.Env, ss []spec) error
	remove(env *mod.Env, names []string) error
	refresh(env *mod.Env) error
}

// backendFor chooses the backend from the os facts: os.id, then each of
// os.id_like (Ubuntu is like debian, Rocky like rhel).
func backendFor(env *mod.Env) (backend, error) {
	os, _ := env.Facts["os"].(map[string]any)
	id, _ := os["id"].(string)
	ids := []string{id}
	switch like := os["id_like"].(type) {
	case []any:
		for _, l := range like {
			if s, ok := l.(string); ok {
				ids = append(ids, s)
			}
		}
	case []string:
		ids = append(ids, like...)
	}
	for _, i := range ids {
		switch strings.ToLower(i) {
		case "debian", "ubuntu":
			return apt{changer{env: aptEnv, sep: "=",
				installCmd: []string{"apt-get", "-q", "-y", "-o", "DPkg::Options::=--force-confdef", "-o", "DPkg::Options::=--force-confold", "install", "--"},
				removeCmd:  []string{"apt-get", "-q", "-y", "remove", "--"},
				update:     []string{"apt-get", "-q", "update"}}}, nil
		case "rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn":
			return dnf{changer{sep: "-",
				installCmd: []string{"dnf", "-q", "-y", "install", "--"},
				removeCmd:  []string{"dnf", "-q", "-y", "remove", "--"},
				update:     []string{"dnf", "-q", "makecache"}}}, nil
		case "alpine":
			return apk{changer{sep: "=",
				installCmd: []string{"apk", "add"},
				removeCmd:  []string{"apk", "del"},
				update:     []string{"apk", "update"}}}, nil
		}
	}
	if id == "" {
		return nil, fmt.Errorf("no os.id fact: cannot choose a package manager")
	}
	return nil, fmt.Errorf("no package backend for os %q (id_like %v): apt, dnf and apk are supported", id, ids[1:])
}

// run runs argv through env.Run; a non-zero exit is an error carrying the
// command and its stderr. ok lists exit codes that are not errors.
func run(env *mod.Env, menv []string, argv []string, ok ...int) (mod.Output, error) {
	out, err := env.Run(env.Ctx, mod.Command{Argv: argv, Env: menv})
	if err != nil {
		return out, fmt.Errorf("%s: %w", argv[0], err)
	}
	if out.Code != 0 && !slices.Contains(ok, out.Code) {
		msg := strings.TrimSpace(out.Stderr)
		if msg == "" {
			msg = strings.TrimSpace(out.Stdout)
		}
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return out, fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), out.Code, msg)
	}
	return out, nil
}

// changer is the part the package managers share: the commands that
// change the database, each one transaction for all its packages.
type changer struct {
	env                           []string // added to the command's environment
	installCmd, removeCmd, update []string // argv before the packages
	sep                           string   // between a package's name and version in install
}

func (c changer) install(env *mod.Env, ss []spec) error {
	argv := slices.Clone(c.installCmd)
	for _, s := range sortedSpecs(ss) {
		if s.version != "" {
			argv = append(argv, s.name+c.sep+s.version)
		} else {
			argv = append(argv, s.name)
		}
	}
	_, err := run(env, c.env, argv)
	return err
}

func (c changer) remove(env *mod.Env, names []string) error {
	_, err := run(env, c.env, append(slices.Clone(c.removeCmd), sorted(names)...))
	return err
}

func (c changer) refresh(env *mod.Env) error {
	_, err := run(env, c.env, c.update)
	return err
}

// apt is Debian and Ubuntu: dpkg-query for what is installed, apt-cache
// policy for candidates, apt-get for changes.
type apt struct{ changer }

var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none"}

func (apt) installed(env *mod.Env, names []string) (map[string]string, error) {
	// Exit 1 is "no packages found matching" some of names: those are
	// not installed. db:Status-Abbrev "ii" is installed; "rc" (removed,
	// config files left) and the rest are not.
	argv := append([]string{"dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\t${Version}\n", "--"}, names...)
	out, err := run(env, nil, argv, 1)
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, l := range strings.Split(out.Stdout, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 || !strings.HasPrefix(f[1], "ii") {
			continue
		}
		have[f[0]] = f[2]
	}
	return keep(have, names), nil
}

func (apt) candidates(env *mod.Env, names []string) (map[string]string, error) {
	out, err := run(env, aptEnv, append([]string{"apt-cache", "policy", "--"}, names...))
	if err != nil {
		return nil, err
	}
	cand := map[string]string{}
	cur := ""
	for _, l := range strings.Split(out.Stdout, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case !strings.HasPrefix(l, " ") && strings.HasSuffix(t, ":"):
			cur = strings.TrimSuffix(t, ":")
		case strings.HasPrefix(t, "Candidate:") && cur != "":
			if v := strings.TrimSpace(strings.TrimPrefix(t, "Candidate:")); v != "(none)" {
				cand[cur] = v
			}
		}
	}
	return cand, nil
}

// dnf is RHEL, Fedora and their rebuilds: rpm -q for what is installed,
// dnf for candidates and changes.
type dnf struct{ changer }

const rpmFormat = "%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n"

func (dnf) installed(env *mod.Env, names []string) (map[string]string, error) {
	// rpm -q exits with the number of packages not installed and says so
	// on stdout without a tab: those lines are skipped.
	argv := append([]string{"rpm", "-q", "--qf", rpmFormat, "--"}, names...)
	out, err := env.Run(env.Ctx, mod.Command{Argv: argv})
	if err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	if out.Code > len(names) {
		return nil, fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), out.Code, strings.TrimSpace(out.Stderr))
	}
	return keep(tabPairs(out.Stdout), names), nil
}

func (dnf) candidates(env *mod.Env, names []string) (map[string]string, error) {
	argv := append([]string{"dnf", "-q", "repoquery", "--latest-limit", "1", "--qf", "%{name}\t%{evr}\n", "--"}, names...)
	out, err := run(env, nil, argv)
	if err != nil {
		return nil, err
	}
	return keep(tabPairs(out.Stdout), names), nil
}

// apk is Alpine: apk info -v lists what is installed as name-version-rN,
// apk list the repositories' versions.
type apk struct{ changer }

// apkVersion is the tail of an apk package string after its name.
var apkVersion = regexp.MustCompile(`^[0-9][^-]*-r[0-9]+$`)

// apkSplit splits "name-1.2.3-r0" into name and version: the version is
// the last two dash-separated fields when they look like one.
func apkSplit(s string) (name, version string, ok bool) {
	for i := strings.Index(s, "-"); i > 0; {
		if apkVersion.MatchString(s[i+1:]) {
			return s[:i], s[i+1:], true
		}
		j := strings.Index(s[i+1:], "-")
		if j < 0 {
			break
		}
		i += j + 1
	}
	return "", "", false
}

func apkLines(stdout string, names []string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(stdout, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if n, v, ok := apkSplit(f[0]); ok {
			m[n] = v
		}
	}
	return keep(m, names)
}

func (apk) installed(env *mod.Env, names []string) (map[string]string, error) {
	out, err := run(env, nil, []string{"apk", "info", "-v"})
	if err != nil {
		return nil, err
	}
	return apkLines(out.Stdout, names), nil
}

func (apk) candidates(env *mod.Env, names []string) (map[string]string, error) {
	out, err := run(env, nil, append([]string{"apk", "list"}, names...))
	if err != nil {
		return nil, err
	}
	return apkLines(out.Stdout, names), nil
}

// tabPairs reads "name\tversion" lines.
func tabPairs(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if n, v, ok := strings.Cut(l, "\t"); ok && n != "" {
			m[n] = strings.TrimSpace(v)
		}
	}
	return m
}

// keep is m restricted to names: a query may report more (apk info -v
// lists everything).
func keep(m map[string]string, names []string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		if v, ok := m[n]; ok {
			out[n] = v
		}
	}
	return out
}

func sorted(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}
