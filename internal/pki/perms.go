package pki

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/shard"
)

// PeelSpec is what a peel's permissions depend on.
type PeelSpec struct {
	// ID is the peel id (names.ValidateID).
	ID string
	// Partitions is the deployment's partition count: the peel receives jobs
	// on the subject of shard.Partition(ID, Partitions). A change of the count
	// needs new credentials.
	Partitions int
}

// Validate checks the spec; the error names what is wrong.
func (s PeelSpec) Validate() error {
	if err := names.ValidateID(s.ID); err != nil {
		return fmt.Errorf("peel: %w", err)
	}
	if s.Partitions < 1 || s.Partitions > 65536 {
		return fmt.Errorf("peel %s: partitions %d: want 1 to 65536", s.ID, s.Partitions)
	}
	return nil
}

// PeelPermissions is the complete permission set of one peel, derived from
// package names. It is the only place a peel's grants are decided.
//
// Publish: its own facts key, its own returns and basket values (peel id last
// in the key, one '*' token before it), its own events, beats and
// peel→master subjects (the id as one token; the latter after the account's
// partition mapping), its own peel inbox and reply inbox (the
// one-process-per-id check and its answer), its own renewal subject, the master API's info endpoint, and direct gets with
// the key in the subject for its own returns, its own secrets entry, its
// own settings-files entry and its own basket keys; the master API's
// basket.get endpoint (the masters check its signature).
// Subscribe: its partition's job and control subjects, its peel inbox and
// its private reply inbox.
//
// Nothing here opens another peel's key: there is no bare direct get, no
// stream message get, no consumer create (a peel creates no consumer), no
// stream info (which lists key names: the peel binds no bucket, it publishes
// to its keys' subjects and reads with direct gets, peelproto.PutKV and
// GetKV), and every pattern with a wildcard ends in the peel's own id or
// token.
func PeelPermissions(s PeelSpec) (jwt.Permissions, error) {
	if err := s.Validate(); err != nil {
		return jwt.Permissions{}, err
	}
	id, part := s.ID, shard.Partition(s.ID, s.Partitions)
	kv := func(bucket, key string) string { return names.KVSubjectPrefix(bucket) + key }
	pub := []string{
		kv(names.BucketFacts, names.FactsKey(id)),
		kv(names.BucketJobReturns, names.ReturnKey("*", id)),
		kv(names.BucketBasket, names.BasketKey(id, "*")),
		names.PeelEventSubject(id, ">"),
		// The peel publishes on shard.InSubject(id, …); the account's
		// partition mapping rewrites that while the server parses the
		// message, and the publish permission is checked on the rewritten
		// subject (nats-server 2.15), so that is what is granted.
		shard.PartitionedSubject(part, id, ">"),
		names.BeatPeelFilter(id),
		names.PeelInbox(id),
		// Its own reply inbox: a process with its id and credentials (a
		// copied data_dir) asks on PeelInbox, and this peel answers there.
		names.PeelInboxPrefix(id) + ".>",
		names.EnrollRenewSubject(id),
		names.APISubject(names.EndpointInfo),
		// basket.get: the masters read everyone's basket entries for it
		// (a peel cannot create the consumer that reading them takes).
		names.APISubject(names.EndpointBasketGet),
		// Is my basket entry still stored (a store rebuilt under a running
		// peel)? Its own keys only: the pattern ends in its id.
		names.JSDirectGetKey(names.BucketBasket, names.BasketPeelFilter(id)),
		// Before running a job: is my return already stored?
		names.JSDirectGetKey(names.BucketJobReturns, names.ReturnKey("*", id)),
		// Its own settings: one key in each bucket, whatever top.zy
		// assigns it (names.SettingsFilesKey), so credentials outlive
		// every change of the settings tree.
		names.JSDirectGetKey(names.BucketSecrets, names.SecretsKey(id)),
		names.JSDirectGetKey(names.BucketSettingsFiles, names.SettingsFilesKey(id)),
		// The state tree: every peel may read all of it, as every Salt
		// minion reads the whole file server; nothing in it is secret.
		// Read only: no peel may publish to $KV.state-tree.
		names.JSDirectGetKey(names.BucketStateTree, ">"),
	}
	sub := []string{
		names.JobSubject(part),
		names.ControlSubject(part),
		names.PeelInbox(id),
		names.PeelInboxPrefix(id) + ".>",
	}
	var p jwt.Permissions
	p.Pub.Allow.Add(pub...)
	p.Sub.Allow.Add(sub...)
	return p, nil
}

// Role is what an operator user may do (zester pki user add --role).
type Role string

// Operator roles.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleReadonly Role = "readonly"
)

// Internal roles: the principals Init and IssuePeel create.
const (
	roleMaster Role = "master"
	roleEnroll Role = "enroll"
	roleSystem Role = "system"
	RolePeel   Role = "peel"
)

// roleSpec is one row of the role table.
type roleSpec struct {
	doc string
	// full: no permission limits inside the account.
	full bool
	// api: master API subjects the role may call (publish).
	api []string
	// kvRead, streamRead: buckets and streams the role may read in full.
	kvRead, streamRead []string
	// user: issued by `zester pki user add` (an operator role).
	user bool
}

// roles is THE role table: every grant of an operator user comes from here.
var roles = map[Role]roleSpec{
	RoleAdmin: {
		doc:  "everything in the Zester account: every bucket and stream (backup, restore, purge), the whole master API, enrollment decisions",
		full: true, user: true,
	},
	RoleOperator: {
		doc:        "runs jobs (the whole master API) and reads facts, jobs, returns, job events and master heartbeats; writes no key, cannot publish jobs or control messages directly, cannot answer as a master",
		api:        []string{names.APIPrefix + ".>"},
		kvRead:     []string{names.BucketFacts, names.BucketJobs, names.BucketJobReturns, names.BucketMasterHeartbeat},
		streamRead: []string{names.StreamJobEvents},
		user:       true,
	},
	RoleReadonly: {
		doc:        "lists and reads jobs, facts, peels and basket entries (facts, jobs, returns, job events; the API's info and basket.get endpoints) and nothing else: cannot run a job",
		api:        []string{names.APISubject(names.EndpointInfo), names.APISubject(names.EndpointBasketGet)},
		kvRead:     []string{names.BucketFacts, names.BucketJobs, names.BucketJobReturns},
		streamRead: []string{names.StreamJobEvents},
		user:       true,
	},
	roleMaster: {doc: "the masters: everything in the Zester account", full: true},
	roleEnroll: {doc: "the enrollment bootstrap: publish " + names.SubjectEnroll + ", replies on " + names.EnrollInboxPrefix + ".>"},
	roleSystem: {doc: "the system account user", full: true},
	RolePeel:   {doc: "one peel: PeelPermissions"},
}

// Roles lists the operator roles, in a fixed order.
func Roles() []Role { return []Role{RoleAdmin, RoleOperator, RoleReadonly} }

// Describe says what a role may do.
func (r Role) Describe() string { return roles[r].doc }

// ParseRole parses an operator role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if spec, ok := roles[r]; ok && spec.user {
		return r, nil
	}
	valid := make([]string, 0, 3)
	for _, r := range Roles() {
		valid = append(valid, string(r))
	}
	return "", fmt.Errorf("role %q: want one of %s", s, strings.Join(valid, ", "))
}

// readStream grants full read access to one stream: stream info, every get,
// consumers (create, info, next, delete), flow control and acks. Only for
// principals that may read every key of it.
func readStream(stream string) []string {
	return []string{
		names.JSStreamInfo(stream),
		names.JSDirectGet(stream), names.JSDirectGet(stream) + ".>",
		names.JSMsgGet(stream),
		names.JSConsumerCreate(stream), names.JSConsumerCreate(stream) + ".>",
		names.JSConsumerInfo(stream), names.JSConsumerNext(stream), names.JSConsumerDelete(stream),
		names.JSFlowControl(stream), names.JSAck(stream),
	}
}

// rolePermissions is the permission set of a user of role r named name.
// Full roles get none (everything in the account is allowed).
func rolePermissions(r Role, name string) (jwt.Permissions, error) {
	spec, ok := roles[r]
	if !ok {
		return jwt.Permissions{}, fmt.Errorf("role %q: unknown", r)
	}
	var p jwt.Permissions
	switch {
	case spec.full:
		return p, nil
	case r == roleEnroll:
		p.Pub.Allow.Add(names.SubjectEnroll)
		p.Sub.Allow.Add(names.EnrollInboxPrefix + ".>")
		return p, nil
	case r == RolePeel:
		return p, fmt.Errorf("role peel: use PeelPermissions")
	}
	p.Pub.Allow.Add(spec.api...)
	for _, b := range spec.kvRead {
		p.Pub.Allow.Add(readStream(names.KVStream(b))...)
	}
	for _, s := range spec.streamRead {
		p.Pub.Allow.Add(readStream(s)...)
	}
	p.Sub.Allow.Add(names.UserInboxPrefix(name) + ".>")
	return p, nil
}

// FormatPermissions renders a permission set one subject a line, allow lists
// sorted (what `zester pki permissions` prints and docs/security.md shows).
func FormatPermissions(p jwt.Permissions) string {
	var b strings.Builder
	list := func(title string, l jwt.StringList) {
		if len(l) == 0 {
			return
		}
		s := slices.Clone([]string(l))
		slices.Sort(s)
		b.WriteString(title + ":\n")
		for _, x := range s {
			b.WriteString("  " + x + "\n")
		}
	}
	list("publish allow", p.Pub.Allow)
	list("publish deny", p.Pub.Deny)
	list("subscribe allow", p.Sub.Allow)
	list("subscribe deny", p.Sub.Deny)
	return b.String()
}
