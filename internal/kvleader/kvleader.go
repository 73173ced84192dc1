// Package kvleader reads a KV key so that "not found" can be trusted right
// after a write.
//
// Every Zester bucket allows direct gets, and nats.go's KeyValue.Get is one:
// any replica of the bucket's stream may answer it, also a follower that is
// still catching up after a restart or after the cluster got its quorum
// back, and that follower answers "no message" for a key the leader
// acknowledged long ago (nats-server subscribes a replica to direct gets
// once it is ~90% synchronised, and never unsubscribes it when it falls
// behind). Ephemeral R1 consumers, which kvwatch reads through, are placed
// on any peer current with the meta group, not with the stream, so a fresh
// consumer can miss the key the same way. The stream message get
// ($JS.API.STREAM.MSG.GET, names.JSMsgGet) is answered by the stream leader
// only, and the leader holds every acknowledged write: its not-found is
// final. It needs a leader, so it waits out an election, where a direct
// get would not.
package kvleader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
)

// Entry is a key's last value as the stream leader has it.
type Entry struct {
	Value    []byte
	Revision uint64
}

// msgGetResponse is the answer of $JS.API.STREAM.MSG.GET (nats-server's
// JSApiMsgGetResponse).
type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Subject  string `json:"subject"`
		Sequence uint64 `json:"seq"`
		Header   []byte `json:"hdrs,omitempty"`
		Data     []byte `json:"data,omitempty"`
	} `json:"message,omitempty"`
}

// Get asks bucket's stream leader for key's last value. It returns
// jetstream.ErrKeyNotFound when the key has none (never written, deleted or
// purged), an error wrapping jetstream.ErrStreamNotFound when the bucket
// does not exist, the server's *jetstream.APIError for other refusals, and
// the request's error (a timeout while there is no leader) otherwise.
func Get(ctx context.Context, nc *nats.Conn, bucket, key string) (*Entry, error) {
	if err := names.ValidateKVKey(key); err != nil {
		return nil, fmt.Errorf("%w: %v", jetstream.ErrInvalidKey, err)
	}
	req, _ := json.Marshal(map[string]string{"last_by_subj": names.KVSubjectPrefix(bucket) + key})
	msg, err := nc.RequestWithContext(ctx, names.JSMsgGet(names.KVStream(bucket)), req)
	if err != nil {
		return nil, fmt.Errorf("leader get of %s key %s: %w", bucket, key, err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("leader get of %s key %s: bad answer %.200q: %w", bucket, key, msg.Data, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, jetstream.ErrKeyNotFound
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound:
		return nil, fmt.Errorf("leader get of %s key %s: %w", bucket, key, jetstream.ErrStreamNotFound)
	case resp.Error != nil:
		return nil, fmt.Errorf("leader get of %s key %s: %w", bucket, key, resp.Error)
	case resp.Message == nil:
		return nil, fmt.Errorf("leader get of %s key %s: answer without a message: %.200q", bucket, key, msg.Data)
	}
	m := resp.Message
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return nil, fmt.Errorf("leader get of %s key %s: headers: %w", bucket, key, err)
		}
		if op := h.Get(names.HeaderKVOperation); op == names.KVOpDelete || op == names.KVOpPurge {
			return nil, jetstream.ErrKeyNotFound
		}
	}
	return &Entry{Value: m.Data, Revision: m.Sequence}, nil
}

// Read returns key's last value from kv: a direct get first (cheap, any
// replica), and when that says not found, the stream leader's answer, so a
// not-found from Read is final.
func Read(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key string) (*Entry, error) {
	e, err := kv.Get(ctx, key)
	if err == nil {
		return &Entry{Value: e.Value(), Revision: e.Revision()}, nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, err
	}
	return Get(ctx, nc, kv.Bucket(), key)
}
