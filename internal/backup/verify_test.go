package backup

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/jsm.go/api"
	"github.com/nats-io/nats-server/v2/server/archive"
)

type testMsg struct {
	seq  uint64
	subj string
	hdr  string
	data string
	ts   time.Time
}

// writeStreamBackup writes dir/backup.json and dir/stream.arc.s2 the way
// a 2.15 server and jsm.go do; end adds the end marker.
func writeStreamBackup(t *testing.T, dir, name string, maxAge time.Duration, msgs []testMsg, end bool) {
	t.Helper()
	state := api.StreamState{}
	if len(msgs) > 0 {
		state = api.StreamState{Msgs: uint64(len(msgs)), FirstSeq: msgs[0].seq, LastSeq: msgs[len(msgs)-1].seq, Bytes: 100}
	}
	meta := api.JSApiStreamRestoreRequest{Config: api.StreamConfig{Name: name, MaxAge: maxAge, Storage: api.FileStorage}, State: state}
	mj, _ := json.MarshalIndent(meta, "", "  ")
	var buf bytes.Buffer
	enc := s2.NewWriter(&buf)
	w := archive.NewWriter(enc)
	sj, _ := json.Marshal(state)
	put := func(h *archive.Header, b []byte) {
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 {
			if _, err := w.Write(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(&archive.Header{Name: "state.json", PayloadSize: int64(len(sj))}, sj)
	for _, m := range msgs {
		put(&archive.Header{Name: m.subj, Sequence: m.seq, Timestamp: m.ts.UnixNano(), HeaderSize: int64(len(m.hdr)), PayloadSize: int64(len(m.data))}, []byte(m.hdr+m.data))
	}
	if end {
		put(&archive.Header{}, nil)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MetaFile), mj, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DataFile), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func msgs(n int, ts time.Time) []testMsg {
	var out []testMsg
	for i := range n {
		out = append(out, testMsg{seq: uint64(i + 1), subj: "$KV.facts.k" + string(rune('a'+i)), data: "v", ts: ts})
	}
	return out
}

func problems(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *VerifyError, got %v", err)
	}
	return ve.Problems
}

func wantProblem(t *testing.T, err error, file, what string) {
	t.Helper()
	for _, p := range problems(t, err) {
		if p.File == file && strings.Contains(p.What, what) {
			return
		}
	}
	t.Errorf("want a problem with %s: %q; got %v", file, what, err)
}

func TestVerify_NATSARC1(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	writeStreamBackup(t, filepath.Join(dir, "facts"), "KV_facts", 0, msgs(3, now), true)
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Streams) != 1 || rep.Manifest != nil {
		t.Fatalf("report %+v", rep)
	}
	s := rep.Streams[0]
	if s.Name != "KV_facts" || s.Messages != 3 || s.Archive != FormatNATSARC1 || s.LastSeq != 3 || len(s.Files) != 2 {
		t.Errorf("stream %+v", s)
	}
	// One stream's directory on its own.
	if rep, err := Verify(filepath.Join(dir, "facts"), []string{"facts"}); err != nil || len(rep.Streams) != 1 {
		t.Errorf("single stream dir: %v", err)
	}
}

func TestVerify_NoEndMarker(t *testing.T) {
	// The s2 framing ends cleanly, only the archive's end marker is missing:
	// what a backup cut at a block boundary looks like.
	dir := t.TempDir()
	writeStreamBackup(t, filepath.Join(dir, "facts"), "KV_facts", 0, msgs(3, time.Now()), false)
	_, err := Verify(dir, nil)
	wantProblem(t, err, filepath.Join(dir, "facts", DataFile), "without the end marker")
}

func TestVerify_Damaged(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		damage func(t *testing.T, sdir string)
		file   string
		want   string
	}{
		{"empty backup.json", func(t *testing.T, sdir string) {
			os.WriteFile(filepath.Join(sdir, MetaFile), nil, 0o600)
		}, MetaFile, "did not finish"},
		{"backup.json not JSON", func(t *testing.T, sdir string) {
			os.WriteFile(filepath.Join(sdir, MetaFile), []byte("{"), 0o600)
		}, MetaFile, "not valid JSON"},
		{"backup.json without a name", func(t *testing.T, sdir string) {
			os.WriteFile(filepath.Join(sdir, MetaFile), []byte(`{"config":{}}`), 0o600)
		}, MetaFile, "names no stream"},
		{"both archives", func(t *testing.T, sdir string) {
			b, _ := os.ReadFile(filepath.Join(sdir, DataFile))
			os.WriteFile(filepath.Join(sdir, LegacyDataFile), b, 0o600)
		}, "", "holds both"},
		{"no archive", func(t *testing.T, sdir string) {
			os.Remove(filepath.Join(sdir, DataFile))
		}, DataFile, "missing"},
		{"truncated inside a block", func(t *testing.T, sdir string) {
			p := filepath.Join(sdir, DataFile)
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-3)
		}, DataFile, "truncated"},
		{"bit flip", func(t *testing.T, sdir string) {
			p := filepath.Join(sdir, DataFile)
			b, _ := os.ReadFile(p)
			b[len(b)-2] ^= 1
			os.WriteFile(p, b, 0o600)
		}, DataFile, "corrupt"},
		{"garbage after the archive", func(t *testing.T, sdir string) {
			p := filepath.Join(sdir, DataFile)
			b, _ := os.ReadFile(p)
			var extra bytes.Buffer
			enc := s2.NewWriter(&extra)
			enc.Write([]byte("more"))
			enc.Close()
			os.WriteFile(p, append(b, extra.Bytes()...), 0o600)
		}, DataFile, "after the end marker"},
		{"not s2", func(t *testing.T, sdir string) {
			os.WriteFile(filepath.Join(sdir, DataFile), []byte("this is not s2 at all"), 0o600)
		}, DataFile, "corrupt"},
		{"other snapshot's backup.json", func(t *testing.T, sdir string) {
			other := t.TempDir()
			writeStreamBackup(t, other, "KV_facts", 0, msgs(5, now), true)
			b, _ := os.ReadFile(filepath.Join(other, MetaFile))
			os.WriteFile(filepath.Join(sdir, MetaFile), b, 0o600)
		}, DataFile, "belongs to another snapshot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			sdir := filepath.Join(dir, "KV_facts")
			writeStreamBackup(t, sdir, "KV_facts", 0, msgs(3, now), true)
			c.damage(t, sdir)
			_, err := Verify(dir, nil)
			file := sdir
			if c.file != "" {
				file = filepath.Join(sdir, c.file)
			}
			wantProblem(t, err, file, c.want)
		})
	}
}

func TestVerify_OutOfOrder(t *testing.T) {
	dir := t.TempDir()
	m := msgs(3, time.Now())
	m[2].seq = 2
	writeStreamBackup(t, filepath.Join(dir, "x"), "KV_facts", 0, m, true)
	_, err := Verify(dir, nil)
	wantProblem(t, err, filepath.Join(dir, "x", DataFile), "out of order")
}

func TestVerify_Tar(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "old")
	os.MkdirAll(sdir, 0o700)
	var buf bytes.Buffer
	enc := s2.NewWriter(&buf)
	tw := tar.NewWriter(enc)
	for _, f := range []string{"meta.inf", "msgs/1.blk"} {
		tw.WriteHeader(&tar.Header{Name: f, Mode: 0o600, Size: 4})
		tw.Write([]byte("data"))
	}
	tw.Close()
	enc.Close()
	os.WriteFile(filepath.Join(sdir, LegacyDataFile), buf.Bytes(), 0o600)
	os.WriteFile(filepath.Join(sdir, MetaFile), []byte(`{"config":{"name":"job-events"},"state":{"messages":7,"first_seq":1,"last_seq":7}}`), 0o600)
	rep, err := Verify(dir, []string{"job-events"})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Streams[0]; s.Archive != FormatTar || s.Messages != 7 || filepath.Base(s.DataFile) != LegacyDataFile {
		t.Errorf("legacy stream %+v", s)
	}
	// A truncated tar.
	os.WriteFile(filepath.Join(sdir, LegacyDataFile), s2.EncodeSnappy(nil, buf.Bytes()[:0]), 0o600)
	var half bytes.Buffer
	enc = s2.NewWriter(&half)
	tw = tar.NewWriter(enc)
	tw.WriteHeader(&tar.Header{Name: "msgs/1.blk", Mode: 0o600, Size: 4096})
	tw.Write(make([]byte, 100))
	enc.Close()
	os.WriteFile(filepath.Join(sdir, LegacyDataFile), half.Bytes(), 0o600)
	_, err = Verify(dir, nil)
	wantProblem(t, err, filepath.Join(sdir, LegacyDataFile), "tar archive")
}

func TestVerify_Expiries(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	m := msgs(4, now.Add(-2*time.Hour))           // older than the max age of 1h
	m[3].ts = now                                 // fresh
	m[2].ts = now                                 // fresh but with a 1s TTL, expired by now+2s
	m[2].hdr = "NATS/1.0\r\nNats-TTL: 1s\r\n\r\n" // header bytes as stored
	writeStreamBackup(t, filepath.Join(dir, "j"), "KV_jobs", time.Hour, m, true)
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Streams[0]
	if got := s.ExpiredBy(now); got != 2 {
		t.Errorf("expired by now: %d, want 2", got)
	}
	if got := s.ExpiredBy(now.Add(2 * time.Second)); got != 3 {
		t.Errorf("expired by now+2s: %d, want 3", got)
	}
}

func TestVerify_Manifest(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	writeStreamBackup(t, filepath.Join(dir, "KV_facts"), "KV_facts", 0, msgs(2, now), true)
	writeStreamBackup(t, filepath.Join(dir, "job-events"), "job-events", 0, msgs(3, now), true)
	m := &Manifest{Format: ManifestFormat, Created: now}
	for _, name := range []string{"KV_facts", "job-events"} {
		v := &verifier{now: now}
		r, ok := v.inspect(filepath.Join(dir, name))
		if !ok {
			t.Fatal(v.problems)
		}
		m.Streams = append(m.Streams, StreamEntry{Name: name, Dir: name, StreamStats: StreamStats{Messages: r.Messages}, Files: r.Files, Archive: r.Archive})
	}
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, []string{"nope"}); err == nil {
		t.Error("a stream not in the backup was accepted")
	} else {
		wantProblem(t, err, filepath.Join(dir, ManifestFile), "stream nope is not in this backup")
	}
	// Replace job-events by another valid backup: sizes or checksums differ.
	writeStreamBackup(t, t.TempDir(), "x", 0, nil, true)
	os.RemoveAll(filepath.Join(dir, "job-events"))
	writeStreamBackup(t, filepath.Join(dir, "job-events"), "job-events", 0, msgs(4, now), true)
	_, err := Verify(dir, nil)
	wantProblem(t, err, filepath.Join(dir, "job-events", DataFile), "manifest.json recorded")
	wantProblem(t, err, filepath.Join(dir, "job-events", DataFile), "holds 4 messages, manifest.json recorded 3")
	// Only KV_facts: fine.
	if _, err := Verify(dir, []string{"facts"}); err != nil {
		t.Errorf("KV_facts alone: %v", err)
	}
	// A manifest that escapes the directory.
	m.Streams[0].Dir = "../elsewhere"
	writeManifest(dir, m)
	_, err = Verify(dir, []string{"KV_facts"})
	wantProblem(t, err, filepath.Join(dir, ManifestFile), "not inside the backup")
	// Not JSON.
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte("{"), 0o600)
	_, err = Verify(dir, nil)
	wantProblem(t, err, filepath.Join(dir, ManifestFile), "not valid JSON")
}

func TestVerify_SeedLayout(t *testing.T) {
	dir := t.TempDir()
	writeStreamBackup(t, filepath.Join(dir, "facts"), "KV_facts", 0, msgs(2, time.Now()), true)
	os.WriteFile(filepath.Join(dir, "master.yaml"), []byte("id: m1\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "empty"), 0o700)
	if _, err := Verify(dir, nil); err != nil {
		t.Fatal(err)
	}
	// A stream the script failed to back up half way.
	half := filepath.Join(dir, "jobs")
	os.MkdirAll(half, 0o700)
	os.WriteFile(filepath.Join(half, DataFile), []byte("x"), 0o600)
	_, err := Verify(dir, nil)
	wantProblem(t, err, filepath.Join(half, MetaFile), "did not finish")
	// Two directories of the same stream.
	os.RemoveAll(half)
	writeStreamBackup(t, filepath.Join(dir, "KV_facts"), "KV_facts", 0, msgs(2, time.Now()), true)
	_, err = Verify(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "also backed up in") {
		t.Errorf("duplicate stream: %v", err)
	}
	// Nothing at all.
	_, err = Verify(t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "no stream backups") {
		t.Errorf("empty dir: %v", err)
	}
	_, err = Verify(filepath.Join(dir, "missing"), nil)
	if err == nil {
		t.Error("missing dir accepted")
	}
}

func TestStreamNames(t *testing.T) {
	got := StreamNames([]string{"facts,job-events", " KV_jobs ", "facts", "custom", ""})
	want := []string{"KV_facts", "job-events", "KV_jobs", "custom"}
	if !slices.Equal(got, want) {
		t.Errorf("StreamNames = %v, want %v", got, want)
	}
}

func TestMessageTTL(t *testing.T) {
	for hdr, want := range map[string]time.Duration{
		"":                                    0,
		"NATS/1.0\r\nNats-TTL: 5\r\n\r\n":     5 * time.Second,
		"NATS/1.0\r\nNats-TTL: 2m\r\n\r\n":    2 * time.Minute,
		"NATS/1.0\r\nNats-TTL: never\r\n\r\n": 0,
		"NATS/1.0\r\nOther: 5\r\n\r\n":        0,
	} {
		if got := messageTTL([]byte(hdr)); got != want {
			t.Errorf("messageTTL(%q) = %v, want %v", hdr, got, want)
		}
	}
}
