package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/jsm.go/api"
	"github.com/nats-io/nats-server/v2/server/archive"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Problem is one thing wrong with a backup, with the file it is in.
type Problem struct {
	File string `json:"file"`
	What string `json:"problem"`
}

func (p Problem) String() string { return p.File + ": " + p.What }

// VerifyError lists everything wrong with a backup directory.
type VerifyError struct {
	Dir      string
	Problems []Problem
}

func (e *VerifyError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("backup %s is not usable: %s", e.Dir, e.Problems[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "backup %s is not usable (%d problems):", e.Dir, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// StreamReport is what Verify found in one stream backup.
type StreamReport struct {
	Name string `json:"name"`
	// Dir is the stream backup's directory (the backup directory joined
	// with the manifest's or the found subdirectory).
	Dir      string `json:"dir"`
	DataFile string `json:"data_file"`
	Archive  string `json:"archive_format"`
	StreamStats
	Files []FileEntry `json:"files"`

	// Config and State are backup.json's.
	Config api.StreamConfig `json:"-"`
	State  api.StreamState  `json:"-"`

	// expiries are the times (unix ns) at which messages of the archive
	// expire by the stream's max age or their own TTL, for those that do
	// within a day of the verification. A restore of an old backup loses them.
	expiries []int64
}

// ExpiredBy is how many messages of the archive have expired by t (by max
// age or per-message TTL), as far as Verify looked ahead (a day).
func (s *StreamReport) ExpiredBy(t time.Time) uint64 {
	n := uint64(0)
	for _, e := range s.expiries {
		if e <= t.UnixNano() {
			n++
		}
	}
	return n
}

// Report is what Verify found in a backup directory.
type Report struct {
	Dir string `json:"dir"`
	// Manifest is nil for a directory without manifest.json.
	Manifest *Manifest      `json:"manifest,omitempty"`
	Streams  []StreamReport `json:"streams"`
}

// Stream finds the report of stream name.
func (r *Report) Stream(name string) *StreamReport {
	for i := range r.Streams {
		if r.Streams[i].Name == name {
			return &r.Streams[i]
		}
	}
	return nil
}

// Verify checks a backup directory without a server: manifest.json, when
// present, against the files (sizes and sha256); that every backup.json
// parses and names its stream; and that every archive decodes completely. A
// directory without manifest.json is taken as the seed script's (each
// subdirectory with backup.json is a stream), and a directory holding
// backup.json itself as one stream's backup. streams, when not empty, limits
// the check to those streams (they must be in the backup).
//
// The error, when not nil, is a *VerifyError naming each file and what is
// wrong with it; the report then holds what could be read.
func Verify(dir string, streams []string) (*Report, error) {
	return verifyAt(dir, streams, time.Now())
}

func verifyAt(dir string, streams []string, now time.Time) (*Report, error) {
	streams = StreamNames(streams)
	v := &verifier{rep: &Report{Dir: dir}, now: now}
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		v.problem(dir, "%v", unwrapPath(err))
	case !st.IsDir():
		v.problem(dir, "not a directory")
	default:
		m, err := ReadManifest(dir)
		switch {
		case err == nil:
			v.rep.Manifest = m
			v.withManifest(dir, m, streams)
		case errors.Is(err, os.ErrNotExist):
			v.withoutManifest(dir, streams)
		default:
			v.problem(filepath.Join(dir, ManifestFile), "%v", trimPath(err, filepath.Join(dir, ManifestFile)))
		}
	}
	if len(v.problems) > 0 {
		return v.rep, &VerifyError{Dir: dir, Problems: v.problems}
	}
	return v.rep, nil
}

type verifier struct {
	rep      *Report
	now      time.Time
	problems []Problem
}

func (v *verifier) problem(file, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: file, What: fmt.Sprintf(format, args...)})
}

func (v *verifier) withManifest(dir string, m *Manifest, streams []string) {
	mf := filepath.Join(dir, ManifestFile)
	for _, s := range streams {
		if m.Stream(s) == nil && !slices.ContainsFunc(m.Failed, func(f Failure) bool { return f.Stream == s }) {
			v.problem(mf, "stream %s is not in this backup (it holds %s)", s, strings.Join(manifestNames(m), ", "))
		}
	}
	for _, f := range m.Failed {
		if len(streams) == 0 || slices.Contains(streams, f.Stream) {
			v.problem(mf, "stream %s was not backed up: %s", f.Stream, f.Error)
		}
	}
	if len(m.Streams) == 0 && len(m.Failed) == 0 {
		v.problem(mf, "lists no streams")
	}
	seen := map[string]bool{}
	for _, e := range m.Streams {
		if len(streams) > 0 && !slices.Contains(streams, e.Name) {
			continue
		}
		if seen[e.Name] {
			v.problem(mf, "lists stream %s twice", e.Name)
			continue
		}
		seen[e.Name] = true
		if e.Dir == "" || filepath.IsAbs(e.Dir) || !filepath.IsLocal(e.Dir) {
			v.problem(mf, "stream %s: directory %q is not inside the backup", e.Name, e.Dir)
			continue
		}
		sdir := filepath.Join(dir, e.Dir)
		before := len(v.problems)
		r, _ := v.inspect(sdir)
		if r == nil {
			continue
		}
		unreadable := len(v.problems) > before
		if r.Name != e.Name {
			v.problem(filepath.Join(sdir, MetaFile), "names stream %q, the manifest says %q", r.Name, e.Name)
		}
		// Every file the manifest lists must be there, unchanged.
		for _, fe := range e.Files {
			path := filepath.Join(sdir, fe.Name)
			got := r.file(fe.Name)
			if got == nil {
				if _, err := os.Stat(path); err != nil {
					v.problem(path, "missing (listed in %s)", ManifestFile)
				} else {
					v.problem(path, "not a file of a stream backup (listed in %s)", ManifestFile)
				}
				continue
			}
			if got.Size != fe.Size {
				what := "truncated"
				if got.Size > fe.Size {
					what = "grown"
				}
				v.problem(path, "%s: %d bytes, %s recorded %d", what, got.Size, ManifestFile, fe.Size)
			} else if got.SHA256 != fe.SHA256 {
				v.problem(path, "checksum mismatch: sha256 %s, %s recorded %s (the file changed after the backup)", got.SHA256, ManifestFile, fe.SHA256)
			}
		}
		for _, got := range r.Files {
			if !slices.ContainsFunc(e.Files, func(fe FileEntry) bool { return fe.Name == got.Name }) {
				v.problem(filepath.Join(sdir, got.Name), "not listed in %s", ManifestFile)
			}
		}
		if unreadable {
			continue // the archive did not read; its counts mean nothing
		}
		if r.Messages != e.Messages {
			v.problem(r.DataFile, "holds %d messages, %s recorded %d", r.Messages, ManifestFile, e.Messages)
		}
		if len(v.problems) == before {
			v.rep.Streams = append(v.rep.Streams, *r)
		}
	}
}

func manifestNames(m *Manifest) []string {
	var out []string
	for _, e := range m.Streams {
		out = append(out, e.Name)
	}
	return out
}

// withoutManifest handles the seed script's directories (and a single
// stream's backup directory).
func (v *verifier) withoutManifest(dir string, streams []string) {
	var dirs []string
	if _, err := os.Stat(filepath.Join(dir, MetaFile)); err == nil {
		dirs = []string{dir}
	} else {
		ents, err := os.ReadDir(dir)
		if err != nil {
			v.problem(dir, "%v", unwrapPath(err))
			return
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue // master.yaml and the like
			}
			sdir := filepath.Join(dir, e.Name())
			if _, err := os.Stat(filepath.Join(sdir, MetaFile)); err != nil {
				// A stream backup that never started leaves an empty
				// directory; one that failed half way leaves files.
				if hasDataFile(sdir) {
					v.problem(filepath.Join(sdir, MetaFile), "missing: the backup of this stream did not finish")
				}
				continue
			}
			dirs = append(dirs, sdir)
		}
	}
	if len(dirs) == 0 {
		v.problem(dir, "no %s and no stream backups (subdirectories with %s)", ManifestFile, MetaFile)
		return
	}
	// Names first (cheap), so that --streams reads only what it needs.
	type cand struct {
		dir  string
		name string
	}
	var cands []cand
	byName := map[string]string{}
	for _, d := range dirs {
		req, err := readMeta(filepath.Join(d, MetaFile))
		if err != nil {
			name := filepath.Base(d)
			if len(streams) == 0 || slices.Contains(streams, StreamName(name)) || slices.Contains(streams, name) {
				v.problem(filepath.Join(d, MetaFile), "%v", err)
			}
			continue
		}
		name := req.Config.Name
		if prev, dup := byName[name]; dup {
			v.problem(filepath.Join(d, MetaFile), "stream %s is also backed up in %s", name, prev)
			continue
		}
		byName[name] = d
		cands = append(cands, cand{d, name})
	}
	for _, s := range streams {
		if _, ok := byName[s]; !ok {
			v.problem(dir, "stream %s is not in this backup", s)
		}
	}
	for _, c := range cands {
		if len(streams) > 0 && !slices.Contains(streams, c.name) {
			continue
		}
		if r, ok := v.inspect(c.dir); ok {
			v.rep.Streams = append(v.rep.Streams, *r)
		}
	}
}

func hasDataFile(dir string) bool {
	for _, f := range []string{DataFile, LegacyDataFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

func (r *StreamReport) file(name string) *FileEntry {
	for i := range r.Files {
		if r.Files[i].Name == name {
			return &r.Files[i]
		}
	}
	return nil
}

// readMeta reads a backup.json.
func readMeta(path string) (*api.JSApiStreamRestoreRequest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty: the backup of this stream did not finish")
	}
	var req api.JSApiStreamRestoreRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if req.Config.Name == "" {
		return nil, errors.New("names no stream (config.name is empty)")
	}
	return &req, nil
}

// inspect reads one stream backup directory completely. ok is false when
// it is unusable (the problems are recorded).
func (v *verifier) inspect(sdir string) (*StreamReport, bool) {
	before := len(v.problems)
	r := &StreamReport{Dir: sdir}
	metaPath := filepath.Join(sdir, MetaFile)
	fe, err := hashFile(metaPath)
	if err != nil {
		v.problem(metaPath, "%v", err)
		return nil, false
	}
	r.Files = append(r.Files, fe)
	req, err := readMeta(metaPath)
	if err != nil {
		v.problem(metaPath, "%v", err)
		return nil, false
	}
	r.Name, r.Config, r.State = req.Config.Name, req.Config, req.State
	r.Bytes, r.FirstSeq, r.LastSeq, r.Subjects = req.State.Bytes, req.State.FirstSeq, req.State.LastSeq, req.State.NumSubjects

	arc, legacy := filepath.Join(sdir, DataFile), filepath.Join(sdir, LegacyDataFile)
	_, errArc := os.Stat(arc)
	_, errLegacy := os.Stat(legacy)
	switch {
	case errArc == nil && errLegacy == nil:
		v.problem(sdir, "holds both %s and %s; a restore would not know which to send", DataFile, LegacyDataFile)
		return nil, false
	case errArc == nil:
		r.DataFile = arc
	case errLegacy == nil:
		r.DataFile = legacy
	default:
		v.problem(arc, "missing (and no %s either): nothing to restore", LegacyDataFile)
		return nil, false
	}
	w, fe, err := walkArchive(r.DataFile, req, v.now)
	if fe.Name != "" {
		r.Files = append(r.Files, fe)
	}
	if err != nil {
		v.problem(r.DataFile, "%v", err)
		return r, false
	}
	r.Archive, r.Messages, r.Consumers, r.expiries = w.format, w.messages, w.consumers, w.expiries
	if w.format == FormatNATSARC1 {
		// backup.json's state is the one the server put into the archive;
		// a mismatch means files of two backups were mixed.
		if w.state.FirstSeq != req.State.FirstSeq || w.state.LastSeq != req.State.LastSeq || w.state.Msgs != req.State.Msgs {
			v.problem(r.DataFile, "belongs to another snapshot: its state is seq %d..%d with %d messages, %s says seq %d..%d with %d messages",
				w.state.FirstSeq, w.state.LastSeq, w.state.Msgs, MetaFile, req.State.FirstSeq, req.State.LastSeq, req.State.Msgs)
		}
	} else {
		r.Messages = req.State.Msgs
	}
	return r, len(v.problems) == before
}

func hashFile(path string) (FileEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileEntry{}, unwrapPath(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileEntry{}, fmt.Errorf("read: %v", unwrapPath(err))
	}
	return FileEntry{Name: filepath.Base(path), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

type walkResult struct {
	format    string
	messages  uint64
	consumers int
	state     api.StreamState
	expiries  []int64
}

// errTrap remembers the first real error of the s2 decoder, which the
// archive reader would otherwise turn into a bare "invalid archive".
type errTrap struct {
	r   io.Reader
	err error
}

func (t *errTrap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

type countReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// walkArchive decodes a data file completely and hashes it on the way.
func walkArchive(path string, meta *api.JSApiStreamRestoreRequest, now time.Time) (walkResult, FileEntry, error) {
	var w walkResult
	f, err := os.Open(path)
	if err != nil {
		return w, FileEntry{}, unwrapPath(err)
	}
	defer f.Close()
	h := sha256.New()
	raw := &countReader{r: io.TeeReader(f, h)}
	trap := &errTrap{r: s2.NewReader(raw)}
	dec := &countReader{r: trap}
	br := bufio.NewReaderSize(dec, 64<<10)

	walkErr := func() error {
		magic, err := br.Peek(len(archive.MagicBytes))
		switch {
		case trap.err != nil:
			return s2Error(trap.err, raw)
		case len(magic) == 0:
			return errors.New("empty archive: no data at all")
		case string(magic) == archive.MagicBytes:
			w.format = FormatNATSARC1
			return walkNATSARC1(br, trap, raw, dec, meta, now, &w)
		case err != nil && !errors.Is(err, io.EOF):
			return err
		default:
			w.format = FormatTar
			return walkTar(br, trap, raw)
		}
	}()
	if walkErr == nil {
		// The archive ended where it should; the s2 stream must end too.
		if n, err := io.Copy(io.Discard, br); err != nil {
			walkErr = s2Error(err, raw)
		} else if n > 0 {
			walkErr = fmt.Errorf("%d bytes of data after the end of the archive", n)
		}
	}
	// Hash the whole file whatever happened, so sizes and checksums can
	// still be compared.
	if _, err := io.Copy(io.Discard, raw); err != nil && walkErr == nil {
		walkErr = err
	}
	return w, FileEntry{Name: filepath.Base(path), Size: raw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, walkErr
}

func s2Error(err error, raw *countReader) error {
	at := raw.n
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), raw.eof && errors.Is(err, s2.ErrCorrupt):
		// The decoder reports a block cut short by the end of the file as
		// corrupt input.
		return fmt.Errorf("truncated: the file ends inside an s2 block, after %d bytes", at)
	case errors.Is(err, s2.ErrCRC):
		return fmt.Errorf("corrupt: s2 block checksum mismatch near byte %d", at)
	case errors.Is(err, s2.ErrCorrupt), errors.Is(err, s2.ErrUnsupported):
		return fmt.Errorf("corrupt: not a valid s2 stream near byte %d (%v)", at, err)
	}
	return fmt.Errorf("read near byte %d: %v", at, unwrapPath(err))
}

// maxEntryHeader bounds the header bytes of one message that Verify reads
// into memory (a corrupt size must not allocate gigabytes).
const maxEntryHeader = 64 << 20

func walkNATSARC1(br io.Reader, trap *errTrap, raw, dec *countReader, meta *api.JSApiStreamRestoreRequest, now time.Time, w *walkResult) error {
	ar := archive.NewReader(br)
	fail := func(err error, format string, args ...any) error {
		if trap.err != nil {
			return s2Error(trap.err, raw)
		}
		msg := fmt.Sprintf(format, args...)
		if err != nil {
			msg += ": " + err.Error()
		}
		return errors.New(msg)
	}
	h, err := ar.Next()
	if err != nil {
		return fail(err, "NATSARC1 archive without entries")
	}
	if h.Name != "state.json" {
		return fail(nil, "first entry is %q, want state.json", h.Name)
	}
	sj, err := io.ReadAll(ar)
	if err != nil {
		return fail(err, "state.json entry")
	}
	if err := json.Unmarshal(sj, &w.state); err != nil {
		return fail(nil, "state.json entry is not valid JSON: %v", err)
	}
	maxAge := meta.Config.MaxAge
	horizon := now.Add(24 * time.Hour).UnixNano()
	hdr := make([]byte, 0, 4096)
	var lastSeq uint64
	for {
		h, err := ar.Next()
		if errors.Is(err, io.EOF) {
			if trap.err != nil {
				return s2Error(trap.err, raw)
			}
			return fmt.Errorf("truncated: the archive ends after %d messages (last sequence %d of %d) without the end marker", w.messages, lastSeq, w.state.LastSeq)
		}
		if err != nil {
			return fail(err, "bad entry after %d messages (last sequence %d), at uncompressed byte %d", w.messages, lastSeq, dec.n)
		}
		if h.Sequence == 0 {
			if h.Name == "" && h.Timestamp == 0 && h.HeaderSize == 0 && h.PayloadSize == 0 {
				break // end marker
			}
			if strings.HasPrefix(h.Name, "consumers/") {
				w.consumers++
				continue
			}
			return fail(nil, "entry %q has no sequence", h.Name)
		}
		if h.Sequence <= lastSeq {
			return fail(nil, "message sequence %d after %d: out of order", h.Sequence, lastSeq)
		}
		if w.state.LastSeq > 0 && h.Sequence > w.state.LastSeq {
			return fail(nil, "message sequence %d beyond the snapshot's last sequence %d", h.Sequence, w.state.LastSeq)
		}
		if h.HeaderSize > maxEntryHeader {
			return fail(nil, "message sequence %d claims %d header bytes", h.Sequence, h.HeaderSize)
		}
		hdr = hdr[:0]
		if h.HeaderSize > 0 {
			hdr = slices.Grow(hdr, int(h.HeaderSize))[:h.HeaderSize]
			if _, err := io.ReadFull(ar, hdr); err != nil {
				return fail(err, "message sequence %d: header", h.Sequence)
			}
		}
		if n, err := io.Copy(io.Discard, ar); err != nil || n != h.PayloadSize {
			return fail(err, "message sequence %d: payload of %d bytes, read %d", h.Sequence, h.PayloadSize, n)
		}
		lastSeq = h.Sequence
		w.messages++
		exp := int64(0)
		if maxAge > 0 {
			exp = h.Timestamp + int64(maxAge)
		}
		if ttl := messageTTL(hdr); ttl > 0 {
			if e := h.Timestamp + int64(ttl); exp == 0 || e < exp {
				exp = e
			}
		}
		if exp != 0 && exp <= horizon {
			w.expiries = append(w.expiries, exp)
		}
	}
	if w.messages > w.state.Msgs {
		return fail(nil, "holds %d messages, its state.json says %d", w.messages, w.state.Msgs)
	}
	if h, err := ar.Next(); err == nil {
		return fail(nil, "entry %q after the end marker", h.Name)
	} else if !errors.Is(err, io.EOF) {
		return fail(err, "data after the end marker")
	}
	return nil
}

// messageTTL reads a Nats-TTL header the way the server does; 0 is none
// (and so is a header block that does not decode).
func messageTTL(hdr []byte) time.Duration {
	if len(hdr) == 0 {
		return 0
	}
	h, err := nats.DecodeHeadersMsg(hdr)
	if err != nil {
		return 0
	}
	val := strings.TrimSpace(h.Get(jetstream.MsgTTLHeader))
	if val == "" || strings.EqualFold(val, "never") {
		return 0
	}
	if d, err := time.ParseDuration(val); err == nil {
		return d
	}
	if n, err := strconv.ParseInt(val, 10, 64); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

func walkTar(br io.Reader, trap *errTrap, raw *countReader) error {
	tr := tar.NewReader(br)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if trap.err != nil {
				return s2Error(trap.err, raw)
			}
			if n == 0 {
				return errors.New("not a NATSARC1 archive and not a tar archive either")
			}
			return nil
		}
		if err != nil {
			if trap.err != nil {
				return s2Error(trap.err, raw)
			}
			if n == 0 {
				return fmt.Errorf("not a NATSARC1 archive and not a tar archive either (%v)", err)
			}
			return fmt.Errorf("tar archive: bad entry after %d files: %v", n, err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			if trap.err != nil {
				return s2Error(trap.err, raw)
			}
			return fmt.Errorf("tar archive: entry %s: %v", h.Name, err)
		}
		n++
	}
}

// unwrapPath drops the *PathError wrapper (the caller names the file).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func trimPath(err error, path string) string {
	return strings.TrimPrefix(err.Error(), path+": ")
}
