package funcs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// FileStat is the result of file.stat. For a symlink the fields describe
// the link itself and LinkTarget holds its target.
type FileStat struct {
	Path       string `json:"path"`
	Exists     bool   `json:"exists"`
	Size       int64  `json:"size"`
	Mode       string `json:"mode"`
	Type       string `json:"type,omitempty"`
	IsDir      bool   `json:"is_dir"`
	ModTime    string `json:"mod_time,omitempty"`
	UID        int    `json:"uid"`
	GID        int    `json:"gid"`
	LinkTarget string `json:"link_target,omitempty"`
}

// FileContent is the result of file.read.
type FileContent struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	// Encoding is "utf-8" or, for content that is not valid UTF-8, "base64".
	Encoding string `json:"encoding"`
	// Size is the file size in bytes, or -1 when the content was truncated
	// and the size is unknown (files under /proc report 0).
	Size      int64 `json:"size"`
	Truncated bool  `json:"truncated"`
}

func checkPath(p string) (string, error) {
	switch {
	case p == "":
		return "", badArgs("argument \"path\" is required")
	case strings.IndexByte(p, 0) >= 0:
		return "", badArgs("argument \"path\": contains a NUL byte")
	case !filepath.IsAbs(p):
		return "", badArgs("argument \"path\": must be absolute, got %q", p)
	}
	return filepath.Clean(p), nil
}

func fileStat(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Path string `json:"path"`
	}
	if err := decodeArgs(args, &a, "path"); err != nil {
		return nil, err
	}
	p, err := checkPath(a.Path)
	if err != nil {
		return nil, err
	}
	res := &FileStat{Path: p, UID: -1, GID: -1}
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return res, nil
		}
		return nil, err
	}
	res.Exists = true
	res.Size = fi.Size()
	res.Mode = octalMode(fi.Mode())
	res.Type = fileType(fi.Mode())
	res.IsDir = fi.IsDir()
	res.ModTime = fi.ModTime().UTC().Format(time.RFC3339)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		res.UID, res.GID = int(st.Uid), int(st.Gid)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		res.LinkTarget, _ = os.Readlink(p)
	}
	return res, nil
}

// octalMode renders the permission and setuid/setgid/sticky bits the way
// chmod takes them, e.g. "0755" or "4755".
func octalMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "char_device"
	case m&fs.ModeDevice != 0:
		return "block_device"
	}
	return "other"
}

func fileRead(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Path     string `json:"path"`
		MaxBytes *int64 `json:"max_bytes"`
	}
	if err := decodeArgs(args, &a, "path"); err != nil {
		return nil, err
	}
	p, err := checkPath(a.Path)
	if err != nil {
		return nil, err
	}
	limit := int64(env.maxOutput())
	if a.MaxBytes != nil {
		switch m := *a.MaxBytes; {
		case m < 0:
			return nil, badArgs("argument \"max_bytes\": must not be negative")
		case m > limit:
			return nil, errorf(CodeTooLarge, "argument \"max_bytes\": %d exceeds the output cap of %d bytes", m, limit)
		case m > 0:
			limit = m
		}
	}

	// O_NONBLOCK so that opening a FIFO cannot hang; it is rejected below.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, errorf(CodeFailed, "%s is a directory", p)
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf(CodeFailed, "%s is not a regular file (%s)", p, fileType(fi.Mode()))
	}

	buf, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	res := &FileContent{Path: p, Size: fi.Size()}
	if int64(len(buf)) > limit {
		res.Truncated = true
		buf = buf[:limit]
		if res.Size <= limit { // grew, or a /proc file that reports size 0
			res.Size = -1
		}
	} else if int64(len(buf)) != res.Size {
		res.Size = int64(len(buf)) // /proc files report 0; a file may change
	}
	text := buf
	if res.Truncated {
		text = trimIncompleteRune(buf)
	}
	if utf8.Valid(text) {
		res.Content, res.Encoding = string(text), "utf-8"
	} else {
		res.Content, res.Encoding = base64.StdEncoding.EncodeToString(buf), "base64"
	}
	return res, nil
}
