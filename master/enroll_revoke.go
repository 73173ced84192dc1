package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
)

// Revocation: the shared list of revoked keys in enrollments, merged by every
// master into its account JWT and handed to the NATS servers.

// revoke adds nkey to the shared revocation list (compare-and-set) and
// waits until this master has handed the re-signed account JWT to the
// servers.
func (s *enrollService) revoke(ctx context.Context, nkey string, now time.Time) error {
	at := now.Unix()
	var wrote uint64
	for attempt := 0; ; attempt++ {
		revs := map[string]int64{}
		var rev uint64
		e, err := s.kvRec.Get(ctx, names.EnrollRevocationsKey)
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &revs); err != nil {
				return fmt.Errorf("%s: %w", names.EnrollRevocationsKey, err)
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return err
		}
		if cur, ok := revs[nkey]; ok && cur >= at {
			wrote = rev
			break
		}
		revs[nkey] = at
		b, _ := json.Marshal(revs)
		if rev == 0 {
			wrote, err = s.kvRec.Create(ctx, names.EnrollRevocationsKey, b)
		} else {
			wrote, err = s.kvRec.Update(ctx, names.EnrollRevocationsKey, b, rev)
		}
		if err == nil {
			break
		}
		if !isCASConflict(err) || attempt >= 20 {
			return fmt.Errorf("revocation list: %w", err)
		}
		jitterSleep(attempt)
	}
	return s.waitApplied(ctx, wrote)
}

func (s *enrollService) waitApplied(ctx context.Context, rev uint64) error {
	for {
		s.revMu.Lock()
		applied, err, ch := s.revApplied, s.revErr, s.revChanged
		s.revMu.Unlock()
		if applied >= rev {
			if err != nil {
				return fmt.Errorf("the revocation is recorded, but the servers were not told: %w", err)
			}
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("revocation not applied: %w", ctx.Err())
		}
	}
}

func (s *enrollService) setApplied(rev uint64, err error) {
	s.revMu.Lock()
	s.revApplied, s.revErr = rev, err
	close(s.revChanged)
	s.revChanged = make(chan struct{})
	s.revMu.Unlock()
}

// watchRevocations follows the shared revocation list: every change is
// merged into this master's account JWT and handed to the servers. The
// current JWT is handed to them once at start too (a server restarted from a
// configuration written before a revocation lacks it).
func (s *enrollService) watchRevocations(ctx context.Context) error {
	w, err := kvwatch.Watch(context.Background(), s.m.js, names.BucketEnrollments, kvwatch.Options{
		Filters: []string{names.EnrollRevocationsKey},
		OnError: s.m.watchErr(names.BucketEnrollments),
		Monitor: s.m.watches,
	})
	if err != nil {
		return fmt.Errorf("enroll: watch revocations: %w", err)
	}
	go func() {
		<-s.quit
		w.Stop()
	}()
	go func() {
		first := true
		for {
			var e *kvwatch.Entry
			select {
			case <-s.quit:
				return
			case e = <-w.Updates():
			}
			if e == nil {
				if first {
					first = false
					s.setApplied(0, s.apply())
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var revs map[string]int64
			if err := json.Unmarshal(e.Value(), &revs); err != nil {
				s.log.Error("revocation list unreadable", "err", err)
				s.setApplied(e.Revision(), err)
				continue
			}
			_, changed, err := s.p.MergeRevocations(revs)
			if err == nil && (changed || first) {
				err = s.apply()
			}
			first = false
			if err != nil {
				s.log.Error("revocations not applied", "err", err)
			} else if changed {
				s.log.Info("revocations applied", "keys", len(revs))
			}
			s.setApplied(e.Revision(), err)
		}
	}()
	return nil
}

// reapply hands the account JWT to the servers again (after a reconnect:
// a restarted server may have come up without the revocations).
func (s *enrollService) reapply() {
	if err := s.apply(); err != nil {
		s.log.Warn("account JWT not re-applied after reconnect", "err", err)
	}
}

var errNoSysCreds = errors.New("no sys.creds in the PKI directory: servers that the master does not embed learn of revocations only when their configuration is reloaded (zester pki server-config)")

// apply gives the servers this master's current account JWT: the embedded
// server directly, others through the system account.
func (s *enrollService) apply() error {
	if emb := s.m.embedded; emb != nil {
		return s.p.ApplyAccount(emb.NATS())
	}
	nc, err := s.sysConn()
	if err != nil {
		return err
	}
	_, tok := s.p.Account()
	msg, err := nc.Request(names.SysAccountClaimsUpdate(s.p.AccountKey()), []byte(tok), 5*time.Second)
	if err != nil {
		return fmt.Errorf("push account JWT: %w", err)
	}
	var resp struct {
		Data  *struct{ Message string } `json:"data"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("push account JWT: answer: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("push account JWT: %s", resp.Error.Description)
	}
	return nil
}

func (s *enrollService) sysConn() (*nats.Conn, error) {
	s.sysMu.Lock()
	defer s.sysMu.Unlock()
	if s.sysNC != nil && !s.sysNC.IsClosed() {
		return s.sysNC, nil
	}
	creds := s.p.SysCreds()
	if creds == "" {
		if !s.warnedNoSys.Swap(true) {
			s.log.Warn(errNoSysCreds.Error())
		}
		return nil, errNoSysCreds
	}
	nc, err := nats.Connect(s.m.cfg.NATS.URL.String(), nats.Name("zester-master "+s.m.cfg.ID+" (system)"),
		nats.UserCredentials(creds), nats.MaxReconnects(-1), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect as the system user: %w", err)
	}
	s.sysNC = nc
	return nc, nil
}
