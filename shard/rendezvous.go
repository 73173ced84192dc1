package shard

import (
	"slices"
)

// FNV-1a 64-bit parameters.
const (
	fnv64Offset = 14695981039346656037
	fnv64Prime  = 1099511628211
)

func fnv64a(s string) uint64 {
	h := uint64(fnv64Offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnv64Prime
	}
	return h
}

// mix64 is the splitmix64 finalizer: a bijection on uint64 with full
// avalanche, so nearby inputs give unrelated outputs.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// weight is the rendezvous weight of a member (given by its FNV-1a 64 hash)
// for a partition. For one partition, members with different hashes get
// different weights (mix64 is a bijection), so ties need a 64-bit collision
// of member names.
func weight(memberHash uint64, partition int) uint64 {
	return mix64(memberHash ^ mix64(uint64(partition)+0x9e3779b97f4a7c15))
}

// normalize returns the members sorted, without duplicates and without "".
func normalize(members []string) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		if m != "" {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// owners computes the owner of every partition among normalized members; nil
// when there are none.
func owners(partitions int, members []string) []string {
	if partitions < 0 {
		panic("shard: negative partition count")
	}
	if len(members) == 0 {
		return nil
	}
	hs := make([]uint64, len(members))
	for i, m := range members {
		hs[i] = fnv64a(m)
	}
	own := make([]string, partitions)
	for p := range own {
		best, bw := 0, weight(hs[0], p)
		for i := 1; i < len(hs); i++ {
			// Ties (a 64-bit collision) go to the smaller name: members
			// are sorted, so keep the first one.
			if w := weight(hs[i], p); w > bw {
				best, bw = i, w
			}
		}
		own[p] = members[best]
	}
	return own
}

// Assign returns the owner of every partition in [0, partitions) among
// members, by rendezvous (highest random weight) hashing: each partition goes
// to the member with the highest weight(member, partition). The result does
// not depend on the order of members; duplicates and empty names are ignored.
// With no members it returns an empty map.
func Assign(partitions int, members []string) map[int]string {
	own := owners(partitions, normalize(members))
	m := make(map[int]string, len(own))
	for p, o := range own {
		m[p] = o
	}
	return m
}

// Owned returns, in increasing order, the partitions that self owns among
// members (self need not be in members; then it owns none).
func Owned(partitions int, members []string, self string) []int {
	return NewTable(partitions, members).Owned(self)
}

// Table is one assignment of partitions to members, computed once from a
// live member set. It is immutable and safe for concurrent use; a nil *Table
// has no partitions and no members.
type Table struct {
	partitions int
	members    []string // sorted, unique, no ""
	owners     []string // by partition; nil when there are no members
}

// NewTable computes the assignment of partitions [0, partitions) to members
// (see Assign). It panics when partitions is negative.
func NewTable(partitions int, members []string) *Table {
	ms := normalize(members)
	return &Table{partitions: partitions, members: ms, owners: owners(partitions, ms)}
}

// Partitions is the number of partitions the table covers.
func (t *Table) Partitions() int {
	if t == nil {
		return 0
	}
	return t.partitions
}

// Owner returns the owner of partition p, or "" when p is out of range or
// there are no members.
func (t *Table) Owner(p int) string {
	if t == nil || p < 0 || p >= len(t.owners) {
		return ""
	}
	return t.owners[p]
}

// Owns reports whether self owns partition p.
func (t *Table) Owns(self string, p int) bool {
	return self != "" && t.Owner(p) == self
}

// Owned returns, in increasing order, the partitions self owns.
func (t *Table) Owned(self string) []int {
	var out []int
	if t == nil || self == "" {
		return out
	}
	for p, o := range t.owners {
		if o == self {
			out = append(out, p)
		}
	}
	return out
}

// Members returns the members the table was built from, sorted and without
// duplicates. The slice is a copy.
func (t *Table) Members() []string {
	if t == nil {
		return nil
	}
	return slices.Clone(t.members)
}

// Moved returns, in increasing order, the partitions whose owner differs
// between old and new. A partition present in only one of them (the
// partition counts differ) or unowned in only one of them counts as moved.
// Either table may be nil.
func Moved(old, new *Table) []int {
	n := max(old.Partitions(), new.Partitions())
	var out []int
	for p := range n {
		if old.Owner(p) != new.Owner(p) {
			out = append(out, p)
		}
	}
	return out
}
