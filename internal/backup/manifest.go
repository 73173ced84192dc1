package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/names"
)

// File names inside a backup directory. The data and meta file names are
// jsm.go's (what `nats stream backup` writes).
const (
	ManifestFile   = "manifest.json"
	MetaFile       = "backup.json"
	DataFile       = "stream.arc.s2" // NATSARC1 archive, servers 2.15 and newer
	LegacyDataFile = "stream.tar.s2" // tar archive, older servers
)

// ManifestFormat is the version of manifest.json's layout.
const ManifestFormat = 1

// Archive formats found inside the s2 stream.
const (
	FormatNATSARC1 = "NATSARC1"
	FormatTar      = "tar"
)

// KVStream is the stream that holds KV bucket b.
func KVStream(bucket string) string { return names.KVStream(bucket) }

// DefaultStreams are the streams of the seed's backup script, in its order:
// every file-backed bucket with data worth keeping, and job-events. The
// master-heartbeat and enroll-challenges buckets are ephemeral (and the
// latter is memory storage, which a 2.15 server does not snapshot through
// jsm.go v0.5.0); state-tree is a cache the masters rebuild from
// states_dir at start.
var DefaultStreams = []string{
	KVStream(names.BucketFacts),
	KVStream(names.BucketSettingsFiles),
	KVStream(names.BucketSecrets),
	KVStream(names.BucketBasket),
	KVStream(names.BucketJobs),
	KVStream(names.BucketJobReturns),
	KVStream(names.BucketEnrollments),
	names.StreamJobEvents,
}

var knownBuckets = []string{
	names.BucketFacts, names.BucketSettingsFiles, names.BucketSecrets, names.BucketBasket,
	names.BucketJobs, names.BucketJobReturns, names.BucketMasterHeartbeat, names.BucketEnrollments,
	names.BucketEnrollChallenges, names.BucketStateTree,
}

// StreamName turns what an operator typed into a stream name: a Zester
// bucket name ("facts") becomes its stream ("KV_facts"); stream names
// ("KV_facts", "job-events", anything else) stay as they are.
func StreamName(s string) string {
	if slices.Contains(knownBuckets, s) {
		return KVStream(s)
	}
	return s
}

// StreamNames applies StreamName to a comma separated list (as --streams
// takes it) and drops empty items and duplicates.
func StreamNames(list []string) []string {
	var out []string
	for _, item := range list {
		for s := range strings.SplitSeq(item, ",") {
			s = StreamName(strings.TrimSpace(s))
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Manifest is manifest.json: what a zester backup holds.
type Manifest struct {
	Format        int           `json:"format"`
	ZesterVersion string        `json:"zester_version"`
	Created       time.Time     `json:"created"`
	ServerVersion string        `json:"server_version,omitempty"`
	Server        string        `json:"server,omitempty"`
	Streams       []StreamEntry `json:"streams"`
	// Failed lists streams that were asked for but not backed up.
	Failed []Failure `json:"failed,omitempty"`
}

// StreamEntry is one stream of a manifest.
type StreamEntry struct {
	Name string `json:"name"`
	// Dir is the stream's subdirectory, relative to the backup directory.
	Dir string `json:"dir"`
	StreamStats
	Archive string      `json:"archive_format"`
	Files   []FileEntry `json:"files"`
}

// StreamStats are the counts of one stream backup, in the manifest and in
// what Verify reports. Embedded, its fields stand in the JSON of both at
// the place of the embedding.
type StreamStats struct {
	// Messages is the number of messages in the archive (what a restore
	// brings back); Bytes, FirstSeq, LastSeq and Subjects are the stream's
	// state when the snapshot started, from backup.json.
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Subjects  int    `json:"subjects"`
	Consumers int    `json:"consumers,omitempty"`
}

// FileEntry is one file of a stream backup.
type FileEntry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Failure is a stream that could not be backed up.
type Failure struct {
	Stream string `json:"stream"`
	Error  string `json:"error"`
}

// Stream finds the entry of stream name.
func (m *Manifest) Stream(name string) *StreamEntry {
	for i := range m.Streams {
		if m.Streams[i].Name == name {
			return &m.Streams[i]
		}
	}
	return nil
}

// ReadManifest reads dir/manifest.json. It returns os.ErrNotExist (wrapped)
// when the directory has none.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %w", path, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: format %d, this zester reads format %d", path, m.Format, ManifestFormat)
	}
	return &m, nil
}

// writeManifest writes dir/manifest.json atomically.
func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	path := filepath.Join(dir, ManifestFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
