package shard

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/zester-io/zester/internal/names"
)

// DefaultPartitions is the number of partitions a fleet is split into unless
// configured otherwise (names.DefaultPartitions, which packages below shard
// such as topology read).
const DefaultPartitions = names.DefaultPartitions

// Subjects of peel→master traffic.
//
// A peel publishes on
//
//	zester.in.<peel-token>.<kind…>
//
// (see InSubject), and the server maps that, with names.PartitionMapping, to
//
//	zester.inp.<partition>.<peel-token>.<kind…>
//
// so that a master subscribes only to the partitions it owns
// (PartitionFilter). <peel-token> is names.Token(id): the id with '.' → '~',
// so it is exactly one token, and <partition> is Partition(id, n).
const (
	// SubjectInPrefix is the prefix of the subjects peels publish on.
	SubjectInPrefix = names.SubjectInPrefix
	// SubjectInPartitionedPrefix is the prefix of the subjects those messages
	// are mapped to, with the partition as the next token.
	SubjectInPartitionedPrefix = names.SubjectInPartitionedPrefix
)

// FNV-1a 32-bit parameters (hash/fnv's New32a, which nats-server uses).
const (
	fnv32Offset = 2166136261
	fnv32Prime  = 16777619
)

// Partition returns the partition, in [0, n), that peel id belongs to: the
// FNV-1a 32-bit hash of names.Token(id), modulo n.
//
// This is exactly what nats-server computes for the subject mapping
// `{{partition(n,1)}}` when the first wildcard token is names.Token(id): the
// server hashes the bytes of the named tokens, concatenated without
// separators (here just the one token), with hash/fnv's New32a and takes
// Sum32() % n. So a peel, a master and the server all agree on a peel's
// partition without talking to each other.
//
// n must be between 1 and math.MaxInt32 (the server's own bound); Partition
// panics otherwise, as that is a configuration error. It does not allocate.
func Partition(id string, n int) int {
	checkPartitions(n)
	h := uint32(fnv32Offset)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c == '.' { // names.Token, without building the string
			c = '~'
		}
		h ^= uint32(c)
		h *= fnv32Prime
	}
	return int(h % uint32(n))
}

func checkPartitions(n int) {
	if n < 1 || n > math.MaxInt32 {
		panic(fmt.Sprintf("shard: partition count %d out of range [1, %d]", n, math.MaxInt32))
	}
}

// Coordinator returns the partition whose owner coordinates job jid (loads
// it, dispatches the partitions nobody else owns, finishes it): the FNV-1a
// 32-bit hash of the jid, modulo n. Every master and the load generator
// compute it alike, so they agree on a job's coordinator without talking.
// It panics when n is out of range, like Partition.
func Coordinator(jid string, n int) int {
	checkPartitions(n)
	h := uint32(fnv32Offset)
	for i := 0; i < len(jid); i++ {
		h ^= uint32(jid[i])
		h *= fnv32Prime
	}
	return int(h % uint32(n))
}

// InSubject is the subject a peel publishes kind (one or more tokens, not
// empty) on: zester.in.<names.Token(id)>.<kind>.
func InSubject(id, kind string) string {
	return SubjectInPrefix + "." + names.Token(id) + "." + kind
}

// PartitionedSubject is the subject the server maps InSubject(id, kind) to:
// zester.inp.<partition>.<names.Token(id)>.<kind>.
func PartitionedSubject(partition int, id, kind string) string {
	return SubjectInPartitionedPrefix + "." + strconv.Itoa(partition) + "." + names.Token(id) + "." + kind
}

// PartitionFilter is the subscription filter for all peel→master traffic of
// one partition: zester.inp.<partition>.>.
func PartitionFilter(partition int) string {
	return SubjectInPartitionedPrefix + "." + strconv.Itoa(partition) + ".>"
}

// ParsePartitioned splits a zester.inp.<partition>.<peel-token>.<kind…>
// subject into the partition, the peel id (token reversed with
// names.FromToken) and the kind (the remaining tokens).
func ParsePartitioned(subj string) (partition int, id, kind string, ok bool) {
	rest, found := strings.CutPrefix(subj, SubjectInPartitionedPrefix+".")
	if !found {
		return 0, "", "", false
	}
	ps, rest, found := strings.Cut(rest, ".")
	if !found {
		return 0, "", "", false
	}
	if ps == "" || strings.TrimLeft(ps, "0123456789") != "" {
		return 0, "", "", false
	}
	p, err := strconv.Atoi(ps)
	if err != nil {
		return 0, "", "", false
	}
	tok, kind, found := strings.Cut(rest, ".")
	if !found || tok == "" || kind == "" {
		return 0, "", "", false
	}
	return p, names.FromToken(tok), kind, true
}
