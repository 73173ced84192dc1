package master

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/settings"
)

// acceptedCurve takes a record's curve key when enroll.Record.Decode
// accepts the record and its state is accepted, for records as masters
// write them and for the malformed ones below: the renderer seals to no
// other key than before it decoded three fields alone.
func TestAcceptedCurve_AsRecordDecode(t *testing.T) {
	kp, _ := nkeys.CreateCurveKeys()
	curve, _ := kp.PublicKey()
	now := time.Now().UTC()
	rec := func(id string, st enroll.State) []byte {
		b, _ := json.Marshal(enroll.Record{ID: id, State: st, Curve: curve, Requested: now, Decided: now,
			Facts: map[string]any{"os": "debian", "curve": "XOTHER"}, Via: "manual"})
		return b
	}
	cases := []struct {
		name, key string
		value     []byte
	}{
		{"accepted", "web1", rec("web1", enroll.StateAccepted)},
		{"pending", "web1", rec("web1", enroll.StatePending)},
		{"rejected", "web1", rec("web1", enroll.StateRejected)},
		{"revoked", "web1", rec("web1", enroll.StateRevoked)},
		{"another peel's record", "web2", rec("web1", enroll.StateAccepted)},
		{"unknown state", "web1", []byte(`{"id":"web1","state":"accepted!","curve":"` + curve + `"}`)},
		{"not JSON", "web1", []byte(`{"id":"web1","state":"accepted","curve":"` + curve + `"`)},
		{"not an object", "web1", []byte(`["web1"]`)},
		{"empty", "web1", nil},
		{"only the three fields", "web1", []byte(`{"id":"web1","state":"accepted","curve":"` + curve + `"}`)},
		{"keys in another case", "web1", []byte(`{"ID":"web1","State":"accepted","Curve":"` + curve + `"}`)},
	}
	for _, c := range cases {
		want := ""
		var r enroll.Record
		if r.Decode(c.key, c.value) == nil && r.State == enroll.StateAccepted {
			want = r.Curve
		}
		if got := acceptedCurve(c.key, c.value); got != want {
			t.Errorf("%s: acceptedCurve %q, Record.Decode's %q", c.name, got, want)
		}
	}
	if acceptedCurve("web1", rec("web1", enroll.StateAccepted)) != curve {
		t.Fatal("the accepted record's curve key not taken")
	}
}

// The pooled values digest is settings.ValuesDigestJSON's (the stored
// entries' hashes must not change with it), used again and again.
func TestValuesDigest_AsValuesDigestJSON(t *testing.T) {
	s := &settingsRenderer{hashKey: []byte("0123456789abcdef0123456789abcdef")}
	for i := range 50 {
		curve := "XCURVE" + string(rune('A'+i%26))
		vals := []byte(`{"v":1,"id":"web1","values":{"zsr1:a":"` + string(rune('a'+i%26)) + `"}}`)
		if got, want := s.valuesDigest(curve, vals), digest(settings.ValuesDigestJSON(s.hashKey, curve, vals)); got != want {
			t.Fatalf("%d: %x, want %x", i, got, want)
		}
	}
}

// growStored keeps every entry it moves to a larger map, and leaves a map
// that holds half of the batch or more as it is.
func TestGrowStored_KeepsEntries(t *testing.T) {
	s := &settingsRenderer{}
	for i := range s.stored {
		s.stored[i] = map[string]storedEntry{}
	}
	s.stored[filesIdx]["web1"] = storedEntry{hash: digest{1}, files: []string{"a"}}
	for i := range 600 {
		s.stored[secretsIdx]["peel"+string(rune('a'+i%26))+string(rune('a'+i/26))] = storedEntry{hash: digest{2}}
	}
	big := s.stored[secretsIdx]
	s.growStored(1000)
	if e := s.stored[filesIdx]["web1"]; len(s.stored[filesIdx]) != 1 || e.hash != (digest{1}) || e.files[0] != "a" {
		t.Fatalf("files entries after growStored: %v", s.stored[filesIdx])
	}
	big["marker"] = storedEntry{hash: digest{3}}
	if len(s.stored[secretsIdx]) != 601 {
		t.Fatalf("a map holding half of the batch was replaced (%d entries)", len(s.stored[secretsIdx]))
	}
}
