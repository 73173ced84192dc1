package user

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/zester-io/zester/peel/state/mod"
)

// account is one /etc/passwd line.
type account struct {
	name, gecos, home, shell string
	uid, gid                 int
}

// group is one /etc/group line.
type group struct {
	name    string
	gid     int
	members []string
}

// db is the user and group databases as read from Env.Root's /etc.
type db struct {
	users  map[string]account
	groups map[string]group
	order  []string // group names in file order
}

// readDB reads /etc/passwd and /etc/group under the root. A missing file
// is an empty database (a fresh root); a line that does not parse is an
// error naming the file and line, not a silently missing user.
func readDB(env *mod.Env) (*db, error) {
	d := &db{users: map[string]account{}, groups: map[string]group{}}
	err := eachLine(env.Path("/etc/passwd"), 7, func(f []string) error {
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("uid %q or gid %q is not a number", f[2], f[3])
		}
		d.users[f[0]] = account{name: f[0], uid: uid, gid: gid, gecos: f[4], home: f[5], shell: f[6]}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(env.Path("/etc/group"), 4, func(f []string) error {
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("gid %q is not a number", f[2])
		}
		g := group{name: f[0], gid: gid}
		if f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		d.groups[f[0]] = g
		d.order = append(d.order, f[0])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// eachLine calls fn with the colon-separated fields of each line of path
// that has exactly n of them; comments, blank lines and NIS "+" lines are
// skipped.
func eachLine(path string, n int, fn func([]string) error) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		if t := strings.TrimSpace(l); t == "" || t[0] == '#' || t[0] == '+' || t[0] == '-' {
			continue
		}
		f := strings.Split(l, ":")
		if len(f) != n {
			return fmt.Errorf("%s:%d: %d fields, want %d", path, line, len(f), n)
		}
		if err := fn(f); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
	return sc.Err()
}

// groupsOf lists the supplementary groups user is a member of, in file
// order.
func (d *db) groupsOf(user string) []string {
	var out []string
	for _, n := range d.order {
		for _, m := range d.groups[n].members {
			if m == user {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// gidOf resolves a gid argument: a number, or a group name.
func (d *db) gidOf(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("gid %d: negative", n)
		}
		return n, nil
	}
	g, ok := d.groups[s]
	if !ok {
		return 0, fmt.Errorf("group %s does not exist", s)
	}
	return g.gid, nil
}
