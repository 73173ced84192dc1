// Package peelproto is the peel's side of the protocol, shared by the real
// agent and the load generator's simulated peels: how a return is stored and
// how a dispatch is read.
package peelproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
// leader: no responders, or a timeout) is retried with exponential backoff
// and full jitter while the connection is up; one that timed out may have
// been stored, and its retry is then refused as already stored, which counts
// as sent. An answer from the stream (an API error) is final, and so is a
// lost connection (the caller keeps the return until it is back).
func PublishReturn(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) error {
	timeout := publishAttempt
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		_, err := js.PublishMsg(actx, msg)
		cancel()
		if err == nil || IsAlreadyStored(err) {
			return nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) || ctx.Err() != nil {
			return err
		}
		if !js.Conn().IsConnected() {
			return err // cut off from NATS: the caller spools, and delivers on reconnect
		}
		// Full jitter: a fleet whose returns failed in the same election
		// does not retry in step.
		d := time.Duration(rand.Int64N(int64(min(publishRetryCap, publishRetryBase<<min(attempt, 20))) + 1))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
		timeout = min(2*timeout, maxPublishAttempt)
	}
}

// Bounds of PublishReturn's attempts (a local loop until the shared
// internal/backoff package lands).
const (
	publishAttempt    = time.Second
	maxPublishAttempt = 2 * time.Second
	publishRetryBase  = 50 * time.Millisecond
	publishRetryCap   = time.Second
)

// Addressed reports whether a dispatch is for the peel id.
func Addressed(d *wire.Dispatch, id string) bool {
	if d.All {
		return true
	}
	_, found := slices.BinarySearch(d.Peels, id)
	return found
}
