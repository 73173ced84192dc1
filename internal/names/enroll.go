package names

import "strings"

// Names of enrollment (issue 11, items 2 and 3): the subjects a new peel, an
// enrolled peel and an administrator use, the audit event subjects, and the
// reserved keys of the enrollments bucket.
//
// Who may publish what is the point of these names:
//   - SubjectEnroll (names.go's trust.go) is the only subject of the
//     bootstrap credential; every holder shares its reply prefix.
//   - EnrollRenewSubject(id) carries the peel's id as one token, so the
//     peel's own credentials can renew its credentials and nobody else's.
//   - EnrollAdminSubject lies outside APIPrefix: the operator and readonly
//     roles, which may call the master API, cannot make enrollment decisions;
//     only full-access principals (admin, masters) can publish there.
const (
	// EnrollQueue is the queue group of the masters' enrollment
	// subscriptions: one master handles each request.
	EnrollQueue = "zester-enroll"

	enrollRenewRoot = SubjectEnroll + ".renew"
	enrollAdminRoot = SubjectEnroll + ".admin"

	// SubjectEnrollRenewAll matches every peel's renewal subject.
	SubjectEnrollRenewAll = enrollRenewRoot + ".*"
	// SubjectEnrollAdminAll matches every enrollment decision subject.
	SubjectEnrollAdminAll = enrollAdminRoot + ".*"

	enrollEventRoot = Root + ".events.enroll"

	// EnrollReservedPrefix starts every enrollments key that is not a peel
	// id. A valid id starts with a letter or digit (ValidateID), so no peel
	// record can collide with these.
	EnrollReservedPrefix = "_"
	// EnrollRevocationsKey holds the revoked user keys every master merges
	// into the account JWT (one list for all masters: each holds its own copy
	// of the PKI directory).
	EnrollRevocationsKey = EnrollReservedPrefix + "revocations"
	enrollTokenPrefix    = EnrollReservedPrefix + "token."
)

// EnrollRenewSubject is where an enrolled peel asks, over its own
// credentials, for a fresh user JWT.
func EnrollRenewSubject(id string) string { return enrollRenewRoot + "." + Token(id) }

// ParseEnrollRenewSubject returns the peel id of a renewal subject.
func ParseEnrollRenewSubject(subj string) (string, bool) {
	tok, ok := strings.CutPrefix(subj, enrollRenewRoot+".")
	if !ok || tok == "" || strings.Contains(tok, ".") {
		return "", false
	}
	return FromToken(tok), true
}

// EnrollAdminSubject is the subject of one enrollment decision endpoint
// (list, accept, reject, revoke, delete, token.create, …; op is one token).
func EnrollAdminSubject(op string) string { return enrollAdminRoot + "." + op }

// EnrollEventSubject is the job-events subject of one enrollment audit event
// (kind: requested, accepted, rejected, revoked, deleted, refused, renewed,
// token.created, …). It lies under SubjectJobEventsAll, so the job-events
// stream keeps it with the job lifecycle.
func EnrollEventSubject(id, kind string) string {
	return enrollEventRoot + "." + Token(id) + "." + kind
}

// EnrollEventFilter selects every enrollment event.
const EnrollEventFilter = enrollEventRoot + ".>"

// EnrollRecordKey is the enrollments key of a peel's record: its plain id,
// as the seed's other per-peel buckets use.
func EnrollRecordKey(id string) string { return id }

// EnrollTokenKey is the enrollments key of an enrollment token, by the hex
// SHA-256 of the token (the token itself is never stored).
func EnrollTokenKey(hash string) string { return enrollTokenPrefix + hash }

// EnrollTokenFilter matches every token key.
const EnrollTokenFilter = enrollTokenPrefix + "*"

// ParseEnrollTokenKey returns the hash of a token key.
func ParseEnrollTokenKey(key string) (string, bool) {
	h, ok := strings.CutPrefix(key, enrollTokenPrefix)
	return h, ok && h != ""
}

// IsEnrollReservedKey reports whether an enrollments key is not a peel
// record (tokens, the revocation list).
func IsEnrollReservedKey(key string) bool { return strings.HasPrefix(key, EnrollReservedPrefix) }

// EnrollKeyIndexKey is the enrollments key that binds a peel's public key
// to the one id it was accepted as: one key, one id, so an enrolled peel
// cannot obtain credentials for a second id with its key.
func EnrollKeyIndexKey(nkey string) string { return EnrollReservedPrefix + "key." + nkey }

// SysAccountClaimsUpdate is the system account subject on which every
// nats-server takes a new JWT of account acc (a memory resolver applies it
// in memory, a full resolver stores it): how masters push a revocation to
// servers they do not embed.
func SysAccountClaimsUpdate(acc string) string { return "$SYS.REQ.ACCOUNT." + acc + ".CLAIMS.UPDATE" }

// EnrollTokenEventSubject is the job-events subject of an enrollment token
// event (created, deleted). "_token" cannot be a peel's token (ids start
// with a letter or digit).
func EnrollTokenEventSubject(kind string) string {
	return enrollEventRoot + "." + EnrollReservedPrefix + "token." + kind
}

// EnrollWakeSubject is where a master tells a waiting peel that an operator
// decided on its request, so it asks again at once instead of at its next
// retry. It lies below EnrollInboxPrefix, the only place the bootstrap
// credential may subscribe; the message carries nothing (any holder of
// enroll.creds may read it).
func EnrollWakeSubject(id string) string { return EnrollInboxPrefix + ".wake." + Token(id) }

// BeatPeelFilter matches the beats of peel id in any partition
// (zester.beat.*.<token>): its permission to beat, which does not depend on
// the partition count.
func BeatPeelFilter(id string) string { return beatPrefix + "*." + Token(id) }
