package master

import (
	"encoding/json"
	"testing"
)

// slowIdentity is returnIdentity's full decode alone.
func slowIdentity(body []byte, jid, peel string) bool {
	var r struct {
		JID  string `json:"jid"`
		Peel string `json:"peel"`
	}
	return json.Unmarshal(body, &r) == nil && r.JID == jid && r.Peel == peel
}

// TestIdentityPlain: the fast path accepts only bodies the full decode
// accepts, and takes the ordinary return.
func TestIdentityPlain(t *testing.T) {
	const jid, peel = "2026120204484674658893", "web-1.dc1.example.com"
	for _, tc := range []struct {
		name string
		body string
		fast bool // the fast path decides
		ok   bool // the identity holds
	}{
		{"an ordinary return", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","fn":"test.ping","success":true,"result":true}`, true, true},
		{"another peel", `{"jid":"2026120204484674658893","peel":"web-2.dc1.example.com","fn":"test.ping","success":true}`, false, false},
		{"another job", `{"jid":"2026120204484674658894","peel":"web-1.dc1.example.com","fn":"x","success":true}`, false, false},
		{"peel named again later", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","success":true,"peel":"web-2.dc1.example.com"}`, false, false},
		{"peel named again in another case", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","success":true,"PEEL":"web-2.dc1.example.com"}`, false, false},
		{"jid named again in another case", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","Jid":"1"}`, false, false},
		{"an escaped key", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","\u0070eel":"web-2.dc1.example.com"}`, false, false},
		{"a result that mentions peel (slow path, still ok)", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","fn":"cmd.run","success":true,"result":"peel ok"}`, false, true},
		{"non-ASCII after the names (slow path, still ok)", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","fn":"cmd.run","success":true,"result":"ſ"}`, false, true},
		{"not JSON after a good start", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com",`, false, false},
		{"trailing garbage", `{"jid":"2026120204484674658893","peel":"web-1.dc1.example.com","success":true}x`, false, false},
		{"other key order (slow path, still ok)", `{"peel":"web-1.dc1.example.com","jid":"2026120204484674658893"}`, false, true},
		{"empty", ``, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.body)
			fast := identityPlain(b, jid, peel)
			slow := slowIdentity(b, jid, peel)
			if fast && !slow {
				t.Fatalf("the fast path accepts a body the full decode refuses")
			}
			if fast != tc.fast || slow != tc.ok {
				t.Fatalf("fast %v full %v, want %v %v", fast, slow, tc.fast, tc.ok)
			}
			if got := returnIdentity(b, jid, peel) == ""; got != tc.ok {
				t.Fatalf("returnIdentity ok = %v, want %v", got, tc.ok)
			}
		})
	}
	if identityPlain([]byte(`{"jid":"a\"b","peel":"p",}`), `a"b`, "p") {
		t.Fatal("a jid that needs escaping takes the fast path")
	}
}
