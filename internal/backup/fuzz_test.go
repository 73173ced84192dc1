package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/jsm.go/api"
	"github.com/nats-io/nats-server/v2/server/archive"
)

// fuzzNow is the verification time of the fuzz targets: the seed messages
// are stamped a little before it, so that max age and Nats-TTL expiries fall
// inside the look-ahead.
var fuzzNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// natsarc1 is an uncompressed NATSARC1 archive of n messages (a Nats-TTL
// header on every other one), with or without the end marker.
func natsarc1(tb testing.TB, n int, end bool) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf)
	put := func(h *archive.Header, b []byte) {
		if err := w.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	state := api.StreamState{Msgs: uint64(n), FirstSeq: 1, LastSeq: uint64(n)}
	sj, _ := json.Marshal(state)
	put(&archive.Header{Name: "state.json", PayloadSize: int64(len(sj))}, sj)
	put(&archive.Header{Name: "consumers/c1/meta.inf", PayloadSize: 2}, []byte("{}"))
	for i := 1; i <= n; i++ {
		hdr := ""
		if i%2 == 0 {
			hdr = "NATS/1.0\r\nNats-TTL: 30m\r\n\r\n"
		}
		data := "payload"
		put(&archive.Header{Name: "zester.x", Sequence: uint64(i), Timestamp: fuzzNow.Add(-time.Hour).UnixNano(),
			HeaderSize: int64(len(hdr)), PayloadSize: int64(len(data))}, []byte(hdr+data))
	}
	if end {
		put(&archive.Header{}, nil)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func tarArchive(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "msgs.1.blk", Mode: 0o600, Size: 3}); err != nil {
		tb.Fatal(err)
	}
	tw.Write([]byte("abc"))
	tw.Close()
	return buf.Bytes()
}

// checkWalk walks the data file holding file and checks what holds for
// every file, readable or not: the file entry describes the whole file
// (restore compares sizes and checksums even of a broken archive), a failure
// says something, and a success is consistent with the archive's state.
func checkWalk(t *testing.T, file []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), DataFile)
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	meta := &api.JSApiStreamRestoreRequest{Config: api.StreamConfig{Name: "S", MaxAge: 2 * time.Hour}}
	w, fe, err := walkArchive(path, meta, fuzzNow)
	sum := sha256.Sum256(file)
	if fe.Name != DataFile || fe.Size != int64(len(file)) || fe.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("file entry %+v for %d bytes (err %v)", fe, len(file), err)
	}
	if err != nil {
		if err.Error() == "" {
			t.Fatal("empty error")
		}
		return
	}
	switch w.format {
	case FormatNATSARC1:
		if w.messages > w.state.Msgs {
			t.Fatalf("%d messages accepted, state.json says %d", w.messages, w.state.Msgs)
		}
		if uint64(len(w.expiries)) > w.messages {
			t.Fatalf("%d expiries for %d messages", len(w.expiries), w.messages)
		}
		horizon := fuzzNow.Add(24 * time.Hour).UnixNano()
		for _, e := range w.expiries {
			if e > horizon {
				t.Fatalf("expiry %d beyond the look-ahead %d", e, horizon)
			}
		}
	case FormatTar:
		if w.messages != 0 || w.consumers != 0 {
			t.Fatalf("tar archive counted %d messages, %d consumers", w.messages, w.consumers)
		}
	default:
		t.Fatalf("walk succeeded with format %q", w.format)
	}
}

// FuzzWalkArchive feeds archive contents (NATSARC1 or tar, before s2
// compression) to Verify's archive walk: a backup directory is whatever
// is on the disk it is restored from.
func FuzzWalkArchive(f *testing.F) {
	f.Add(natsarc1(f, 3, true))
	f.Add(natsarc1(f, 3, false))
	f.Add(natsarc1(f, 0, true))
	f.Add(tarArchive(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, content []byte) {
		var buf bytes.Buffer
		enc := s2.NewWriter(&buf)
		if _, err := enc.Write(content); err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		checkWalk(t, buf.Bytes())
	})
}

// FuzzWalkArchiveFile feeds whole data files to the walk, so that the s2
// framing (block checksums, truncation) is damaged too.
func FuzzWalkArchiveFile(f *testing.F) {
	for _, content := range [][]byte{natsarc1(f, 2, true), tarArchive(f)} {
		var buf bytes.Buffer
		enc := s2.NewWriter(&buf)
		enc.Write(content)
		enc.Close()
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()/2])
		f.Add(s2.EncodeSnappy(nil, content))
	}
	f.Add([]byte("not s2 at all"))
	f.Fuzz(func(t *testing.T, file []byte) {
		checkWalk(t, file)
	})
}

// TestWalkArchive_FuzzSeeds: the fuzz targets start from archives the walk
// accepts, so that mutations explore past the first entry.
func TestWalkArchive_FuzzSeeds(t *testing.T) {
	for _, tc := range []struct {
		content  []byte
		format   string
		messages uint64
	}{{natsarc1(t, 3, true), FormatNATSARC1, 3}, {natsarc1(t, 0, true), FormatNATSARC1, 0}, {tarArchive(t), FormatTar, 0}} {
		path := filepath.Join(t.TempDir(), DataFile)
		var buf bytes.Buffer
		enc := s2.NewWriter(&buf)
		enc.Write(tc.content)
		enc.Close()
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		meta := &api.JSApiStreamRestoreRequest{Config: api.StreamConfig{Name: "S", MaxAge: 2 * time.Hour}}
		w, _, err := walkArchive(path, meta, fuzzNow)
		if err != nil || w.format != tc.format || w.messages != tc.messages {
			t.Fatalf("%s seed: %+v %v", tc.format, w, err)
		}
		if tc.messages == 3 && (w.consumers != 1 || len(w.expiries) != 3) {
			t.Errorf("seed: %d consumers, expiries %v", w.consumers, w.expiries)
		}
	}
}
