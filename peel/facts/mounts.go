package facts

import (
	"bufio"
	"context"
	"io"
	"strings"
	"time"
)

// pseudoFS lists filesystem types that do not store data and are never
// reported as mounts. tmpfs and ramfs are handled separately (see
// Options.IncludeTmpfs).
var pseudoFS = map[string]bool{
	"autofs": true, "binfmt_misc": true, "bpf": true, "cgroup": true,
	"cgroup2": true, "configfs": true, "debugfs": true, "devfs": true,
	"devpts": true, "devtmpfs": true, "efivarfs": true, "fusectl": true,
	"hugetlbfs": true, "mqueue": true, "nsfs": true, "pipefs": true,
	"proc": true, "pstore": true, "rootfs": true, "rpc_pipefs": true,
	"securityfs": true, "selinuxfs": true, "sockfs": true, "sysfs": true,
	"tracefs": true, "usbfs": true, "nfsd": true, "cpuset": true,
	"fuse.lxcfs": true, "fuse.gvfsd-fuse": true, "fuse.portal": true,
	"overlay_internal": true,
}

// isMemoryFS reports the in-memory filesystems Options.IncludeTmpfs controls.
func isMemoryFS(fstype string) bool {
	return fstype == "tmpfs" || fstype == "ramfs"
}

// keepMount reports whether a mount of the given type is reported.
func keepMount(fstype string, includeTmpfs bool) bool {
	if isMemoryFS(fstype) {
		return includeTmpfs
	}
	return fstype != "" && !pseudoFS[fstype]
}

func (c *collector) mounts(ctx context.Context) map[string]Mount {
	out := map[string]Mount{}
	fh, err := c.open("/proc/self/mounts")
	if err != nil {
		return out
	}
	all, _ := parseMounts(fh)
	fh.Close()

	out = filterMounts(all, c.opts.IncludeTmpfs)
	if c.root == "/" {
		c.fillStatfs(ctx, out)
	}
	return out
}

// filterMounts drops pseudo filesystems (and tmpfs/ramfs unless
// includeTmpfs) and keys the rest by mount point. Later entries over-mount
// earlier ones on the same mount point, so the last one wins: it is the one
// statfs sees.
func filterMounts(all []Mount, includeTmpfs bool) map[string]Mount {
	out := map[string]Mount{}
	for _, m := range all {
		if keepMount(m.FSType, includeTmpfs) {
			out[m.MountPoint] = m
		}
	}
	return out
}

type statfsResult struct {
	mountPoint string
	st         fsStats
	ok         bool
}

// fillStatfs runs statfs(2) on every mount point concurrently and waits at
// most StatfsTimeout (or until ctx is done). A mount whose statfs does not
// return in time (a hung NFS server, say) keeps zero sizes; its goroutine
// finishes whenever the kernel returns.
func (c *collector) fillStatfs(ctx context.Context, mounts map[string]Mount) {
	if len(mounts) == 0 {
		return
	}
	results := make(chan statfsResult, len(mounts))
	for mp := range mounts {
		go func() {
			st, ok := statfs(mp)
			results <- statfsResult{mountPoint: mp, st: st, ok: ok}
		}()
	}
	timer := time.NewTimer(c.opts.StatfsTimeout)
	defer timer.Stop()
	for range len(mounts) {
		select {
		case r := <-results:
			if !r.ok {
				continue
			}
			m := mounts[r.mountPoint]
			m.SizeBytes = r.st.size
			m.FreeBytes = r.st.free
			m.AvailableBytes = r.st.avail
			if r.st.size >= r.st.free {
				m.UsedBytes = r.st.size - r.st.free
			}
			m.InodesTotal = r.st.inodes
			m.InodesFree = r.st.inodesFree
			mounts[r.mountPoint] = m
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// fsStats is the portable subset of statfs(2) results, in bytes/inodes.
type fsStats struct {
	size, free, avail  uint64
	inodes, inodesFree uint64
}

// parseMounts parses the fstab-like format of /proc/self/mounts (and
// /proc/mounts, /etc/mtab): "device mountpoint fstype options dump pass".
// Octal escapes (\040 for a space, \011, \012, \134) are decoded. Lines
// with fewer than four fields are skipped. Every mount is returned, in file
// order; filtering of pseudo filesystems is left to the caller.
func parseMounts(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		opts := strings.Split(fields[3], ",")
		m := Mount{
			Device:     unescapeMountField(fields[0]),
			MountPoint: unescapeMountField(fields[1]),
			FSType:     unescapeMountField(fields[2]),
			Options:    opts,
		}
		for _, o := range opts {
			if o == "ro" {
				m.ReadOnly = true
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescapeMountField decodes the \ooo octal escapes the kernel uses for
// whitespace and backslashes in mount table fields. Invalid escapes are
// kept verbatim.
func unescapeMountField(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			if v <= 0xff {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(ch byte) bool { return '0' <= ch && ch <= '7' }
