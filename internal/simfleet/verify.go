package simfleet

import (
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/sig"
)

// simVerifier checks dispatches and control messages for a simulated
// connection, counting both outcomes.
type simVerifier struct {
	v        *sig.Verifier
	verified atomic.Int64
	refused  atomic.Int64
}

func newSimVerifier(t sig.Trust) *simVerifier { return &simVerifier{v: sig.NewVerifier(t)} }

// check verifies one received message, once for all the connection's peels.
func (sv *simVerifier) check(p sig.Purpose, m *nats.Msg, maxAge time.Duration) bool {
	if sv == nil {
		return true
	}
	_, err := sv.v.VerifyMsg(p, m, time.Now(), sig.Options{Roles: []string{sig.RoleMaster}, MaxAge: maxAge})
	if err != nil {
		sv.refused.Add(1)
		return false
	}
	sv.verified.Add(1)
	return true
}
