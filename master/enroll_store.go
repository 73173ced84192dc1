package master

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
)

// The enrollment records in the enrollments bucket: the key index (one key,
// one id), reading and writing records with compare-and-set, and the retry
// of a contended write.

// checkKeyIndex refuses a key already accepted as another id. A stale index
// entry (its id's record is gone or holds another key) does not count.
func (s *enrollService) checkKeyIndex(ctx context.Context, id, nkey string) *enroll.Refusal {
	e, err := s.kvRec.Get(ctx, names.EnrollKeyIndexKey(nkey))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return unavailable(err)
	}
	other := string(e.Value())
	if other == id {
		return nil
	}
	rec, _, err := s.record(ctx, other)
	if err != nil {
		return unavailable(err)
	}
	if rec != nil && rec.NKey == nkey {
		return enroll.Refuse(enroll.CodeKeyInUse, "key %s is enrolled as peel %q (%s); one key names one peel: %q cannot use it", nkey, other, rec.State, id)
	}
	return nil
}

func (s *enrollService) bindKey(ctx context.Context, id, nkey string) {
	if _, err := s.kvRec.Put(ctx, names.EnrollKeyIndexKey(nkey), []byte(id)); err != nil {
		s.log.Warn("key index not written", "peel", id, "err", err)
	}
}

func (s *enrollService) unbindKey(ctx context.Context, id, nkey string) {
	e, err := s.kvRec.Get(ctx, names.EnrollKeyIndexKey(nkey))
	if err != nil || string(e.Value()) != id {
		return
	}
	s.kvRec.Delete(ctx, names.EnrollKeyIndexKey(nkey), jetstream.LastRevision(e.Revision()))
}

// record reads a peel's record (nil when there is none).
func (s *enrollService) record(ctx context.Context, id string) (*enroll.Record, uint64, error) {
	e, err := s.kvRec.Get(ctx, names.EnrollRecordKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var r enroll.Record
	if err := r.Decode(id, e.Value()); err != nil {
		return nil, 0, err
	}
	return &r, e.Revision(), nil
}

// putRecord creates (exists false) or updates at revision rev.
func (s *enrollService) putRecord(ctx context.Context, r *enroll.Record, exists bool, rev uint64) error {
	b, _ := json.Marshal(r)
	var err error
	if exists {
		_, err = s.kvRec.Update(ctx, names.EnrollRecordKey(r.ID), b, rev)
	} else {
		_, err = s.kvRec.Create(ctx, names.EnrollRecordKey(r.ID), b)
	}
	return err
}

func isCASConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// casRetry paces the retries of a contended compare-and-set.
var casRetry = backoff.New(time.Millisecond, 256*time.Millisecond)

// jitterSleep waits before retry attempt n (0-based) of a contended
// compare-and-set.
func jitterSleep(n int) { time.Sleep(casRetry.Delay(n)) }
