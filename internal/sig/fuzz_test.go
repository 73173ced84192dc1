package sig_test

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/sig"
)

// The dispatch every fuzz input is measured against.
var (
	fuzzSubject = "zester.job.7"
	fuzzBody    = []byte(`{"jid":"20260101000000000001","fn":"cmd.run","args":["id -un"],"all":true,"deadline":"2030-01-01T00:00:00Z"}`)
	fuzzAt      = time.Unix(1767225600, 0)
)

// FuzzVerifyDispatch feeds the peel's dispatch check arbitrary subjects,
// bodies and signature headers. "$GOOD" in the signature or time header
// stands for the master's real signature and signing time of the reference
// dispatch (the keys are made per run). The property: a message is accepted
// if and only if it is the reference dispatch, byte for byte, with the
// master's signature; nothing else verifies, and nothing panics.
func FuzzVerifyDispatch(f *testing.F) {
	fx := sharedFixture(f)
	v := peelVerifier(f, fx)
	ref := &nats.Msg{Subject: fuzzSubject, Data: fuzzBody}
	if err := fx.master.Sign(sig.Dispatch, ref, fuzzAt); err != nil {
		f.Fatal(err)
	}
	goodSig, goodTime := ref.Header.Get(sig.HeaderSig), ref.Header.Get(sig.HeaderTime)
	rawGood, _ := base64.RawURLEncoding.DecodeString(goodSig)
	f.Add(fuzzSubject, fuzzBody, "$GOOD", "$GOOD", "", true)
	f.Fuzz(func(t *testing.T, subject string, body []byte, sigText, timeText, nonce string, withSigner bool) {
		h := nats.Header{}
		if sigText == "$GOOD" {
			sigText = goodSig
		}
		if timeText == "$GOOD" {
			timeText = goodTime
		}
		h.Set(sig.HeaderSig, sigText)
		h.Set(sig.HeaderTime, timeText)
		if nonce != "" {
			h.Set(sig.HeaderNonce, nonce)
		}
		if withSigner {
			h.Set(sig.HeaderSigner, fx.master.JWT())
		}
		s, err := v.Verify(sig.Dispatch, subject, h, body, fuzzAt, masterOnly)
		raw, derr := base64.RawURLEncoding.DecodeString(sigText)
		isRef := subject == fuzzSubject && bytes.Equal(body, fuzzBody) && timeText == goodTime &&
			derr == nil && bytes.Equal(raw, rawGood) && withSigner && nonce == ""
		switch {
		case err == nil && !isRef:
			t.Fatalf("accepted a message that is not the signed one: subject %q body %q sig %q time %q", subject, body, sigText, timeText)
		case err == nil && s.Key != fx.master.Key():
			t.Fatalf("accepted with signer %s", s.Key)
		case err != nil && isRef:
			t.Fatalf("refused the signed dispatch: %v", err)
		case err != nil && sig.Reason(err) == "other":
			t.Fatalf("refusal without a reason: %v", err)
		}
	})
}
