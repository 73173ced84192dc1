package enroll

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is where a peel's enrollment record stands.
type State string

// States. A record moves pending → accepted | rejected, accepted → revoked;
// an operator may accept a rejected record; revoked is final until the
// record is deleted (the peel may then ask again, ideally with a new key).
const (
	StatePending  State = "pending"
	StateAccepted State = "accepted"
	StateRejected State = "rejected"
	StateRevoked  State = "revoked"
)

// Record is a peel's entry in the enrollments bucket (key: its id). Every
// change is a new revision; the bucket keeps 10, the audit trail of the
// record, beside the events in job-events.
type Record struct {
	ID    string `json:"id"`
	State State  `json:"state"`
	// NKey and Curve are the peel's public keys.
	NKey  string `json:"nkey"`
	Curve string `json:"curve"`
	// Facts are what the peel claimed with its request (not verified).
	Facts map[string]any `json:"facts_claimed,omitempty"`
	// PeelVersion is the version the peel reported.
	PeelVersion string    `json:"peel_version,omitempty"`
	Requested   time.Time `json:"requested"`
	// Decided, DecidedBy, Verified and Via describe the last decision: when,
	// who (an authenticated user name and key when Verified, else what the
	// client said), and how (manual, auto_accept: <target>, token <id>).
	Decided   time.Time `json:"decided,omitzero"`
	DecidedBy string    `json:"decided_by,omitempty"`
	Verified  bool      `json:"verified,omitempty"`
	Via       string    `json:"via,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// Issued and Expires describe the last user JWT issued to the peel.
	Issued  time.Time `json:"issued,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
}

// Decode decodes a stored record and checks that it is one.
func (r *Record) Decode(key string, b []byte) error {
	if err := json.Unmarshal(b, r); err != nil {
		return fmt.Errorf("enrollment record %s: %w", key, err)
	}
	if r.ID != key {
		return fmt.Errorf("enrollment record %s: names peel %q", key, r.ID)
	}
	switch r.State {
	case StatePending, StateAccepted, StateRejected, StateRevoked:
	default:
		return fmt.Errorf("enrollment record %s: state %q", key, r.State)
	}
	return nil
}

// Action is an operator's decision on a record.
type Action string

// Actions of `zester enroll`.
const (
	ActAccept Action = "accept"
	ActReject Action = "reject"
	ActRevoke Action = "revoke"
	ActDelete Action = "delete"
)

// ParseAction parses an action name.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActAccept, ActReject, ActRevoke, ActDelete:
		return a, nil
	}
	return "", fmt.Errorf("action %q: want accept, reject, revoke or delete", s)
}

// Transition says what action does to a record in state from: the new state
// (empty for delete), whether the peel's key must be revoked in the account
// JWT first, or why the action does not apply. It is the one table of
// operator decisions.
func Transition(from State, a Action) (to State, revokeKey bool, err error) {
	switch a {
	case ActAccept:
		switch from {
		case StatePending, StateRejected:
			return StateAccepted, false, nil
		case StateAccepted:
			return "", false, errNoop
		case StateRevoked:
			return "", false, fmt.Errorf("revoked: its key may be compromised; delete the record and let the peel enroll again (with a new key)")
		}
	case ActReject:
		switch from {
		case StatePending:
			return StateRejected, false, nil
		case StateRejected:
			return "", false, errNoop
		case StateAccepted:
			return "", false, fmt.Errorf("accepted: revoke it instead (that cuts off its credentials)")
		case StateRevoked:
			return "", false, errNoop
		}
	case ActRevoke:
		switch from {
		case StateAccepted:
			return StateRevoked, true, nil
		case StateRevoked:
			return "", false, errNoop
		case StatePending, StateRejected:
			return "", false, fmt.Errorf("%s: never accepted, nothing to revoke (reject or delete it)", from)
		}
	case ActDelete:
		// Deleting an accepted record revokes its key too: otherwise its
		// credentials would keep working until they expire.
		return "", from == StateAccepted, nil
	}
	return "", false, fmt.Errorf("action %q on state %q: unknown", a, from)
}

// errNoop is a decision that changes nothing (already in that state).
var errNoop = noopError{}

type noopError struct{}

func (noopError) Error() string { return "already so" }

// IsNoop reports whether a Transition error means "nothing to do".
func IsNoop(err error) bool { _, ok := err.(noopError); return ok }
