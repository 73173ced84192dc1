package factgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/factcodec"
)

func id(i int) string { return fmt.Sprintf("sim-%06d.dc1.example.com", i) }

func TestFactsShapeAndCodec(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	for i := range 50 {
		doc := JSON(i, id(i), now)
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"os", "kernel", "cpu", "memory", "disks", "mounts", "network", "host", "virtualization", "collected_at", "schema"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("peel %d: no top-level key %q", i, k)
			}
		}
		nw := m["network"].(map[string]any)
		if _, ok := nw["interfaces"]; !ok || len(nw["addresses"].([]any)) < 3 {
			t.Fatalf("peel %d: network %v", i, nw)
		}
		if m["host"].(map[string]any)["fqdn"] != id(i) {
			t.Fatalf("peel %d: fqdn %v", i, m["host"].(map[string]any)["fqdn"])
		}
		seen[m["host"].(map[string]any)["machine_id"].(string)] = true
		enc := factcodec.Encode(doc)
		back, err := factcodec.Decode(enc)
		if err != nil || !bytes.Equal(back, doc) {
			t.Fatalf("peel %d: factcodec round trip: %v", i, err)
		}
		if !bytes.Equal(JSON(i, id(i), now), doc) {
			t.Fatalf("peel %d: facts not deterministic", i)
		}
	}
	if len(seen) != 50 {
		t.Fatalf("machine ids repeat: %d distinct of 50", len(seen))
	}
	// The documents are exactly the agent's bytes.
	for i := range 200 {
		want, err := Gen(i, id(i), now).JSON()
		if err != nil {
			t.Fatal(err)
		}
		if got := JSON(i, id(i), now); !bytes.Equal(got, want) {
			t.Fatalf("peel %d: JSON differs from the agent's encoding\n got %.300s\nwant %.300s", i, got, want)
		}
	}
}
