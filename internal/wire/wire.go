// Package wire holds the types that cross NATS between masters, peels and the
// operator CLI. The master never imports the peel and the peel never imports
// the master; both speak these types.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Job statuses. A job moves pending → running → done | partial | timed-out.
const (
	StatusPending  = "pending"
	StatusRunning  = "running"
	StatusDone     = "done"
	StatusPartial  = "partial"
	StatusTimedOut = "timed-out"
)

// Final reports whether a status is terminal.
func Final(status string) bool {
	switch status {
	case StatusDone, StatusPartial, StatusTimedOut:
		return true
	}
	return false
}

// Target is an unparsed target expression and its kind ("" glob, "list",
// "pcre", "fact", "factpcre", "ipcidr", "nodegroup", "compound").
type Target struct {
	Kind string `json:"kind,omitempty"`
	Expr string `json:"expr"`
}

// RunRequest is what the CLI sends to the master's job.run endpoint.
type RunRequest struct {
	Target   Target          `json:"target"`
	Function string          `json:"function"`
	Args     json.RawMessage `json:"args,omitempty"`
	Timeout  Duration        `json:"timeout,omitempty"`
	// Requester is the client's own account of who asks ($USER@host). The
	// master records it only in insecure mode, as Job.Claimed: a secure
	// master takes the identity from the request's signature.
	Requester string `json:"requester,omitempty"`
	// Batch is refused by the master: rolling batches are driven by the
	// client, one job per wave (zester run --batch).
	Batch string `json:"batch,omitempty"`
	// JID, when set, is the job id the client chose (names.NewJID). A
	// request sent again with the same JID and the same content answers
	// with that job instead of creating a second one, so a client may
	// resend after a timeout without running the job twice.
	JID string `json:"jid,omitempty"`
}

// RunResponse answers a RunRequest once the job is recorded.
type RunResponse struct {
	JID string `json:"jid"`
}

// Job is a job's main record in the jobs bucket.
type Job struct {
	JID      string          `json:"jid"`
	Function string          `json:"function"`
	Args     json.RawMessage `json:"args,omitempty"`
	Target   Target          `json:"target"`
	// Requester is who asked, as the master authenticated them: the name
	// in the caller's user JWT ("unauthenticated" in insecure mode), with
	// its key and role. Claimed is what an unauthenticated client said it
	// was (insecure mode only; nothing checks it).
	Requester     string `json:"requester,omitempty"`
	RequesterKey  string `json:"requester_key,omitempty"`
	RequesterRole string `json:"requester_role,omitempty"`
	Claimed       string `json:"claimed_requester,omitempty"`
	// AskedTarget is the target as the caller gave it when the caller's
	// target limits narrowed it: Target is then what the masters resolve,
	// the intersection of the two.
	AskedTarget *Target   `json:"asked_target,omitempty"`
	Master      string    `json:"master"`
	Partitions  int       `json:"partitions"`
	Timeout     Duration  `json:"timeout"`
	Created     time.Time `json:"created"`
	Deadline    time.Time `json:"deadline"`
	Status      string    `json:"status"`
	Expected    int       `json:"expected"`
	Returned    int       `json:"returned"`
	Failed      int       `json:"failed"`
	Missing     int       `json:"missing"`
	Finished    time.Time `json:"finished,omitzero"`
	Error       string    `json:"error,omitempty"`

	// Offline counts the targeted peels that were offline when the job
	// started: the job was not sent to them and did not wait for them.
	// Expected does not include them.
	Offline int `json:"offline,omitempty"`

	// StateTree is the state-tree version (docs/states.md) current when a
	// job of a state function was created: every peel of the job, and
	// every redispatch, runs that version of the masters' tree.
	StateTree string `json:"state_tree,omitempty"`
}

// JobPart is the share of a job that one partition holds: its expected
// peels and, once the part is finished, its outcome. The master owning the
// partition writes it.
type JobPart struct {
	JID       string    `json:"jid"`
	Partition int       `json:"partition"`
	Master    string    `json:"master"`
	Expected  []string  `json:"expected"`
	Status    string    `json:"status"` // running, done, partial, timed-out
	Returned  int       `json:"returned"`
	Failed    int       `json:"failed"`
	Missing   []string  `json:"missing,omitempty"`
	Finished  time.Time `json:"finished,omitzero"`

	// Offline lists the targeted peels of the partition that were offline
	// when the part was resolved; they are not in Expected.
	Offline []string `json:"offline,omitempty"`
}

// Dispatch is a job as published to the peels of one partition.
type Dispatch struct {
	JID      string          `json:"jid"`
	Function string          `json:"fn"`
	Args     json.RawMessage `json:"args,omitempty"`
	// All means every peel of the partition; otherwise Peels lists the ids.
	All      bool      `json:"all,omitempty"`
	Peels    []string  `json:"peels,omitempty"`
	Deadline time.Time `json:"deadline"`
	// Role is the verified role of the job's requester ("" when nobody
	// was authenticated); the master's signature covers it. settings.get
	// reveals secrets only to a role that may (admin).
	Role string `json:"role,omitempty"`
	// StateTree pins the masters' state tree version the job runs
	// (Job.StateTree); "" the current one.
	StateTree string `json:"state_tree,omitempty"`
}

// Control ops.
const (
	// ControlRepublishFacts asks the named peels to publish their facts now
	// (their key was deleted or purged from the facts bucket).
	ControlRepublishFacts = "facts.republish"
	// ControlBeat asks every peel of the partition to send a presence beat
	// now, each after a random delay below Within: a master that just
	// gained the partition learns who is up.
	ControlBeat = "presence.beat"
)

// Control is a message on a partition's control subject.
type Control struct {
	Op    string   `json:"op"`
	Peels []string `json:"peels"`
	// Within bounds the random delay of a ControlBeat answer.
	Within Duration `json:"within,omitempty"`
}

// Beat is a peel's presence beat, published on names.BeatSubject (core
// NATS, never stored). The subject carries the peel id.
type Beat struct {
	// Instance is random per peel process: two instances with the same id
	// beating at once are two hosts claiming one id.
	Instance string `json:"i"`
	// Bye is the last beat of a peel that stops cleanly.
	Bye bool `json:"bye,omitempty"`
	// Interval is the peel's beat interval: beats come at most this far
	// apart while it is up.
	Interval Duration `json:"iv,omitempty"`
	// Conn counts the peel process's connections: 1 on the first, one
	// more at each reconnect. A master sends a job again only to the
	// waiting peels whose connection changed since it sent the job (the
	// others were connected all along and got it); 0, from a peel that
	// does not say, is taken as "may have missed it".
	Conn uint32 `json:"c,omitempty"`
}

// PeelInstance is a peel's answer on names.PeelInbox: which process holds
// the id. A starting peel sends its own as the request.
type PeelInstance struct {
	ID       string    `json:"id"`
	Instance string    `json:"instance"`
	Started  time.Time `json:"started"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	// Key is the enrolled peel's public nkey (empty without enrollment).
	Key string `json:"key,omitempty"`
}

// Presence states of a peel, as its owning master sees it.
const (
	PresenceOnline  = "online"
	PresenceOffline = "offline"
)

// Fact states of a peel in `zester peels`.
const (
	FactsOK  = "ok"
	FactsBad = "bad" // the stored value does not decode or names another peel; republish asked
)

// PeelPresence is what the owning master knows of one peel's liveness.
type PeelPresence struct {
	ID string `json:"id"`
	// State is online, offline, or "" while a master that just gained the
	// partition has not heard the peel yet (takeover_grace).
	State string `json:"state"`
	// LastSeen is the last beat this master heard (zero: none since it
	// owns the partition).
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Duplicate: two instances beat with this id recently.
	Duplicate bool `json:"duplicate,omitempty"`
	// Facts is "" when the master has no facts entry for the peel.
	Facts      string `json:"facts,omitempty"`
	FactsError string `json:"facts_error,omitempty"`
}

// PresenceReply is one master's answer on the presence endpoint, in one or
// more messages: Last is set on the final one.
type PresenceReply struct {
	Master string         `json:"master"`
	Owned  []int          `json:"owned"`
	Peels  []PeelPresence `json:"peels"`
	Last   bool           `json:"last"`
}

// Error is an error that crosses the wire, with a code.
type Error struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

// Return is one peel's answer to one job, stored in job-returns.
type Return struct {
	JID      string          `json:"jid"`
	Peel     string          `json:"peel"`
	Function string          `json:"fn"`
	Success  bool            `json:"success"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *Error          `json:"error,omitempty"`
	Started  time.Time       `json:"started"`
	Duration Duration        `json:"duration"`
	// Late is set by the peel when the function finished after the job's
	// deadline (the peel was paused or overloaded): the result is real, but
	// the masters may already have given up on this peel.
	Late bool `json:"late,omitempty"`
}

// Event is one entry of the job-events stream.
type Event struct {
	JID    string    `json:"jid,omitempty"`
	Kind   string    `json:"kind"`
	Time   time.Time `json:"time"`
	Master string    `json:"master,omitempty"`
	Peel   string    `json:"peel,omitempty"`
	Status string    `json:"status,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// MasterRecord is a master's heartbeat in master-heartbeat.
type MasterRecord struct {
	ID         string    `json:"id"`
	Host       string    `json:"host"`
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	Beat       time.Time `json:"beat"`
	Partitions int       `json:"partitions"`
	Owned      []int     `json:"owned"`
	Load       Load      `json:"load"`
}

// Load is what a master reports of its work.
type Load struct {
	Peels      int `json:"peels"`
	ActiveJobs int `json:"active_jobs"`
}

// Info is the answer of the master API's info endpoint.
type Info struct {
	Master     string            `json:"master"`
	Version    string            `json:"version"`
	Partitions int               `json:"partitions"`
	Nodegroups map[string]string `json:"nodegroups,omitempty"`
	MaxArgs    int64             `json:"max_args"`
}

// PeelSummary is one row of `zester peels`.
type PeelSummary struct {
	ID        string    `json:"id"`
	Partition int       `json:"partition"`
	OS        string    `json:"os,omitempty"`
	Kernel    string    `json:"kernel,omitempty"`
	Arch      string    `json:"arch,omitempty"`
	Updated   time.Time `json:"updated"`
	Master    string    `json:"master"`

	// State is online, offline, or "" when unknown: no master answered
	// for the peel's partition, or its master just took it over.
	State      string    `json:"state,omitempty"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	Facts      string    `json:"facts,omitempty"`
	FactsError string    `json:"facts_error,omitempty"`
}

// APIError is the body of a failed API call.
type APIError struct {
	Error string `json:"error"`
}

// Duration is a time.Duration that reads "5s" or a number of seconds in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	// Fast path for a plain quoted string, the form MarshalJSON writes:
	// masters decode one in every presence beat.
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && bytes.IndexByte(b[1:n-1], '\\') < 0 && bytes.IndexByte(b[1:n-1], '"') < 0 {
		p, err := time.ParseDuration(string(b[1 : n-1]))
		if err != nil {
			return fmt.Errorf("duration %q: %w", b[1:n-1], err)
		}
		*d = Duration(p)
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		*d = Duration(x * float64(time.Second))
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("duration %q: %w", x, err)
		}
		*d = Duration(p)
	case nil:
		*d = 0
	default:
		return fmt.Errorf("duration: want a string like \"5s\" or seconds, got %s", b)
	}
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// HeaderOK is set on every stored return: "1" when the function succeeded.
// Masters read returns headers-only, so this is all they need to count.
const HeaderOK = "Zester-Ok"
