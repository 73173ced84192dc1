package user

import (
	"os"
	"strings"
	"testing"

	"github.com/zester-io/zester/peel/state/modtest"
)

// FuzzReadDB: /etc/passwd and /etc/group are read as they are on the host.
// Reading either fails naming the file and line, or gives users and
// groups whose names and fields hold no separator, and whose members are
// the group file's.
func FuzzReadDB(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\nwheel:x:10:a,b\n")
	f.Add("# c\n+nis\n\nx:x:1:1::/:/bin/sh\n", "g:x:5:\n")
	f.Add("a:x:1\n", "g:x:nan:\n")
	f.Fuzz(func(t *testing.T, passwd, group string) {
		env := modtest.Env(t)
		os.MkdirAll(env.Path("/etc"), 0o755)
		os.WriteFile(env.Path("/etc/passwd"), []byte(passwd), 0o644)
		os.WriteFile(env.Path("/etc/group"), []byte(group), 0o644)
		d, err := readDB(env)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "/etc/passwd:") && !strings.Contains(msg, "/etc/group:") {
				t.Fatalf("error %q names no file and line", msg)
			}
			return
		}
		for n, u := range d.users {
			if n != u.name || strings.ContainsAny(n+u.home+u.shell+u.gecos, ":\n") {
				t.Fatalf("user %q: %+v", n, u)
			}
		}
		for n, g := range d.groups {
			if n != g.name || !strings.Contains(group, n+":") {
				t.Fatalf("group %q: %+v", n, g)
			}
			for _, m := range g.members {
				if strings.ContainsAny(m, ",:\n") {
					t.Fatalf("group %q member %q", n, m)
				}
			}
		}
	})
}
