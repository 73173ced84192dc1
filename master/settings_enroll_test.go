package master

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/enroll"
)

// acceptedCurve takes a record's curve key exactly when enroll.Record.Decode
// accepts the record and its state is accepted: the renderer seals to no
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
