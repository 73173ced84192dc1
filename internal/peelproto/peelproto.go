// Package peelproto is the peel's side of the protocol, shared by the real
// agent and the load generator's simulated peels: how a return is stored and
// how a dispatch is read.
package peelproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
func PublishReturn(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) error {
	_, err := js.PublishMsg(ctx, msg)
	if err != nil && IsAlreadyStored(err) {
		return nil
	}
	return err
}

// Addressed reports whether a dispatch is for the peel id.
func Addressed(d *wire.Dispatch, id string) bool {
	if d.All {
		return true
	}
	_, found := slices.BinarySearch(d.Peels, id)
	return found
}
