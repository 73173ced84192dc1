// Package layout is the seed document's JetStream layout: the KV buckets and
// the job-events stream with their TTL, history and storage. The master
// creates them from it (master.Bootstrap) and `zester check` verifies a
// deployment against it, so both read one table.
package layout

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
)

// Bucket is one KV bucket of the seed's table.
type Bucket struct {
	Name    string
	TTL     time.Duration
	History uint8
	Storage jetstream.StorageType
	// TunableTTL marks a TTL that is only the default at creation:
	// operators change it (master.yaml retention.*, `nats stream edit
	// --max-age`), so another value is not a fault.
	TunableTTL bool
}

// Buckets is the seed's table of KV buckets, in its order.
var Buckets = []Bucket{
	{Name: names.BucketFacts, History: 5, Storage: jetstream.FileStorage},
	{Name: names.BucketSettingsFiles, History: 3, Storage: jetstream.FileStorage},
	{Name: names.BucketSecrets, History: 3, Storage: jetstream.FileStorage},
	{Name: names.BucketBasket, History: 1, Storage: jetstream.FileStorage},
	{Name: names.BucketJobs, TTL: 7 * 24 * time.Hour, History: 10, Storage: jetstream.FileStorage, TunableTTL: true},
	{Name: names.BucketJobReturns, TTL: 7 * 24 * time.Hour, History: 1, Storage: jetstream.FileStorage, TunableTTL: true},
	{Name: names.BucketMasterHeartbeat, TTL: 15 * time.Second, History: 1, Storage: jetstream.FileStorage},
	{Name: names.BucketEnrollments, History: 10, Storage: jetstream.FileStorage},
	{Name: names.BucketEnrollChallenges, TTL: 5 * time.Minute, History: 1, Storage: jetstream.MemoryStorage},
	// Not in the seed: the masters' states_dir for the peels, a cache
	// rebuilt from it at every master's start (docs/states.md), so
	// backups skip it.
	{Name: names.BucketStateTree, History: 1, Storage: jetstream.FileStorage},
}

// JobEventsMaxAge is the default retention of the job-events stream
// (tunable like the jobs' TTL).
const JobEventsMaxAge = 7 * 24 * time.Hour

// JobEvents is the job lifecycle audit log stream.
var JobEvents = struct {
	Name      string
	Subjects  []string
	Retention jetstream.RetentionPolicy
	Storage   jetstream.StorageType
	MaxAge    time.Duration
}{names.StreamJobEvents, []string{names.SubjectJobEventsAll}, jetstream.LimitsPolicy, jetstream.FileStorage, JobEventsMaxAge}
