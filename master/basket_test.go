package master_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/shard"
)

// With two masters, each indexes the facts of its own partitions only, yet
// either answers a basket read for the whole fleet, by id and by fact; a
// fact change of a peel in the other master's partitions changes the
// answer (the cached match follows the facts' revision). Bad names and
// targets are refused with the cause.
func TestBasketLookup_AnyMasterWholeFleet(t *testing.T) {
	s := testkit.Server(t)
	url := s.ClientURL()
	ms := []*mastertest.Handle{mastertest.Start(t, mastertest.Config("m1", url)), mastertest.Start(t, mastertest.Config("m2", url))}
	testkit.Eventually(t, "partitions shared", 30*time.Second, func() bool { return settled(ms) && len(ms[0].Owned()) > 0 && len(ms[1].Owned()) > 0 })
	js := testkit.JetStream(t, url)
	ctx := context.Background()
	facts, err := js.KeyValue(ctx, names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	basket, err := js.KeyValue(ctx, names.BucketBasket)
	if err != nil {
		t.Fatal(err)
	}
	// Simulated peels: their facts and basket entries as peels write them.
	role := map[string]string{}
	putFacts := func(id, r string) {
		t.Helper()
		doc, _ := json.Marshal(map[string]any{"id": id, "role": r})
		if _, err := facts.Put(ctx, names.FactsKey(id), factcodec.Encode(doc)); err != nil {
			t.Fatal(err)
		}
		role[id] = r
	}
	for i := range 12 {
		id := fmt.Sprintf("sim%d.example.com", i)
		putFacts(id, []string{"web", "db"}[i%2])
		e, _ := json.Marshal(wire.BasketEntry{Peel: id, Name: "ipv4", Function: "network.ipv4", Value: json.RawMessage(fmt.Sprintf(`["10.0.0.%d"]`, i))})
		if _, err := basket.Put(ctx, names.BasketKey(id, "ipv4"), e); err != nil {
			t.Fatal(err)
		}
	}
	// A value under another peel's key is not taken for that peel's.
	forged, _ := json.Marshal(wire.BasketEntry{Peel: "sim0.example.com", Name: "ipv4", Value: json.RawMessage(`["6.6.6.6"]`)})
	if _, err := basket.Put(ctx, names.BasketKey("sim1.example.com", "ipv4"), forged); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "facts indexed", 30*time.Second, func() bool { return ms[0].PeelCount() == 12 && ms[1].PeelCount() == 12 })

	webs := func() []string {
		var out []string
		for id, r := range role {
			if r == "web" && id != "sim1.example.com" {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, m := range ms {
		// Each master has peels of the other's partitions in the answer.
		foreign := 0
		for id := range role {
			if !slices.Contains(m.Owned(), shard.Partition(id, m.Partitions())) {
				foreign++
			}
		}
		if foreign == 0 {
			t.Fatalf("%s owns every simulated peel: the test proves nothing", m.ID())
		}
		got, err := m.BasketLookup(ctx, "G@role:web", "ipv4")
		if err != nil {
			t.Fatal(err)
		}
		if ids := keys(got); !slices.Equal(ids, webs()) {
			t.Errorf("%s: G@role:web → %v, want %v", m.ID(), ids, webs())
		}
		got, err = m.BasketLookup(ctx, "sim2*", "ipv4")
		if err != nil || len(got) != 1 || fmt.Sprint(got["sim2.example.com"]) != "[10.0.0.2]" {
			t.Errorf("%s: sim2* → %v %v", m.ID(), got, err)
		}
	}
	// A peel the first master does not own turns from web to db.
	var moved string
	for _, id := range webs() {
		if !slices.Contains(ms[0].Owned(), shard.Partition(id, ms[0].Partitions())) {
			moved = id
			break
		}
	}
	if moved == "" {
		t.Fatal("no web peel outside m1's partitions")
	}
	putFacts(moved, "db")
	testkit.Eventually(t, "m1 sees "+moved+" as db", 30*time.Second, func() bool {
		got, err := ms[0].BasketLookup(ctx, "G@role:web", "ipv4")
		return err == nil && slices.Equal(keys(got), webs())
	})
	for _, tc := range []struct{ target, name, want string }{
		{"*", "a.b", `invalid basket name "a.b"`},
		{"G@role:web and (", "ipv4", "basket target"},
	} {
		if _, err := ms[1].BasketLookup(ctx, tc.target, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("BasketLookup(%q, %q): %v, want %q", tc.target, tc.name, err, tc.want)
		}
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
