// Package wire holds the types that cross NATS between masters, peels and the
// operator CLI. The master never imports the peel and the peel never imports
// the master; both speak these types.
package wire

import (
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
	Target    Target          `json:"target"`
	Function  string          `json:"function"`
	Args      json.RawMessage `json:"args,omitempty"`
	Timeout   Duration        `json:"timeout,omitempty"`
	Requester string          `json:"requester,omitempty"`
	// Batch is refused by the master: rolling batches are driven by the
	// client, one job per wave (zester run --batch).
	Batch string `json:"batch,omitempty"`
	// JID, when set, is the job id the client chose (22 digits, the format
	// of the master's own ids). Sending the same request again with the same
	// JID (after a timeout: the first may have been recorded) answers with
	// that job instead of starting a second one.
	JID string `json:"jid,omitempty"`
}

// RunResponse answers a RunRequest once the job is recorded.
type RunResponse struct {
	JID string `json:"jid"`
}

// Job is a job's main record in the jobs bucket.
type Job struct {
	JID        string          `json:"jid"`
	Function   string          `json:"function"`
	Args       json.RawMessage `json:"args,omitempty"`
	Target     Target          `json:"target"`
	Requester  string          `json:"requester,omitempty"`
	Master     string          `json:"master"`
	Partitions int             `json:"partitions"`
	Timeout    Duration        `json:"timeout"`
	Created    time.Time       `json:"created"`
	Deadline   time.Time       `json:"deadline"`
	Status     string          `json:"status"`
	Expected   int             `json:"expected"`
	Returned   int             `json:"returned"`
	Failed     int             `json:"failed"`
	Missing    int             `json:"missing"`
	Finished   time.Time       `json:"finished,omitzero"`
	Error      string          `json:"error,omitempty"`
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
}

// Control ops.
const (
	// ControlRepublishFacts asks the named peels to publish their facts now
	// (their key was deleted or purged from the facts bucket).
	ControlRepublishFacts = "facts.republish"
)

// Control is a message on a partition's control subject.
type Control struct {
	Op    string   `json:"op"`
	Peels []string `json:"peels"`
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
}

// APIError is the body of a failed API call.
type APIError struct {
	Error string `json:"error"`
}

// Duration is a time.Duration that reads "5s" or a number of seconds in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
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
