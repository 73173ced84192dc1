package master

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

// What the settings show outside the renderer: a peel's masked settings
// (I@ targeting), the settings events, and `zester settings refresh`.

// masked returns a peel's masked settings as last rendered (nil when
// none): what I@ matches. A peel this process found current and did not
// compile is compiled now (once; its entries are current, so nothing is
// written).
func (s *settingsRenderer) masked(id string) map[string]any {
	s.mu.Lock()
	ps := s.peels[id]
	var b []byte
	if ps != nil {
		b = ps.masked
	}
	s.mu.Unlock()
	if ps == nil {
		s.treeMu.RLock()
		lt := s.cur
		s.treeMu.RUnlock()
		if lt != nil {
			if _, _, err := s.renderOne(context.Background(), lt, id, compileOnly); err == nil {
				s.mu.Lock()
				if ps = s.peels[id]; ps != nil {
					b = ps.masked
				}
				s.mu.Unlock()
			}
		}
	}
	if b == nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// event records a settings event in job-events.
func (s *settingsRenderer) event(kind, peel, detail string) {
	ev := wire.Event{Kind: kind, Master: s.m.cfg.ID, Peel: peel, Time: time.Now().UTC(), Detail: detail}
	b, _ := json.Marshal(ev)
	if _, err := s.m.js.PublishAsync(names.SettingsEventSubject(kind), b); err != nil {
		s.m.met.errors.Inc()
		s.log.Warn("settings event not recorded", "kind", kind, "err", err)
	}
}

// refresh is zester settings refresh: reload the tree and render the
// owned peels tgt selects (all when nil), now.
func (s *settingsRenderer) refresh(ctx context.Context, tgt target.Expr) wire.SettingsRefreshReply {
	r := wire.SettingsRefreshReply{Master: s.m.cfg.ID, Owned: s.m.member.ownedList()}
	if _, err := s.reload("refresh"); err != nil {
		r.Tree = err.Error()
	}
	var ids []string
	for _, p := range r.Owned {
		if tgt == nil {
			ids = append(ids, s.m.index.ids(p)...)
		} else {
			ids = append(ids, s.m.index.resolve(p, tgt)...)
		}
	}
	r.Peels = len(ids)
	st := s.renderBatch(ctx, ids, renderAlways)
	r.Rendered, r.Written, r.Failed, r.Errors = st.rendered, st.written, st.failed, st.errors
	return r
}

// apiSettingsRefresh serves zester settings refresh (operator, admin).
func (m *Master) apiSettingsRefresh(req micro.Request) {
	if _, err := m.authorize(req, accessRun); err != nil {
		refuse(req, err)
		return
	}
	var r wire.SettingsRefreshRequest
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &r); err != nil {
			respondErr(req, "400", fmt.Errorf("request: %w", err))
			return
		}
	}
	var expr target.Expr
	if r.Target != nil {
		var err error
		if expr, err = target.Parse(target.Kind(r.Target.Kind), r.Target.Expr, target.Options{Nodegroups: m.cfg.Nodegroups}); err != nil {
			respondErr(req, "400", err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	respondJSON(req, m.settings.refresh(ctx, expr))
}

// settingsSubject is a peel as I@ sees it: the index's subject and the
// masked settings this master rendered for it.
type settingsSubject struct {
	*cachedSubject
	settings map[string]any
}

func (s *settingsSubject) Setting(path []string) (any, bool) {
	return (&target.MapSubject{Settings: s.settings}).Setting(path)
}
