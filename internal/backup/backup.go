package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jsm.go"
	"github.com/nats-io/nats.go"
)

// Phase says where a stream's backup or restore is.
type Phase int

// Phases of Progress.
const (
	PhaseStart Phase = iota
	PhaseData
	PhaseDone
	PhaseFailed
)

// Progress reports one stream's backup or restore.
type Progress struct {
	Stream string
	Phase  Phase
	// Bytes done so far: uncompressed archive bytes received for a backup,
	// compressed bytes sent for a restore. Total is what is expected (for a
	// backup the stream's stored bytes, so only roughly the same measure).
	Bytes, Total uint64
	Elapsed      time.Duration
	// Entry is set when a backup of the stream is done, Result when a
	// restore is.
	Entry  *StreamEntry
	Result *RestoreResult
	Err    error
}

// Options of Run.
type Options struct {
	// Dir is the backup directory; it is created and must not hold a
	// backup already.
	Dir string
	// Streams to back up (bucket or stream names); empty means DefaultStreams.
	Streams []string
	// ZesterVersion goes into the manifest.
	ZesterVersion string
	// Progress, when set, is called (never concurrently) as streams go.
	Progress func(Progress)
	// IdleTimeout aborts a stream's snapshot when the server sends nothing
	// for this long (default 30s).
	IdleTimeout time.Duration
	// APITimeout is the timeout of each JetStream API request (default 10s).
	APITimeout time.Duration
}

// Run backs up streams into opts.Dir, one subdirectory per stream in the
// `nats stream backup` layout, and writes manifest.json. A stream that fails
// is recorded in the manifest's Failed list and the others are still backed
// up; the error then names every failure.
func Run(ctx context.Context, nc *nats.Conn, opts Options) (*Manifest, error) {
	if opts.Dir == "" {
		return nil, errors.New("backup: no directory")
	}
	streams := StreamNames(opts.Streams)
	if len(streams) == 0 {
		streams = DefaultStreams
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.APITimeout <= 0 {
		opts.APITimeout = 10 * time.Second
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, ManifestFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a backup (%s); choose another directory", opts.Dir, ManifestFile)
	}
	for _, s := range streams {
		if _, err := os.Stat(filepath.Join(opts.Dir, s, MetaFile)); err == nil {
			return nil, fmt.Errorf("%s already holds a backup of %s; choose another directory", opts.Dir, s)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	mgr, err := jsm.New(nc, jsm.WithTimeout(opts.APITimeout))
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Format:        ManifestFormat,
		ZesterVersion: opts.ZesterVersion,
		Created:       time.Now().UTC(),
		ServerVersion: nc.ConnectedServerVersion(),
		Server:        nc.ConnectedServerName(),
	}
	report := serialProgress(opts.Progress)
	for _, name := range streams {
		start := time.Now()
		entry, err := backupStream(ctx, mgr, name, opts, report)
		if err != nil {
			m.Failed = append(m.Failed, Failure{Stream: name, Error: err.Error()})
			report(Progress{Stream: name, Phase: PhaseFailed, Err: err, Elapsed: time.Since(start)})
			continue
		}
		m.Streams = append(m.Streams, *entry)
		report(Progress{Stream: name, Phase: PhaseDone, Entry: entry, Bytes: entry.Bytes, Total: entry.Bytes, Elapsed: time.Since(start)})
	}
	if err := writeManifest(opts.Dir, m); err != nil {
		return m, fmt.Errorf("write %s: %w", filepath.Join(opts.Dir, ManifestFile), err)
	}
	syncDir(opts.Dir)
	if len(m.Failed) > 0 {
		var b strings.Builder
		for i, f := range m.Failed {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(f.Stream + ": " + f.Error)
		}
		return m, fmt.Errorf("%d of %d streams not backed up: %s", len(m.Failed), len(streams), b.String())
	}
	return m, nil
}

var errIdle = errors.New("idle")

func backupStream(ctx context.Context, mgr *jsm.Manager, name string, opts Options, report func(Progress)) (*StreamEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := mgr.LoadStream(name)
	if err != nil {
		if jsm.IsNatsError(err, 10059) {
			return nil, fmt.Errorf("stream %s not found", name)
		}
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	sdir := filepath.Join(opts.Dir, name)
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(opts.IdleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	start := time.Now()
	var chunks uint32
	var started bool
	cb := func(p jsm.SnapshotProgress) {
		if c := p.ChunksReceived(); c != chunks {
			chunks = c
			idle.Reset(opts.IdleTimeout)
		}
		ph := PhaseData
		if !started {
			ph, started = PhaseStart, true
		}
		report(Progress{Stream: name, Phase: ph, Bytes: p.UncompressedBytesReceived(), Total: p.BytesExpected(), Elapsed: time.Since(start)})
	}
	// jsm calls cb from two goroutines; serialize it.
	var cbMu sync.Mutex
	_, err = st.SnapshotToDirectory(sctx, sdir,
		jsm.SnapshotChunkSize(128<<10),
		jsm.SnapshotNotify(func(p jsm.SnapshotProgress) { cbMu.Lock(); defer cbMu.Unlock(); cb(p) }))
	if err != nil {
		if errors.Is(context.Cause(sctx), errIdle) {
			return nil, fmt.Errorf("snapshot of %s: no data from the server for %s", name, opts.IdleTimeout)
		}
		if errors.Is(err, jsm.ErrMemoryStreamNotSupported) {
			return nil, fmt.Errorf("snapshot of %s: memory storage streams cannot be backed up", name)
		}
		return nil, fmt.Errorf("snapshot of %s: %w", name, err)
	}
	for _, f := range []string{MetaFile, DataFile, LegacyDataFile} {
		// jsm.go creates the files with the umask's mode; backups hold
		// secrets and facts, so they are the owner's only.
		if err := os.Chmod(filepath.Join(sdir, f), 0o600); err == nil {
			syncFile(filepath.Join(sdir, f))
		}
	}
	syncDir(sdir)
	// Read back what was written: the manifest then records what is on
	// disk, and a bad snapshot is found now rather than at restore time.
	v := &verifier{now: time.Now()}
	r, ok := v.inspect(sdir)
	if !ok {
		return nil, fmt.Errorf("snapshot of %s is not readable: %w", name, &VerifyError{Dir: opts.Dir, Problems: v.problems})
	}
	rel, err := filepath.Rel(opts.Dir, sdir)
	if err != nil {
		rel = name
	}
	return &StreamEntry{
		Name:        r.Name,
		Dir:         rel,
		StreamStats: r.StreamStats,
		Archive:     r.Archive,
		Files:       r.Files,
	}, nil
}

// serialProgress calls f (when set) with one report at a time, whichever
// goroutine of a stream reports: a caller's callback need not lock.
func serialProgress(f func(Progress)) func(Progress) {
	var mu sync.Mutex
	return func(p Progress) {
		if f != nil {
			mu.Lock()
			defer mu.Unlock()
			f(p)
		}
	}
}

func syncFile(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	_ = f.Sync()
	f.Close()
}

func syncDir(dir string) { syncFile(dir) }
