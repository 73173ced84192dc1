package enroll

import "time"

// Event is one enrollment audit event, stored in the job-events stream on
// names.EnrollEventSubject(peel, kind): every decision (who, how, from which
// state to which), every request, issuance and renewal, and the refusals
// that matter to security (conflicts, bad signatures, replays, bad tokens).
type Event struct {
	Kind   string    `json:"kind"`
	Time   time.Time `json:"time"`
	Master string    `json:"master"`
	Peel   string    `json:"peel"`
	NKey   string    `json:"nkey,omitempty"`
	From   State     `json:"from,omitempty"`
	To     State     `json:"to,omitempty"`
	// By is who decided: an authenticated user ("admin (UAB…)") when
	// Verified, else what the client said, or "policy"/"token" for an
	// automatic acceptance.
	By       string `json:"by,omitempty"`
	Verified bool   `json:"verified,omitempty"`
	Via      string `json:"via,omitempty"`
	Code     string `json:"code,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// Event kinds.
const (
	EvRequested    = "requested"
	EvAccepted     = "accepted"
	EvRejected     = "rejected"
	EvRevoked      = "revoked"
	EvDeleted      = "deleted"
	EvIssued       = "issued"
	EvRenewed      = "renewed"
	EvRefused      = "refused"
	EvTokenCreated = "token.created"
	EvTokenDeleted = "token.deleted"
)

// KindOf is the event kind of a decision's new state.
func KindOf(to State) string {
	switch to {
	case StateAccepted:
		return EvAccepted
	case StateRejected:
		return EvRejected
	case StateRevoked:
		return EvRevoked
	case "":
		return EvDeleted
	}
	return EvRequested
}
