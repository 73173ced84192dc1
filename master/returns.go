package master

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// A return's key is its identity: the NATS permissions let only peel P
// write $KV.job-returns.<jid>.P. Its body must agree: a return whose body
// names another peel or another job is refused (counted as a failure of
// the key's peel, with an event), so a compromised peel, or a leaf node
// writing in its name, cannot make a return read as another peel's.

// returnIdentity says why a stored return's body does not match its key
// ("" when it does).
func returnIdentity(body []byte, jid, peel string) string {
	var r struct {
		JID  string `json:"jid"`
		Peel string `json:"peel"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Sprintf("body does not decode: %v", err)
	}
	if r.Peel != peel {
		return fmt.Sprintf("the body names peel %q", r.Peel)
	}
	if r.JID != jid {
		return fmt.Sprintf("the body names job %q", r.JID)
	}
	return ""
}

// refuseReturn counts and reports a refused return (one event per job and
// peel).
func (m *Master) refuseReturn(jid, peel, reason string) {
	m.opts.Metrics.GetOrCreateCounter(`zester_master_returns_refused_total`).Inc()
	m.log.Warn("return refused: its body does not match its key", "jid", jid, "peel", peel, "why", reason)
	ev := wire.Event{JID: jid, Kind: "return-refused", Master: m.cfg.ID, Peel: peel, Time: time.Now().UTC(),
		Detail: fmt.Sprintf("return of %s to %s refused: %s; counted as a failure", peel, jid, reason)}
	b, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: names.JobEventSubject(jid, ev.Kind), Data: b, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, jid+"."+ev.Kind+"."+peel)
	if _, err := m.js.PublishMsgAsync(msg); err != nil {
		m.met.errors.Inc()
		m.log.Warn("job event", "jid", jid, "kind", ev.Kind, "err", err)
	}
}
