package loadgen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/sig"
)

// A secure run (--secure) is the deployment's default trust, in process: a
// PKI made for the run, the server in operator mode, masters that connect
// with master.creds and sign every dispatch and control message, API calls
// signed with the admin's key, and simulated connections that each hold a
// user JWT with permissions and check the masters' signatures.
//
// How the simulation accounts for signature checks: a real peel verifies
// the dispatches addressed to it on its own core, one ed25519 verification
// per dispatch message. A simulated connection carries ~100 peels and
// receives each dispatch message once, so it verifies once per message per
// connection, not once per peel: the fleet's measured CPU contains
// simfleet.Fleet.Verified verifications, not one per peel. The report gives that
// count and the per-verification cost is measured separately
// (BenchmarkVerifyDispatch in internal/sig); a real fleet spends
// peels × that cost, spread over as many cores, which adds that cost to each
// peel's latency, not to anyone's throughput.
//
// Permissions: a simulated connection's JWT grants what its peels publish
// and subscribe to, as patterns of the same shape as pki.PeelPermissions
// (the peel id part as a wildcard: one JWT cannot list a hundred peels
// within the server's connect size), so the server checks every publish
// against a permission list as it does for real peels.
type secureEnv struct {
	dir    string
	p      *pki.PKI
	admin  string // admin.creds
	signer *sig.Signer
	trust  sig.Trust
	// accSigner issues the simulated connections' JWTs.
	accSigner nkeys.KeyPair
}

func newSecureEnv(dir string, partitions int) (*secureEnv, error) {
	pdir := filepath.Join(dir, "pki")
	if _, err := pki.Init(pdir, pki.InitOptions{Partitions: partitions}); err != nil {
		return nil, err
	}
	p, err := pki.Load(pdir)
	if err != nil {
		return nil, err
	}
	s := &secureEnv{dir: pdir, p: p, admin: filepath.Join(pdir, pki.FileAdminCreds)}
	if s.signer, err = sig.LoadSigner(s.admin); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p.MasterCreds)
	if err != nil {
		return nil, err
	}
	if s.trust, err = sig.TrustFromCreds(b); err != nil {
		return nil, err
	}
	seed, err := os.ReadFile(filepath.Join(pdir, pki.FileAccountSigningSeed))
	if err != nil {
		return nil, err
	}
	if s.accSigner, err = nkeys.FromSeed([]byte(strings.TrimSpace(string(seed)))); err != nil {
		return nil, err
	}
	return s, nil
}

// tune puts every server of the topology in operator mode.
func (s *secureEnv) tune(err *error) func(string, *server.Options) {
	return func(_ string, o *server.Options) {
		if e := s.p.ConfigureServer(o); e != nil && *err == nil {
			*err = e
		}
		// A thousand connections presenting JWTs at once on a shared
		// 2-core machine can take longer than the default 2 s to be
		// checked; a real fleet would just retry.
		o.AuthTimeout = 10
	}
}

// adminOptions are the control connection's credentials.
func (s *secureEnv) adminOptions() []nats.Option {
	return []nats.Option{nats.UserCredentials(s.admin), nats.CustomInboxPrefix(pki.CredsInboxPrefix(s.admin))}
}

// simInboxPrefix is the private reply prefix of simulated connection idx.
func simInboxPrefix(idx int) string { return fmt.Sprintf("%slg%d", names.InboxRoot, idx) }

// connOptions issues simulated connection idx its JWT: the publishes and
// subscriptions of its peels' partitions, a private inbox, and the
// baseline's raw subjects.
func (s *secureEnv) connOptions(idx int, parts []int) ([]nats.Option, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = fmt.Sprintf("loadgen-sim-%d", idx)
	uc.IssuerAccount = s.p.AccountKey()
	kv := func(bucket, key string) string { return names.KVSubjectPrefix(bucket) + key }
	uc.Permissions.Pub.Allow.Add(
		// Simulated ids are dotted: the id part spans several tokens.
		kv(names.BucketFacts, ">"),
		kv(names.BucketJobReturns, names.ReturnKey("*", ">")),
		names.JSStreamInfo(names.KVStream(names.BucketFacts)),
		names.JSStreamInfo(names.KVStream(names.BucketJobReturns)),
		names.APISubject(names.EndpointInfo),
		names.PeelEventSubject("*", ">"),
		// The raw baseline of the same run: its subjects and bucket.
		"lgbase.>", names.KVSubjectPrefix(baselineBucket)+">",
	)
	uc.Permissions.Sub.Allow.Add(simInboxPrefix(idx)+".>", "lgbase.>")
	for _, p := range parts {
		uc.Permissions.Pub.Allow.Add(strings.TrimSuffix(names.BeatSubject(p, "x"), "x") + "*")
		uc.Permissions.Sub.Allow.Add(names.JobSubject(p), names.ControlSubject(p))
	}
	tok, err := uc.Encode(s.accSigner)
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	return []nats.Option{nats.UserJWTAndSeed(tok, string(seed)), nats.CustomInboxPrefix(simInboxPrefix(idx))}, nil
}

var errSecureTopology = errors.New("--secure: only --topology single (operator mode across routes, leaf and gateway links needs their credentials, not built into the in-process launchers)")
