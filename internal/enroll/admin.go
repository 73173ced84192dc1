package enroll

import (
	"errors"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/target"
)

// Admin operations, each on names.EnrollAdminSubject(op). They lie outside
// the master API's prefix, so only full-access principals (the admin role,
// masters) may call them.
const (
	AdminList        = "list"
	AdminAccept      = string(ActAccept)
	AdminReject      = string(ActReject)
	AdminRevoke      = string(ActRevoke)
	AdminDelete      = string(ActDelete)
	AdminTokenCreate = "token-create"
	AdminTokenList   = "token-list"
	AdminTokenDelete = "token-delete"
)

// AdminRequest is the body of an admin request.
type AdminRequest struct {
	// Targets are ids or globs (the glob language of `zester run`) of the
	// records to act on.
	Targets []string `json:"targets,omitempty"`
	// AllPending selects every pending record (accept --all-pending).
	AllPending bool `json:"all_pending,omitempty"`
	// DryRun: say what would change, change nothing (the CLI's
	// confirmation shows it).
	DryRun bool `json:"dry_run,omitempty"`
	// Expect maps id → key: act on exactly these records (Targets and
	// AllPending are then ignored), and only if they still hold these keys
	// (what the operator confirmed). At most MaxExpect entries.
	Expect map[string]string `json:"expect,omitempty"`
	// After continues a paged answer (list, dry runs): only ids after it.
	After  string `json:"after,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Requester is what the client says it is ($USER@host), for the log;
	// the decider recorded is the signer (sig.API).
	Requester string `json:"requester,omitempty"`
	// Token creation.
	Reusable bool          `json:"reusable,omitempty"`
	TokenTTL time.Duration `json:"token_ttl,omitempty"`
	Note     string        `json:"note,omitempty"`
	// TokenIDs to delete.
	TokenIDs []string `json:"token_ids,omitempty"`
}

// AdminReply is the answer to an admin request.
type AdminReply struct {
	Records []Record `json:"records,omitempty"`
	Changed []Change `json:"changed,omitempty"`
	Skipped []Skip   `json:"skipped,omitempty"`
	Tokens  []Token  `json:"tokens,omitempty"`
	// Secret is the new token (token-create only): shown once.
	Secret string `json:"secret,omitempty"`
	// By is who the master recorded as the decider.
	By    string `json:"by,omitempty"`
	Error string `json:"error,omitempty"`
	// More: the answer was cut at PageBytes; ask again with After = Last.
	More bool   `json:"more,omitempty"`
	Last string `json:"last,omitempty"`
}

// Paging of admin answers: a fleet's records do not fit one NATS message
// (a record with its claimed facts is about a kilobyte), so list and dry
// runs answer in pages of about PageBytes, and a decision acts on at most
// MaxExpect confirmed records per request.
const (
	PageBytes = 256 << 10
	MaxExpect = 500
)

// Change is one record an action changed (or would, in a dry run).
type Change struct {
	ID   string `json:"id"`
	NKey string `json:"nkey"`
	From State  `json:"from"`
	To   State  `json:"to,omitempty"` // empty: deleted
}

// Skip is one selected record an action left alone, and why.
type Skip struct {
	ID     string `json:"id"`
	State  State  `json:"state"`
	Reason string `json:"reason"`
}

// Selector picks records by the targets of a request.
type Selector struct {
	exprs      []target.Expr
	allPending bool
}

// NewSelector parses the targets (ids or globs). At least one target or
// allPending is needed: an empty selection is an error, never "everything".
func NewSelector(targets []string, allPending bool) (*Selector, error) {
	s := &Selector{allPending: allPending}
	for _, t := range targets {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("target: empty")
		}
		e, err := target.Parse(target.KindGlob, t, target.Options{})
		if err != nil {
			return nil, err
		}
		s.exprs = append(s.exprs, e)
	}
	if len(s.exprs) == 0 && !allPending {
		return nil, errors.New("no peel selected: name ids or globs (or --all-pending)")
	}
	return s, nil
}

// Match reports whether the selector picks rec.
func (s *Selector) Match(rec *Record) bool {
	if s.allPending && rec.State == StatePending {
		return true
	}
	sub := &target.MapSubject{PeelID: rec.ID}
	for _, e := range s.exprs {
		if e.Match(sub) {
			return true
		}
	}
	return false
}
