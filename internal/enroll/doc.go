// Package enroll is the enrollment protocol of Zester (issue 11, items 2 and
// 3), shared by the master (master/enroll.go), the peel (peel/enroll.go,
// peel/creds.go), the CLI (zester enroll) and the load generator: the
// messages and their strict decoding, the signatures, the records kept in
// the enrollments bucket and the rules that move them, the auto-accept
// policy and the enrollment tokens. Its only I/O is the peel's side of the
// request/reply (Exchange, Renew); the master's side (master/enroll.go) moves
// the bytes and keeps the state in JetStream.
//
// # The exchange
//
// A new peel holds two keys it made in its data_dir (an nkey user key, which
// names it to NATS, and a curve key, to which secrets are sealed) and a copy
// of the bootstrap credential (enroll.creds), which may publish only
// names.SubjectEnroll and read only replies below names.EnrollInboxPrefix —
// a prefix every holder shares, so nothing in a reply is secret.
//
//	peel → hello {id, nkey}                     master: stores a nonce in enroll-challenges (key: id)
//	peel ← challenge {nonce, expires}
//	peel → prove {claim, sig}                   claim = {id, nkey, curve, nonce, facts, token}
//	                                            sig   = nkey's signature of ClaimContext+claim
//	peel ← result {state: pending|accepted, jwt} | refusal {code, msg}
//
// The master checks the proof against the challenge it stored: same id, same
// key, same nonce, not used, not expired; then that the signature verifies
// with that key. A challenge is used once (its entry is marked used with a
// compare-and-set), so a captured proof cannot be replayed. The record of the
// id in enrollments then decides: absent or pending with the same key is
// evaluated (token, auto-accept policy, else pending); accepted with the same
// key gets a fresh JWT (a peel whose credentials expired while it was off);
// any record with another key is refused as a cloned or stolen id; rejected
// and revoked records are refused.
//
// A pending peel repeats the exchange (with backoff) until an operator
// decides. An accepted peel gets a user JWT (pki.IssuePeel: its permissions
// are pki.PeelPermissions) that is public — the peel's seed never leaves it —
// so a shared reply inbox may carry it.
//
// # Renewal
//
// An enrolled peel asks for a fresh JWT before its credentials expire (at two
// thirds of their life) on names.EnrollRenewSubject(id), over its own
// credentials (only it may publish there), with a claim signed by its nkey
// that carries the time. A peel whose credentials expired repeats the
// enrollment exchange instead, and gets a JWT at once while its record is
// accepted with its key.
//
// # Facts at enrollment
//
// Facts are not known before enrollment: a peel sends a few fact groups with
// its proof (os, kernel, host, virtualization, network addresses). They are
// claimed, not verified: anyone holding enroll.creds can claim anything, the
// id included. An auto-accept target (the -C language: `web-*`,
// `G@os:id:debian`, `S@10.0.0.0/8`) is matched against the claimed id and
// facts, so a policy is only as strong as the secrecy of enroll.creds.
// Enrollment tokens are stronger: a one-time token admits one peel.
package enroll
