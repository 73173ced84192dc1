package pki

import (
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
)

// RoleLeaf is the user a leaf node dials its hub with (topology gen
// --pki-dir writes its credentials).
const RoleLeaf Role = "leaf"

// LeafPermissions is what a leaf node's link may carry, derived from names
// like PeelPermissions: toward the hub (publish), what peels publish, for
// any peel id, and the replies of the JetStream API; from the hub
// (subscribe), the jobs, control messages and instance checks of every
// partition and the replies to the leaf's clients. It never allows the
// master API beyond info and basket.get, the jobs or enrollments buckets, secrets beyond
// a direct get of a named key (sealed values), writes of any master-owned
// key, or answering as a master. A leaf run by someone else can therefore
// do what any one peel may do, for every peel id behind it: write facts,
// returns, basket values and events in their names; the peels' own
// connections to the leaf are still limited to their own id by their JWTs,
// the masters refuse a return whose body names another peel, and peels run
// only dispatches a master signed (docs/security.md, threat model).
func LeafPermissions() jwt.Permissions {
	kv := func(bucket, key string) string { return names.KVSubjectPrefix(bucket) + key }
	var p jwt.Permissions
	p.Pub.Allow.Add(
		kv(names.BucketFacts, ">"),
		kv(names.BucketJobReturns, ">"),
		kv(names.BucketBasket, ">"),
		names.PeelEventSubject("*", ">"),
		names.SubjectInPartitionedPrefix+".>",
		names.APISubject(names.EndpointInfo),
		names.APISubject(names.EndpointBasketGet),
		names.SubjectEnroll,
		names.BeatSubjectAny(),
		names.PeelInboxAny(),
		names.InboxRoot+">",
	)
	for _, b := range []string{names.BucketFacts, names.BucketJobReturns, names.BucketBasket, names.BucketSecrets, names.BucketSettingsFiles} {
		p.Pub.Allow.Add(names.JSStreamInfo(names.KVStream(b)))
	}
	p.Pub.Allow.Add(
		names.JSDirectGetKey(names.BucketJobReturns, ">"),
		names.JSDirectGetKey(names.BucketSecrets, ">"),
		names.JSDirectGetKey(names.BucketSettingsFiles, ">"),
		names.JSDirectGetKey(names.BucketBasket, ">"),
		names.JSDirectGetKey(names.BucketStateTree, ">"),
	)
	p.Sub.Allow.Add(
		names.JobSubjectAny(),
		names.ControlSubjectAny(),
		names.PeelInboxAny(),
		names.InboxRoot+">",
	)
	return p
}

// IssueLeaf creates the credentials of a leaf node's link (a new nkey, a
// user JWT with LeafPermissions), for leafnodes.remotes[].credentials.
func (p *PKI) IssueLeaf(name string) ([]byte, error) {
	if err := names.ValidateID(name); err != nil {
		return nil, fmt.Errorf("leaf: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("leaf %s: %w", name, err)
	}
	pub, _ := kp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.Permissions = LeafPermissions()
	uc.Tags.Add(TagRole + string(RoleLeaf))
	tok, err := p.iss.sign(uc)
	if err != nil {
		return nil, fmt.Errorf("leaf %s: %w", name, err)
	}
	seed, _ := kp.Seed()
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, fmt.Errorf("leaf %s: %w", name, err)
	}
	return creds, nil
}
