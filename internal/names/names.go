// Package names is the one place that builds Zester's NATS subjects, KV bucket
// names and KV keys. Every other package calls it, so that a rename is one edit
// and per-peel permissions can be derived from the same functions.
//
// Peel ids are often FQDNs. A KV key may hold dots (the key then spans several
// subject tokens, which is fine when the id is the last part of the key), but
// where an id must be exactly one subject token it is carried as Token(id):
// every '.' becomes '~'. Valid ids never contain '~', so the mapping is
// reversible and collision free.
package names

import (
	"fmt"
	"strconv"
	"strings"
)

// KVSubjectPrefix is the subject prefix of the keys of a KV bucket.
func KVSubjectPrefix(bucket string) string { return "$KV." + bucket + "." }

// KVStream is the JetStream stream that holds KV bucket b.
func KVStream(bucket string) string { return "KV_" + bucket }

// KV bucket names, fixed by the seed document.
const (
	BucketFacts            = "facts"
	BucketSettingsFiles    = "settings-files"
	BucketSecrets          = "secrets"
	BucketBasket           = "basket"
	BucketJobs             = "jobs"
	BucketJobReturns       = "job-returns"
	BucketMasterHeartbeat  = "master-heartbeat"
	BucketEnrollments      = "enrollments"
	BucketEnrollChallenges = "enroll-challenges"
	// BucketStateTree is a cache of the masters' states_dir, rebuilt from
	// it (docs/states.md): not in the seed's table, and not backed up.
	BucketStateTree = "state-tree"

	// StreamJobEvents is the job lifecycle audit log.
	StreamJobEvents = "job-events"
)

// Subject roots.
const (
	Root = "zester"
	// SubjectJobEventsAll is the subject filter of the job-events stream.
	SubjectJobEventsAll = Root + ".events.>"
	// ServiceName is the micro service name of the master API.
	ServiceName = "zester-master"
	// APIPrefix is the subject prefix of the master's micro endpoints.
	APIPrefix = Root + ".api"
)

// The header nats.go's KV puts on a delete or purge marker, and its values
// (nats.go keeps its own constants unexported). An expired key's marker
// carries jetstream.MarkerReasonHeader instead.
const (
	HeaderKVOperation = "KV-Operation"
	KVOpDelete        = "DEL"
	KVOpPurge         = "PURGE"
)

// MaxIDLen is the longest peel or master id accepted.
const MaxIDLen = 253

// ValidateID checks a peel or master id: 1–253 characters of letters, digits,
// '.', '-' and '_', starting and ending with a letter or digit, with no empty
// dot-separated label. The error names what is wrong.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("invalid id: empty")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("invalid id %.40q…: %d characters, at most %d", id, len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_':
		case c == '.':
			if i == 0 || i == len(id)-1 || id[i-1] == '.' {
				return fmt.Errorf("invalid id %q: empty label at column %d", id, i+1)
			}
		default:
			return fmt.Errorf("invalid id %q: character %q at column %d is not allowed (letters, digits, '.', '-', '_')", id, c, i+1)
		}
	}
	if !isAlnum(id[0]) || !isAlnum(id[len(id)-1]) {
		return fmt.Errorf("invalid id %q: must start and end with a letter or digit", id)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Token carries a valid id as exactly one subject token.
func Token(id string) string { return strings.ReplaceAll(id, ".", "~") }

// FromToken reverses Token.
func FromToken(tok string) string { return strings.ReplaceAll(tok, "~", ".") }

// JobSubject is where jobs for one partition are published; peels of that
// partition subscribe to it.
func JobSubject(partition int) string { return Root + ".job." + strconv.Itoa(partition) }

// ControlSubject carries control messages to the peels of one partition
// (wire.Control), e.g. "publish your facts again".
func ControlSubject(partition int) string { return Root + ".ctl." + strconv.Itoa(partition) }

// PeelInbox is a subject only one peel subscribes to (direct requests). A
// peel answers its instance there, so that a second process started with the
// same id finds the first and refuses to run.
func PeelInbox(id string) string { return Root + ".peel." + Token(id) + ".in" }

// beatPrefix is the root of the presence beats.
const beatPrefix = Root + ".beat."

// BeatSubject is where peel id of partition p publishes its presence beats:
// zester.beat.<p>.<Token(id)>. The partition comes first so that a master
// subscribes only to the partitions it owns (BeatFilter) without a server
// mapping; the id is the last token so that a NATS permission can confine a
// peel to its own beats (zester.beat.*.<token>).
func BeatSubject(partition int, id string) string {
	return beatPrefix + strconv.Itoa(partition) + "." + Token(id)
}

// BeatFilter matches the beats of every peel of partition p.
func BeatFilter(partition int) string { return beatPrefix + strconv.Itoa(partition) + ".*" }

// ParseBeatSubject splits a BeatSubject.
func ParseBeatSubject(subj string) (partition int, id string, ok bool) {
	rest, found := strings.CutPrefix(subj, beatPrefix)
	if !found {
		return 0, "", false
	}
	ps, tok, found := strings.Cut(rest, ".")
	if !found || tok == "" || strings.Contains(tok, ".") {
		return 0, "", false
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 {
		return 0, "", false
	}
	return p, FromToken(tok), true
}

// PeelInboxPrefix is the reply-inbox prefix of one peel's connection.
func PeelInboxPrefix(id string) string { return "_INBOX." + Token(id) }

// PeelEventSubject is where a peel publishes events that are not job returns.
func PeelEventSubject(id, kind string) string {
	return Root + ".events.peel." + Token(id) + "." + kind
}

// JobEventSubject is the subject of one job lifecycle event in job-events.
func JobEventSubject(jid, kind string) string { return Root + ".events.job." + jid + "." + kind }

// JobEventFilter selects every event of one job.
func JobEventFilter(jid string) string { return Root + ".events.job." + jid + ".>" }

// APISubject names one endpoint of the master API.
func APISubject(endpoint string) string { return APIPrefix + "." + endpoint }

// Endpoints of the master API: APISubject(endpoint) is the subject, and the
// micro endpoint is named endpoint with '.' → '-'.
const (
	// EndpointInfo answers the deployment's facts (partition count,
	// masters) to anyone: peels learn their partition count from it.
	EndpointInfo = "info"
	// EndpointJobRun accepts a job.
	EndpointJobRun = "job.run"
	// EndpointPresence is answered by every master (no queue group) for
	// the partitions it owns.
	EndpointPresence = "presence"
)

// FactsKey is the facts bucket key of a peel: its plain id, as the seed's
// `nats kv del facts <peel-id>` expects.
func FactsKey(id string) string { return id }

// JobKey is the jobs bucket key of a job's main record.
func JobKey(jid string) string { return jid }

// JobPartKey is the jobs bucket key of the part of a job that one partition
// owns: the expected peels of that partition and, once finished, its outcome.
func JobPartKey(jid string, partition int) string { return jid + ".p" + strconv.Itoa(partition) }

// JobPartFilter matches every part key of a job.
func JobPartFilter(jid string) string { return jid + ".*" }

// ParseJobKey tells a main key JobKey(jid) from a part key
// JobPartKey(jid, part); ok is false for a key of neither shape.
func ParseJobKey(key string) (jid string, part int, isPart bool, ok bool) {
	jid, rest, found := strings.Cut(key, ".")
	if !found {
		return key, 0, false, key != ""
	}
	num, found := strings.CutPrefix(rest, "p")
	n, err := strconv.Atoi(num)
	if !found || err != nil || jid == "" || n < 0 || strconv.Itoa(n) != num {
		return "", 0, false, false
	}
	return jid, n, true, true
}

// ReturnKey is the job-returns key of one peel's return to one job. The job id
// comes first so that one job's returns are watched with ReturnFilter; the peel
// id is last, so its dots need no escaping.
func ReturnKey(jid, peel string) string { return jid + "." + peel }

// ReturnFilter matches every return of one job.
func ReturnFilter(jid string) string { return jid + ".>" }

// ReturnSubjectPrefix is the subject prefix of job-returns keys.
var ReturnSubjectPrefix = KVSubjectPrefix(BucketJobReturns)

// ParseReturnSubject splits a `$KV.job-returns.<jid>.<peel>` subject.
func ParseReturnSubject(subj string) (jid, peel string, ok bool) {
	rest, found := strings.CutPrefix(subj, ReturnSubjectPrefix)
	if !found {
		return "", "", false
	}
	jid, peel, ok = strings.Cut(rest, ".")
	return jid, peel, ok && jid != "" && peel != ""
}

// ParseReturnKey splits a `<jid>.<peel>` key.
func ParseReturnKey(key string) (jid, peel string, ok bool) {
	jid, peel, ok = strings.Cut(key, ".")
	return jid, peel, ok && jid != "" && peel != ""
}

// HeartbeatKey is a master's key in master-heartbeat.
func HeartbeatKey(masterID string) string { return masterID }

// Peel→master traffic split by partition: peels publish on
// zester.in.<Token(id)>.<kind…>; the servers' subject mapping rewrites that
// to zester.inp.<partition>.<Token(id)>.<kind…>, with the same hash that
// package shard computes client-side.
const (
	SubjectInPrefix            = Root + ".in"
	SubjectInPartitionedPrefix = Root + ".inp"
)

// DefaultPartitions is the number of partitions a fleet is split into unless
// configured otherwise (master.yaml and peel.yaml `partitions`, the
// generated servers' mapping, the account JWT). It is the unit of ownership
// between masters, so it should be several times the largest expected
// number of masters.
const DefaultPartitions = 64

// PartitionMapping is the nats-server subject mapping (source, destination)
// for n partitions:
//
//	src: zester.in.*.>
//	dst: zester.inp.{{partition(n,1)}}.{{wildcard(1)}}.>
//
// Installed in the account that peels publish in (nats-server config
// `mappings { "zester.in.*.>": "zester.inp.{{partition(64,1)}}.{{wildcard(1)}}.>" }`,
// the account JWT, or (*server.Account).AddMapping), it rewrites every
// shard.InSubject(id, kind) to shard.PartitionedSubject(shard.Partition(id,
// n), id, kind). Subjects with no token after the peel token do not match
// and are not mapped. n is not checked here: the callers validate their
// partition count (1 to math.MaxInt32, the server's bound).
func PartitionMapping(n int) (src, dst string) {
	return SubjectInPrefix + ".*.>", SubjectInPartitionedPrefix + ".{{partition(" + strconv.Itoa(n) + ",1)}}.{{wildcard(1)}}.>"
}

// WatchConsumerPrefix starts the name of every consumer a Zester watch
// creates (`nats consumer ls` shows whose they are).
const WatchConsumerPrefix = "zester_watch_"

// WatchConsumer is the name of one consumer of the watch called watch; unique
// is fresh for every consumer (a recreated watch never reuses a name, so a
// create is never answered by the placement of an earlier one). Characters a
// consumer name cannot hold ('.', '*', '>', whitespace, path separators)
// become '_'.
func WatchConsumer(watch, unique string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			return r
		}
		return '_'
	}, watch)
	return WatchConsumerPrefix + clean + "_" + unique
}

// StateTreeVersionKey is the state-tree key naming the current tree
// version, written after that version's manifest.
const StateTreeVersionKey = "version"

// StateTreeManifestKey is the state-tree key of one tree version's
// manifest (path → content digest).
func StateTreeManifestKey(version string) string { return "manifest." + version }

// StateTreeFileKey is the state-tree key of one file's content, by the hex
// SHA-256 of that content.
func StateTreeFileKey(digest string) string { return "file." + digest }

// StateTreePackKey is the state-tree key of one tree version's pack: every
// content of that version in one zstd-compressed value, written before the
// version's manifest (which names the pack's digest).
func StateTreePackKey(version string) string { return "pack." + version }
