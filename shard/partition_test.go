package shard

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/topology"
)

// testIDs returns n distinct, valid, varied peel ids: FQDNs, short names,
// single characters, mixed case, '-' and '_', and long multi-label names.
func testIDs(t testing.TB, n int) []string {
	t.Helper()
	r := rand.New(rand.NewPCG(42, 7))
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if seen[id] || len(ids) >= n {
			return
		}
		if err := names.ValidateID(id); err != nil {
			t.Fatalf("test id: %v", err)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	for _, id := range []string{"a", "Z", "7", "web123.dc1.example.com", "localhost", "a.b", "a-b", "a_b", "x.y.z.w.v.u"} {
		add(id)
	}
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	label := func(k int) string {
		var b strings.Builder
		for range k {
			b.WriteByte(alnum[r.IntN(len(alnum))])
		}
		return b.String()
	}
	for len(ids) < n {
		switch r.IntN(6) {
		case 0:
			add(fmt.Sprintf("web%d.dc%d.example.com", r.IntN(5000), r.IntN(9)))
		case 1:
			add(fmt.Sprintf("db-%03d", r.IntN(1000)))
		case 2:
			add(fmt.Sprintf("host_%x.%s", r.Uint32(), label(1+r.IntN(10))))
		case 3:
			add(label(1 + r.IntN(3)))
		case 4: // long: several labels, up to MaxIDLen
			var parts []string
			for l := 0; l < 4+r.IntN(30); l++ {
				parts = append(parts, label(1+r.IntN(12)))
			}
			id := strings.Join(parts, ".")
			if len(id) > names.MaxIDLen {
				id = strings.TrimRight(id[:names.MaxIDLen], ".")
			}
			add(id)
		default:
			add(fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", r.IntN(256), r.IntN(256), r.IntN(256)))
		}
	}
	return ids
}

func TestPartition_IsFNV1aOfToken(t *testing.T) {
	for _, id := range testIDs(t, 2000) {
		h := fnv.New32a()
		h.Write([]byte(names.Token(id)))
		sum := h.Sum32()
		for _, n := range []int{1, 2, 16, 64, 1000, 1 << 20} {
			if got, want := Partition(id, n), int(sum%uint32(n)); got != want {
				t.Fatalf("Partition(%q, %d) = %d, want %d", id, n, got, want)
			}
		}
	}
}

// TestCoordinator_IsFNV1aOfJID: the coordinator partition is hash/fnv's
// FNV-1a of the jid itself (no token escaping), as the masters computed it
// before it moved here.
func TestCoordinator_IsFNV1aOfJID(t *testing.T) {
	for _, jid := range []string{"20260101120000000000042", "20261201221759123456007", "x", ""} {
		h := fnv.New32a()
		h.Write([]byte(jid))
		for _, n := range []int{1, 7, 64, 1000} {
			if got, want := Coordinator(jid, n), int(h.Sum32()%uint32(n)); got != want {
				t.Fatalf("Coordinator(%q, %d) = %d, want %d", jid, n, got, want)
			}
		}
	}
}

func TestPartition_BadCountPanics(t *testing.T) {
	for _, n := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Partition(_, %d) did not panic", n)
				}
			}()
			Partition("a", n)
		}()
	}
}

func TestSubjects(t *testing.T) {
	src, dst := names.PartitionMapping(64)
	if src != "zester.in.*.>" || dst != "zester.inp.{{partition(64,1)}}.{{wildcard(1)}}.>" {
		t.Fatalf("PartitionMapping(64) = %q, %q", src, dst)
	}
	if got := InSubject("web1.example.com", "ret.x"); got != "zester.in.web1~example~com.ret.x" {
		t.Fatalf("InSubject = %q", got)
	}
	if got := PartitionFilter(7); got != "zester.inp.7.>" {
		t.Fatalf("PartitionFilter = %q", got)
	}
	s := PartitionedSubject(12, "web1.example.com", "ret.x")
	p, id, kind, ok := ParsePartitioned(s)
	if !ok || p != 12 || id != "web1.example.com" || kind != "ret.x" {
		t.Fatalf("ParsePartitioned(%q) = %d %q %q %v", s, p, id, kind, ok)
	}
	for _, bad := range []string{"", "zester.inp", "zester.inp.1", "zester.inp.1.peel", "zester.inp.x.peel.k", "zester.inp.-1.peel.k", "zester.inp.+1.peel.k", "zester.in.1.peel.k", "zester.inp.1..k"} {
		if _, _, _, ok := ParsePartitioned(bad); ok {
			t.Errorf("ParsePartitioned(%q) accepted", bad)
		}
	}
}

// TestPartition_MatchesServerMapping checks Partition against a real
// nats-server applying PartitionMapping: every peel's message must arrive on
// the partition Partition computes.
func TestPartition_MatchesServerMapping(t *testing.T) {
	ids := testIDs(t, 2000)
	for _, n := range []int{16, 64, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			src, dst := names.PartitionMapping(n)
			var mapErr error
			srv, err := topology.StartServer(topology.ServerConfig{
				Name:        fmt.Sprintf("shard-%d", n),
				NoJetStream: true,
				Tune: func(o *server.Options) {
					// What a `mappings {}` block in the server config does.
					acc := server.NewAccount(server.DEFAULT_GLOBAL_ACCOUNT)
					mapErr = acc.AddMapping(src, dst)
					o.Accounts = append(o.Accounts, acc)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			if mapErr != nil {
				t.Fatalf("mapping %q → %q: %v", src, dst, mapErr)
			}
			nc, err := nats.Connect("", srv.InProcess())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()

			mapped := make(chan *nats.Msg, len(ids))
			sub, err := nc.ChanSubscribe(SubjectInPartitionedPrefix+".>", mapped)
			if err != nil {
				t.Fatal(err)
			}
			sub.SetPendingLimits(-1, -1)
			unmapped, err := nc.SubscribeSync(SubjectInPrefix + ".>")
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if err := nc.Publish(InSubject(id, "ret.x"), []byte(id)); err != nil {
					t.Fatal(err)
				}
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}

			seen := make(map[string]bool, len(ids))
			used := map[int]bool{}
			timeout := time.After(10 * time.Second)
			for len(seen) < len(ids) {
				select {
				case m := <-mapped:
					p, id, kind, ok := ParsePartitioned(m.Subject)
					if !ok || kind != "ret.x" || id != string(m.Data) {
						t.Fatalf("mapped subject %q for id %q", m.Subject, m.Data)
					}
					if seen[id] {
						t.Fatalf("id %q delivered twice", id)
					}
					seen[id] = true
					used[p] = true
					if want := Partition(id, n); p != want {
						t.Errorf("id %q: server put it in partition %d, Partition says %d", id, p, want)
					}
				case <-timeout:
					t.Fatalf("got %d of %d mapped messages", len(seen), len(ids))
				}
			}
			if m, err := unmapped.NextMsg(50 * time.Millisecond); err == nil {
				t.Fatalf("message on unmapped subject %q: mapping not applied", m.Subject)
			}
			t.Logf("n=%d: %d ids agreed, %d partitions used", n, len(seen), len(used))
		})
	}
}

func BenchmarkPartition(b *testing.B) {
	ids := testIDs(b, 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		Partition(ids[i&1023], DefaultPartitions)
		i++
	}
}
