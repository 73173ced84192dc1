//go:build unix

package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkStoreDir makes sure this process can write everything under the
// JetStream store dir before nats-server starts on it. nats-server itself
// only says "storage directory is not writable", without naming the
// directory, and only once it fails; the usual cause is a store created by
// root (a first run as root, a restore) and a daemon running as its own
// user. The error names the first path that is not writable, its owner and
// mode, this process's user, and the command that fixes it.
func checkStoreDir(dir string) error {
	var bad error
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			bad = fmt.Errorf("%s cannot be read by %s: %w", path, whoAmI(), err)
			return filepath.SkipAll
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		if aerr := unix.Access(path, unix.W_OK); aerr != nil {
			bad = fmt.Errorf("%s is %s, not writable by %s: %w", path, ownerAndMode(path), whoAmI(), aerr)
			return filepath.SkipAll
		}
		return nil
	})
	if err == nil {
		err = bad
	}
	if err == nil {
		return nil
	}
	fix := ""
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		if u, uerr := user.Current(); uerr == nil {
			fix = fmt.Sprintf("; as root: chown -R %s: %s", u.Username, dir)
		}
	}
	return fmt.Errorf("store dir %s: %w%s", dir, err, fix)
}

// whoAmI is "user NAME (uid N)".
func whoAmI() string {
	uid := os.Geteuid()
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// ownerAndMode is "owned by NAME (uid N) with mode drwxr-x---".
func ownerAndMode(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return err.Error()
	}
	owner := "?"
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = fmt.Sprintf("uid %d", st.Uid)
		if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
			owner = fmt.Sprintf("%s (uid %d)", u.Username, st.Uid)
		}
	}
	return fmt.Sprintf("owned by %s with mode %s", owner, fi.Mode())
}
