package names

import (
	"fmt"
)

// Names used by the trust layer (issue 11): the enrollment subject, private
// reply-inbox prefixes, the per-peel keys of the secrets and basket buckets,
// and the JetStream API subjects that package pki grants per key.
//
// Invariant for every inbox prefix below: no two principals share one, and
// none is a prefix of another's. A peel's prefix is "_INBOX." + Token(id), and
// Token(id) always starts with a letter or digit (ValidateID); the enrollment
// and user prefixes start with '_' after "_INBOX.", so they can never equal or
// contain a peel's.

const (
	// SubjectEnroll is where a new peel, holding only the bootstrap
	// credential, sends its enrollment requests (request/reply; the masters
	// answer in a queue group). It is the only subject that credential may
	// publish to.
	SubjectEnroll = Root + ".enroll"

	// EnrollInboxPrefix is the reply-inbox prefix of a connection that uses
	// the bootstrap credential. Every holder of that credential shares it,
	// so an enrollment reply must never carry a secret (a challenge nonce,
	// a public key or a user JWT are fine: none is usable without the
	// peel's own seed).
	EnrollInboxPrefix = InboxRoot + "_enroll"

	// userInboxRoot is the root of operator users' private inboxes.
	userInboxRoot = InboxRoot + "_u."

	// jsAPI is the JetStream API subject prefix (no domain).
	jsAPI = "$JS.API."
)

// InboxRoot is the root under which every reply inbox lies (nats.go's
// default prefix and every prefix above). Nothing stores or acts on a
// message below it.
const InboxRoot = "_INBOX."

// IsInbox reports whether subject is a reply inbox. A responder with wide
// publish rights (a master) must answer only such replies: the NATS server
// checks a requester's publish permission on the subject, never on the reply
// subject, so a peel could otherwise name `$KV.facts.<another peel>` as the
// reply of a request and have the master write its answer there.
func IsInbox(subject string) bool {
	return len(subject) > len(InboxRoot) && subject[:len(InboxRoot)] == InboxRoot
}

// UserInboxPrefix is the reply-inbox prefix of an operator user's connection
// (users issued by `zester pki user add`): such a user may subscribe only
// below it.
func UserInboxPrefix(name string) string { return userInboxRoot + Token(name) }

// SecretsKey is the secrets bucket key of a peel's sealed values: its plain id.
func SecretsKey(id string) string { return id }

// BasketKey is the basket bucket key of one named value a peel publishes
// (Salt's mine). The peel id comes last, as in ReturnKey, so that
// `$KV.basket.*.<id>` matches exactly that peel's values (a dotted id spans
// several tokens, and `*` is exactly one) and `$KV.basket.<name>.>` selects
// one name across the fleet. The name must be one token (ValidateToken).
func BasketKey(id, name string) string { return name + "." + id }

// ValidateToken checks a name that must be exactly one subject token and a
// valid KV key part: 1–64 letters, digits, '-' and '_'.
func ValidateToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("invalid %s: empty", what)
	}
	if len(s) > 64 {
		return fmt.Errorf("invalid %s %.40q…: %d characters, at most 64", what, s, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return fmt.Errorf("invalid %s %q: character %q at column %d is not allowed (letters, digits, '-', '_')", what, s, c, i+1)
		}
	}
	return nil
}

// ValidateKVKey checks a literal KV key (no wildcards): characters
// [-/_=.a-zA-Z0-9], no empty dot-separated part, at most 1024 bytes.
func ValidateKVKey(key string) error {
	if key == "" {
		return fmt.Errorf("invalid key: empty")
	}
	if len(key) > 1024 {
		return fmt.Errorf("invalid key %.40q…: %d bytes, at most 1024", key, len(key))
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case isAlnum(c), c == '-', c == '/', c == '_', c == '=':
		case c == '.':
			if i == 0 || i == len(key)-1 || key[i-1] == '.' {
				return fmt.Errorf("invalid key %q: empty part at column %d", key, i+1)
			}
		default:
			return fmt.Errorf("invalid key %q: character %q at column %d is not allowed", key, c, i+1)
		}
	}
	return nil
}

// JetStream API subjects, as nats.go v1.55 sends them (NATS-NOTES.md, "KV
// permissions per key"). Package pki grants them per key; which of them open
// every key of a bucket is written next to each.

// JSStreamInfo is the stream info request; binding a KV bucket sends it.
func JSStreamInfo(stream string) string { return jsAPI + "STREAM.INFO." + stream }

// JSDirectGetKey is the direct get of the last value of one KV key, with the
// key in the subject: granting it opens exactly that key (a pattern with '*'
// in the key part opens what the pattern matches).
func JSDirectGetKey(bucket, key string) string {
	return jsAPI + "DIRECT.GET." + KVStream(bucket) + "." + KVSubjectPrefix(bucket) + key
}

// JSDirectGet is the direct get with the request in the body. Granting it
// opens every key of the stream.
func JSDirectGet(stream string) string { return jsAPI + "DIRECT.GET." + stream }

// JSMsgGet is the stream message get (request in the body). Granting it
// opens every message of the stream.
func JSMsgGet(stream string) string { return jsAPI + "STREAM.MSG.GET." + stream }

// JSConsumerCreate is the legacy consumer create (filter in the body).
// Granting it, or JSConsumerCreate(stream)+".>", opens every message of the
// stream.
func JSConsumerCreate(stream string) string { return jsAPI + "CONSUMER.CREATE." + stream }

// JSConsumerCreateFiltered is the consumer create with the filter subject in
// the request subject (any consumer name).
func JSConsumerCreateFiltered(stream, filter string) string {
	return JSConsumerCreate(stream) + ".*." + filter
}

// JSConsumerDelete, JSConsumerInfo and JSConsumerNext act on any consumer of
// the stream (last token: the consumer name).
func JSConsumerDelete(stream string) string { return jsAPI + "CONSUMER.DELETE." + stream + ".*" }

// JSConsumerInfo: see JSConsumerDelete.
func JSConsumerInfo(stream string) string { return jsAPI + "CONSUMER.INFO." + stream + ".*" }

// JSConsumerNext: see JSConsumerDelete.
func JSConsumerNext(stream string) string { return jsAPI + "CONSUMER.MSG.NEXT." + stream + ".*" }

// JSFlowControl matches the flow-control replies of push consumers on a
// stream (KV watches).
func JSFlowControl(stream string) string { return "$JS.FC." + stream + ".>" }

// JSAck matches the acknowledgements of consumers on a stream.
func JSAck(stream string) string { return "$JS.ACK." + stream + ".>" }

// Wildcards over every partition, for the credentials of a link that
// carries many peels (a leaf node's): each matches exactly the subjects of
// the function it is named after, for any partition or id.

// JobSubjectAny matches JobSubject(p) for every p.
func JobSubjectAny() string { return Root + ".job.*" }

// ControlSubjectAny matches ControlSubject(p) for every p.
func ControlSubjectAny() string { return Root + ".ctl.*" }

// BeatSubjectAny matches BeatSubject(p, id) for every p and id.
func BeatSubjectAny() string { return beatPrefix + "*.*" }

// PeelInboxAny matches PeelInbox(id) for every id.
func PeelInboxAny() string { return Root + ".peel.*.in" }
