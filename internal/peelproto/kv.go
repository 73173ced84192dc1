package peelproto

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
)

// KV access without binding a bucket. nats.go's KeyValue handle asks for
// the bucket's stream info first, and stream info with a subjects filter
// lists every key of the bucket: a peel's credentials grant no stream info
// (docs/security.md), so the peel writes its keys with plain JetStream
// publishes to the key's subject, which is all a KV put is, and reads with a
// direct get whose subject carries the key, the one read grant that opens
// exactly that key.

// ErrKeyNotFound is GetKV's error for a key that has no value (never
// written, deleted or purged).
var ErrKeyNotFound = jetstream.ErrKeyNotFound

// PutKV stores value under key in bucket and returns its revision.
func PutKV(ctx context.Context, js jetstream.JetStream, bucket, key string, value []byte) (uint64, error) {
	ack, err := js.Publish(ctx, names.KVSubjectPrefix(bucket)+key, value)
	if err != nil {
		return 0, fmt.Errorf("put %s %s: %w", bucket, key, err)
	}
	return ack.Sequence, nil
}

// GetKV reads the last value of key in bucket with a direct get
// (names.JSDirectGetKey). The bucket must allow direct gets, as every
// bucket the masters create does.
func GetKV(ctx context.Context, nc *nats.Conn, bucket, key string) ([]byte, uint64, error) {
	m, err := nc.RequestWithContext(ctx, names.JSDirectGetKey(bucket, key), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("get %s %s: %w", bucket, key, err)
	}
	if len(m.Data) == 0 {
		switch m.Header.Get("Status") {
		case "":
		case "404":
			return nil, 0, fmt.Errorf("get %s %s: %w", bucket, key, ErrKeyNotFound)
		default:
			return nil, 0, fmt.Errorf("get %s %s: %s %s", bucket, key, m.Header.Get("Status"), m.Header.Get("Description"))
		}
	}
	switch m.Header.Get(names.HeaderKVOperation) {
	case names.KVOpDelete, names.KVOpPurge:
		return nil, 0, fmt.Errorf("get %s %s: %w", bucket, key, ErrKeyNotFound)
	}
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("get %s %s: answer without a sequence: %w", bucket, key, errors.Join(err, errors.New(m.Header.Get("Status"))))
	}
	return m.Data, seq, nil
}
