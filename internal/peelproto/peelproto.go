// Package peelproto is the peel's side of the protocol, shared by the real
// agent and the load generator's simulated peels: how a return is stored,
// how a dispatch is read, how a peel beats its presence, and how a second
// process with the same id is refused.
package peelproto

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// ReturnMsg builds the message that stores one return in job-returns. It
// carries "expected last subject sequence 0", so the store keeps exactly one
// return per job and peel: a second delivery is refused, never duplicated.
func ReturnMsg(r *wire.Return) (*nats.Msg, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode return: %w", err)
	}
	return ReturnMsgRaw(r.JID, r.Peel, r.Success, b), nil
}

// ReturnMsgRaw is ReturnMsg for an already encoded return.
func ReturnMsgRaw(jid, peel string, ok bool, body []byte) *nats.Msg {
	m := &nats.Msg{Subject: names.ReturnSubjectPrefix + names.ReturnKey(jid, peel), Data: body, Header: nats.Header{}}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	if ok {
		m.Header.Set(wire.HeaderOK, "1")
	} else {
		m.Header.Set(wire.HeaderOK, "0")
	}
	return m
}

// IsAlreadyStored tells the error of a return that is already in the store
// (a duplicate delivery): the peel treats that return as sent.
func IsAlreadyStored(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// PublishReturn stores a return and waits for JetStream's acknowledgement.
// Until ctx ends, a publish nobody answered (the stream is electing a
// leader: no responders, or a timeout) or refused because the stream's
// ingest queue is full (429, see IsTooManyRequests) is retried with
// exponential backoff and full jitter while the connection is up; one that
// timed out may have been stored, and its retry is then refused as already
// stored, which counts as sent. Any other answer from the stream (an API
// error) is final, and so is a lost connection (the caller keeps the return
// until it is back).
func PublishReturn(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) error {
	return PublishReturnPaced(ctx, js, msg, nil)
}

// PublishReturnPaced is PublishReturn with every attempt taking room in w
// and reporting its outcome there, so that a peel's concurrent returns slow
// down together when the server refuses (nil w: unpaced).
func PublishReturnPaced(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, w *Window) error {
	timeout := publishAttempt
	for attempt := 0; ; attempt++ {
		if w != nil {
			if err := w.Acquire(ctx); err != nil {
				return err
			}
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		_, err := js.PublishMsg(actx, msg)
		cancel()
		if w != nil {
			w.Done(err)
		}
		if err == nil || IsAlreadyStored(err) {
			return nil
		}
		var apiErr *jetstream.APIError
		if (errors.As(err, &apiErr) && !IsTooManyRequests(err)) || ctx.Err() != nil {
			return err
		}
		if !js.Conn().IsConnected() {
			return err // cut off from NATS: the caller spools, and delivers on reconnect
		}
		// Full jitter: a fleet whose returns failed in the same election,
		// or were refused by the same full queue, does not retry in step.
		d := publishBackoff.Delay(attempt)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
		timeout = min(2*timeout, maxPublishAttempt)
	}
}

// Bounds of PublishReturn's attempts.
const (
	publishAttempt    = time.Second
	maxPublishAttempt = 2 * time.Second
)

// publishBackoff spaces PublishReturn's retries.
var publishBackoff = backoff.New(50*time.Millisecond, time.Second)

// Addressed reports whether a dispatch is for the peel id.
func Addressed(d *wire.Dispatch, id string) bool {
	if d.All {
		return true
	}
	_, found := slices.BinarySearch(d.Peels, id)
	return found
}

// ---- presence ----
//
// A peel says it is up with a beat on core NATS, names.BeatSubject(p, id),
// every BeatInterval at most (jittered below it, so that a fleet started at
// once spreads out), at once after every (re)connect, after a random delay
// when a master asks (wire.ControlBeat), and a last one with Bye set when it
// stops cleanly. Nothing is stored: a beat costs one small message and the
// masters keep presence in memory, for the partitions they own only.

// NewInstance returns a random instance nonce for one peel process.
func NewInstance() string {
	var b [8]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// BeatMsg builds peel id's beat for partition p.
func BeatMsg(p int, id string, b wire.Beat) *nats.Msg {
	return &nats.Msg{Subject: names.BeatSubject(p, id), Data: encodeBeat(b)}
}

// ParseBeat reads a beat message: the peel id from the subject, the rest from
// the body.
func ParseBeat(subject string, data []byte) (partition int, id string, b wire.Beat, err error) {
	partition, id, ok := names.ParseBeatSubject(subject)
	if !ok {
		return 0, "", b, fmt.Errorf("beat subject %q: not zester.beat.<partition>.<peel>", subject)
	}
	if err := names.ValidateID(id); err != nil {
		return 0, "", b, fmt.Errorf("beat subject %q: %w", subject, err)
	}
	if err := decodeBeat(data, &b); err != nil {
		return 0, "", b, fmt.Errorf("beat of %s: %w", id, err)
	}
	if b.Instance == "" {
		return 0, "", b, fmt.Errorf("beat of %s: no instance", id)
	}
	return partition, id, b, nil
}

// NextBeat is the wait before the next regular beat: uniformly random in
// [0.8, 1.0) × interval. Beats thus never come more than one interval apart,
// and a fleet started in the same second drifts apart within a few beats.
func NextBeat(interval time.Duration) time.Duration {
	lo := interval - interval/5
	return lo + time.Duration(mrand.Int64N(int64(interval/5)+1))
}

// BeatDelay is the delay of an answer to a ControlBeat: uniformly random in
// [0, within), so that a partition of many peels answers spread out.
func BeatDelay(within time.Duration) time.Duration {
	if within <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(within)))
}

// ---- one process per id ----

// ErrDuplicate is returned by CheckInstance when another process holds the id.
type ErrDuplicate struct {
	Other wire.PeelInstance
	// Key is this process's own key (empty without enrollment).
	Key string
}

func (e *ErrDuplicate) Error() string {
	o := e.Other
	where := ""
	if o.Host != "" {
		where = fmt.Sprintf(" on host %s (pid %d)", o.Host, o.PID)
	}
	if o.Key != "" && o.Key == e.Key {
		// Enrolled: only the holder of the id's credentials can answer on
		// its inbox, and the masters accept one key per id, so the other
		// process holds this very key: its data_dir was copied.
		return fmt.Sprintf("another peel with id %q and this peel's own key %s is online%s, instance %s, running since %s: refusing to run a second one (its data_dir, with the key, was copied to this host: give this one its own id in peel.yaml and remove the copied peel.nk, peel.xk and peel.jwt so it enrolls with keys of its own)",
			o.ID, o.Key, where, o.Instance, o.Started.Format(time.RFC3339))
	}
	return fmt.Sprintf("another peel with id %q is online%s, instance %s, running since %s: refusing to run a second one (a cloned host? give this one its own id in peel.yaml)",
		o.ID, where, o.Instance, o.Started.Format(time.RFC3339))
}

// instanceWait bounds how long CheckInstance waits for an answer when some
// process subscribes to the id's inbox but stays silent.
const instanceWait = 2 * time.Second

// ServeInstance answers requests on the id's inbox with what self returns.
// A peel subscribes once CheckInstance found nobody else.
func ServeInstance(nc *nats.Conn, id string, self func() wire.PeelInstance) (*nats.Subscription, error) {
	return nc.Subscribe(names.PeelInbox(id), func(m *nats.Msg) {
		me := self()
		var req wire.PeelInstance
		if json.Unmarshal(m.Data, &req) == nil && req.Instance == me.Instance {
			return // our own question
		}
		b, _ := json.Marshal(me)
		m.Respond(b)
	})
}

// CheckInstance asks whether another process holds self.ID and returns an
// *ErrDuplicate when one answers. Without another subscriber the server says
// so at once, so the check costs one round trip. Two peels that start within
// that round trip both pass; the masters then flag the id from its beats
// (two instances beating alternately).
func CheckInstance(ctx context.Context, nc *nats.Conn, self wire.PeelInstance) error {
	b, _ := json.Marshal(self)
	ctx, cancel := context.WithTimeout(ctx, instanceWait)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, names.PeelInbox(self.ID), b)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return nil // a silent subscriber is no running peel
	case err != nil:
		return fmt.Errorf("instance check on %s: %w", names.PeelInbox(self.ID), err)
	}
	var other wire.PeelInstance
	if err := json.Unmarshal(m.Data, &other); err != nil {
		return fmt.Errorf("instance check: answer on %s does not decode: %w", names.PeelInbox(self.ID), err)
	}
	if other.Instance == self.Instance {
		return nil
	}
	if other.ID == "" {
		other.ID = self.ID
	}
	return &ErrDuplicate{Other: other, Key: self.Key}
}
