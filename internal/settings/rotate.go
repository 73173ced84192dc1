package settings

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/atomicfile"
)

// Rotated is one file rotate-key changed.
type Rotated struct {
	Path   string // in the tree, slash-separated
	Tokens int    // tokens re-sealed in it
}

// RotateReport says what RotateKey did.
type RotateReport struct {
	Changed []Rotated
	// Current counts tokens already sealed to the new key (left as they
	// are: a rotation interrupted midway is finished by running it again).
	Current int
}

// RotateKey re-seals every token in the .zy files under dir from the old
// curve key pair to the curve public key newPub. Every token is opened
// before any file is written, so a token that does not open (named by
// file:line:col) changes nothing; each file is then replaced atomically
// (a temporary file in the same directory, synced, renamed over it, mode
// kept). Tokens already sealed to newPub are skipped.
func RotateKey(dir string, old nkeys.KeyPair, newPub string) (*RotateReport, error) {
	newFP, err := Fingerprint(newPub)
	if err != nil {
		return nil, fmt.Errorf("rotate-key: new key: %w", err)
	}
	type pending struct {
		path string
		data []byte
		mode fs.FileMode
		n    int
	}
	var todo []pending
	rep := &RotateReport{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), Ext) || !d.Type().IsRegular() {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		toks := FindTokens(src)
		var b bytes.Buffer
		last, n := 0, 0
		for _, t := range toks {
			if strings.HasPrefix(t.Token, RefPrefix) {
				continue
			}
			tok, err := ParseToken(t.Token)
			if err != nil {
				return fmt.Errorf("%s:%d:%d: %w", rel, t.Line, t.Col, err)
			}
			if tok.Fingerprint == newFP {
				rep.Current++
				continue
			}
			plain, err := tok.Open(old)
			if err != nil {
				return fmt.Errorf("%s:%d:%d: %w", rel, t.Line, t.Col, err)
			}
			sealed, err := Seal(newPub, plain)
			clear(plain)
			if err != nil {
				return fmt.Errorf("%s:%d:%d: %w", rel, t.Line, t.Col, err)
			}
			b.Write(src[last:t.Start])
			b.WriteString(sealed)
			last = t.End
			n++
		}
		if n == 0 {
			return nil
		}
		b.Write(src[last:])
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		todo = append(todo, pending{path: p, data: b.Bytes(), mode: st.Mode().Perm(), n: n})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rotate-key: %w (no file changed)", err)
	}
	for _, f := range todo {
		if err := replaceFile(f.path, f.data, f.mode); err != nil {
			return rep, fmt.Errorf("rotate-key: %w (files listed before it were rotated; run again to finish)", err)
		}
		rel, _ := filepath.Rel(dir, f.path)
		rep.Changed = append(rep.Changed, Rotated{Path: filepath.ToSlash(rel), Tokens: f.n})
	}
	return rep, nil
}

func replaceFile(p string, data []byte, mode fs.FileMode) error {
	return atomicfile.WriteFile(p, data, mode)
}
