// Package shard splits a Zester fleet between its masters.
//
// The fleet's peels are grouped into a fixed number of partitions
// (DefaultPartitions unless configured), and masters own partitions, not
// peels. Two independent functions do the work.
//
// # Peel → partition: Partition
//
// A peel's partition is the FNV-1a 32-bit hash of names.Token(id) modulo the
// partition count. That is exactly the hash nats-server's subject mapping
// function {{partition(n,1)}} computes over the peel token, so the server can
// do the routing: peels publish on zester.in.<peel-token>.<kind> (InSubject),
// the account mapping from names.PartitionMapping rewrites that to
// zester.inp.<partition>.<peel-token>.<kind>, and each master subscribes to
// zester.inp.<p>.> (PartitionFilter) for the partitions it owns. Peels need
// not know the partition count, and a master can compute any peel's partition
// itself (for example to find the peels of a partition in the facts bucket)
// with the same answer the server gives. The partition count is fixed for
// the life of a fleet: changing it reshuffles every peel.
//
// # Partition → master: rendezvous hashing
//
// Partitions are assigned to the live masters by rendezvous, or highest
// random weight, hashing (Assign, Owned, Table): every (master, partition)
// pair gets a pseudo-random 64-bit weight (FNV-1a 64 of the master id, mixed
// with the partition number through the splitmix64 finalizer), and each
// partition belongs to the master with the highest weight.
//
// Rendezvous hashing was chosen because:
//
//   - No coordination. The table is a pure function of the partition count
//     and the set of live masters (from the master-heartbeat bucket). Every
//     master computes the same table on its own, in any order it saw the
//     members; there is no leader, no lock and no assignment record to
//     agree on or to repair.
//   - Minimal movement. When a master joins, the only partitions that move
//     are those where the newcomer now has the highest weight, and they all
//     move to it; no partition changes hands between the masters that were
//     already there. When a master leaves, only its own partitions move, each
//     to the master with the next-highest weight. Moved lists the partitions
//     to hand over or pick up.
//   - Even spread without tuning. With a well-mixed weight each master owns
//     about partitions/masters, with the spread of a random multinomial
//     split (see the tests for measured figures); there are no virtual nodes
//     or ring positions to configure.
//
// The cost is O(partitions × masters) hashing to build a table, a few
// microseconds for 64 partitions and ten masters, paid only when the member
// set changes.
package shard
