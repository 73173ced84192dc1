package master

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/target"
)

// Who may call the master API (docs/security.md, "Operators and roles").
//
// NATS does not tell a responder who sent a request, and a reply subject is
// chosen by the sender, so neither can name the caller. The caller proves
// who it is instead: the CLI signs every request (sig.API: subject, time,
// nonce and body) with the nkey of its credentials and sends its user JWT.
// The master checks the JWT against the account (issued by an account
// signing key, not expired, not revoked), the signature, a ±apiMaxAge window
// and a nonce guard, then reads the role and limits from the JWT's tags. The
// identity recorded with a job is that JWT's name and key.

// apiMaxAge is the window of an API request's signing time (clock skew
// between the CLI's host and the master's counts against it).
const apiMaxAge = 2 * time.Minute

// access is what an endpoint requires of its caller.
type access int

const (
	// accessOpen: anyone who may publish the subject (the info endpoint,
	// which peels ask for the partition count).
	accessOpen access = iota
	// accessRead: readonly, operator, admin.
	accessRead
	// accessRun: operator, admin; limits apply.
	accessRun
	// accessAdmin: admin (enrollment decisions, credentials).
	accessAdmin
	// accessBasket: readonly, operator, admin and peels (basket.get: a
	// peel reads every peel's basket entries).
	accessBasket
)

var accessRoles = map[access][]string{
	accessRead:   {string(pki.RoleReadonly), string(pki.RoleOperator), string(pki.RoleAdmin)},
	accessRun:    {string(pki.RoleOperator), string(pki.RoleAdmin)},
	accessAdmin:  {string(pki.RoleAdmin)},
	accessBasket: {string(pki.RoleReadonly), string(pki.RoleOperator), string(pki.RoleAdmin), string(pki.RolePeel)},
}

// Caller is the verified identity behind an API request.
type Caller struct {
	// Name is the user's name in its JWT ("unauthenticated" in insecure
	// mode), Key its public key, Role its role.
	Name, Key string
	Role      pki.Role
	// Targets and Functions are the user's limits (publisher_acl); empty is
	// none.
	Targets, Functions []string
	// Verified is false in insecure mode, where nobody is authenticated.
	Verified bool
}

// Unauthenticated is the requester recorded in insecure mode.
const Unauthenticated = "unauthenticated"

// describe is how a caller is written in events: the verified name, role
// and key, or "unauthenticated" with what the client claimed.
func (c *Caller) describe(claimed string) string {
	if !c.Verified {
		return fmt.Sprintf("%s claimed=%q", Unauthenticated, claimed)
	}
	return fmt.Sprintf("%s role=%s key=%s", c.Name, c.Role, c.Key)
}

// apiError is an error the API answers with a code.
type apiError struct {
	code string
	err  error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func unauthorized(err error) error { return &apiError{code: "401", err: err} }
func forbidden(err error) error    { return &apiError{code: "403", err: err} }

// authorize checks a request before an endpoint acts on it. A request whose
// reply is not an inbox is dropped without an answer: nats-server checks a
// publisher's rights on the subject only, so the master, which may publish
// anywhere, would otherwise write its answer wherever the sender named (for
// a peel: another peel's facts key). The caller must then have a role that
// need allows. In insecure mode everyone is let in, unauthenticated.
func (m *Master) authorize(req micro.Request, need access) (*Caller, error) {
	if !names.IsInbox(req.Reply()) {
		m.apiRefused("reply_not_inbox").Inc()
		return nil, errNoReply
	}
	return m.verifyCaller(req.Subject(), nats.Header(req.Headers()), req.Data(), need)
}

// verifyCaller is authorize after the reply check, for requests that do not
// come through micro (the enrollment decisions, enroll.go).
func (m *Master) verifyCaller(subject string, hdr nats.Header, body []byte, need access) (*Caller, error) {
	if m.users == nil || need == accessOpen {
		return &Caller{Name: Unauthenticated}, nil
	}
	m.refreshAccount()
	ac, _ := m.pki.Account()
	// The account JWT carries the revocations; it changes when a user or
	// peel is revoked.
	m.users.SetTrust(sig.TrustFromAccount(ac))
	s, err := m.users.Verify(sig.API, subject, hdr, body, time.Now(),
		sig.Options{MaxAge: apiMaxAge, Replay: m.replay})
	if err != nil {
		m.apiRefused(sig.Reason(err)).Inc()
		if errors.Is(err, sig.ErrUnsigned) {
			return nil, unauthorized(fmt.Errorf("unsigned request: the master API needs a request signed with Zester credentials (zester --creds FILE, ZESTER_CREDS, or the PKI's admin.creds): %w", err))
		}
		return nil, unauthorized(err)
	}
	u, err := pki.ReadUser(s.Claims)
	if err != nil {
		m.apiRefused("role").Inc()
		return nil, forbidden(err)
	}
	c := &Caller{Name: u.Name, Key: u.Key, Role: u.Role, Targets: u.Targets, Functions: u.Functions, Verified: true}
	for _, r := range accessRoles[need] {
		if string(u.Role) == r {
			return c, nil
		}
	}
	m.apiRefused("role").Inc()
	return nil, forbidden(fmt.Errorf("user %s has role %s: %s needs role %s", u.Name, u.Role, subject, strings.Join(accessRoles[need], " or ")))
}

// apiRefused counts a refused API request by reason.
func (m *Master) apiRefused(reason string) *metrics.Counter {
	return m.opts.Metrics.GetOrCreateCounter(fmt.Sprintf(`zester_master_api_refused_total{reason=%q}`, reason))
}

// errNoReply marks a request that gets no answer at all.
var errNoReply = errors.New("reply subject is not an inbox")

// checkLimits applies a caller's publisher_acl-style limits to a job: the
// function must match one of its function globs, and the target is narrowed
// to the peels its target expressions select (the job runs on the
// intersection, resolved by every master from the same record). It returns
// the target to record.
func checkLimits(c *Caller, function string, expr target.Expr, nodegroups map[string]string) (target.Expr, error) {
	if len(c.Functions) > 0 {
		ok := false
		for _, g := range c.Functions {
			if m, err := path.Match(g, function); err == nil && m {
				ok = true
				break
			}
		}
		if !ok {
			return nil, forbidden(fmt.Errorf("user %s may run only %s, not %s", c.Name, strings.Join(c.Functions, ", "), function))
		}
	}
	if len(c.Targets) == 0 {
		return expr, nil
	}
	parts := make([]string, len(c.Targets))
	for i, t := range c.Targets {
		parts[i] = "( " + t + " )"
	}
	limited := "( " + expr.String() + " ) and ( " + strings.Join(parts, " or ") + " )"
	e, err := target.Parse(target.KindCompound, limited, target.Options{Nodegroups: nodegroups})
	if err != nil {
		return nil, forbidden(fmt.Errorf("user %s: target limits %q: %w", c.Name, c.Targets, err))
	}
	return e, nil
}
