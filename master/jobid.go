package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/kvleader"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// answerTakenJID answers a job.run whose client-chosen jid already has a
// record. The client sends a request again, with the same jid, when it got
// no answer to the first (a timeout, an election, a master that died after
// recording the job), so the record is most likely that first request's:
// then the answer is that job, and resending never creates a second one.
// A record of a different request means two clients drew the same jid; the
// client then draws a new one (409). The record is created with Create, so
// whichever request got there first owns the jid.
func (m *Master) answerTakenJID(ctx context.Context, req micro.Request, want *wire.Job) {
	var val []byte
	e, err := getWithin(ctx, m.kvJobs, names.JobKey(want.JID))
	if err == nil {
		val = e.Value()
	} else if errors.Is(err, jetstream.ErrKeyNotFound) {
		// The stream leader refused the Create: the record is stored, or a
		// write of it is still in flight there (nats-server refuses an
		// expected-last-sequence write to a subject with a proposal in
		// flight). A direct get answered by a replica that lags behind
		// (catching up after a restart or a quorum loss) may miss a stored
		// record: ask the leader. A record in flight is answered 503, and
		// the client asks again.
		var le *kvleader.Entry
		le, err = kvleader.Get(ctx, m.nc, names.BucketJobs, names.JobKey(want.JID))
		if err == nil {
			val = le.Value
		} else if errors.Is(err, jetstream.ErrKeyNotFound) {
			err = fmt.Errorf("not stored at the stream leader yet, a write of it is in flight (%w)", err)
		}
	}
	if err != nil {
		m.met.errors.Inc()
		respondErr(req, "503", fmt.Errorf("jid %s exists but its record cannot be read: %w", want.JID, err))
		return
	}
	var have wire.Job
	if err := json.Unmarshal(val, &have); err != nil {
		respondErr(req, "409", fmt.Errorf("jid %s: taken by a record that does not decode: %w", want.JID, err))
		return
	}
	if !sameRequest(&have, want) {
		respondErr(req, "409", errors.New("jid "+want.JID+": taken by another job; submit with a new jid"))
		return
	}
	respondJSON(req, wire.RunResponse{JID: have.JID})
}

// sameRequest reports whether two job records come from the same run
// request (the fields a client sends, and who the master found it came
// from: another user's request with the same jid is another job).
func sameRequest(a, b *wire.Job) bool {
	return a.JID == b.JID && a.Function == b.Function && a.Target == b.Target &&
		a.Requester == b.Requester && a.RequesterKey == b.RequesterKey && a.Claimed == b.Claimed &&
		a.Timeout == b.Timeout && bytes.Equal(a.Args, b.Args)
}
