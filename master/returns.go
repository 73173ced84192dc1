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
	if identityPlain(body, jid, peel) {
		return ""
	}
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

// identityPlain is the fast path of returnIdentity, for every master and
// every return: true only when the body certainly decodes to jid and peel.
// That is, it is valid JSON that begins the way a peel writes a return,
// {"jid":"<jid>","peel":"<peel>", (both plain: letters, digits, '.', '_',
// '-'), and nothing after that could name either field again: no other key
// spelled like "jid" or "peel" in any case, no escape that could spell one,
// no byte outside ASCII (encoding/json matches keys case-insensitively).
// Otherwise (false) the body is decoded in full.
func identityPlain(body []byte, jid, peel string) bool {
	if !plainID(jid) || !plainID(peel) {
		return false
	}
	const k1, k2 = `{"jid":"`, `","peel":"`
	n := len(k1) + len(jid) + len(k2) + len(peel) + 2
	if len(body) < n || string(body[:len(k1)]) != k1 || string(body[len(k1):len(k1)+len(jid)]) != jid {
		return false
	}
	rest := body[len(k1)+len(jid):]
	if string(rest[:len(k2)]) != k2 || string(rest[len(k2):len(k2)+len(peel)]) != peel || string(rest[len(k2)+len(peel):len(k2)+len(peel)+2]) != `",` {
		return false
	}
	rest = rest[len(k2)+len(peel)+2:]
	for i, c := range rest {
		if c == '\\' || c >= 0x80 {
			return false
		}
		if c|0x20 == 'j' && i+2 < len(rest) && rest[i+1]|0x20 == 'i' && rest[i+2]|0x20 == 'd' {
			return false
		}
		if c|0x20 == 'p' && i+3 < len(rest) && rest[i+1]|0x20 == 'e' && rest[i+2]|0x20 == 'e' && rest[i+3]|0x20 == 'l' {
			return false
		}
	}
	return json.Valid(body)
}

// plainID: only letters, digits, '.', '_' and '-' (no JSON escaping).
func plainID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
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
