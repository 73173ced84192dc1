package simfleet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/topology"
)

// tinyQueueServer starts a server whose streams queue at most 16 inbound
// messages (StreamMaxBufferedMsgs; 100,000 by default), so a fleet's burst
// is refused with real 429s, with the facts and job-returns buckets.
func tinyQueueServer(t *testing.T) (*topology.Server, jetstream.JetStream) {
	t.Helper()
	s, err := topology.StartServer(topology.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(),
		Tune: func(o *server.Options) { o.StreamMaxBufferedMsgs = 16 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	js := testkit.JetStream(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range []string{names.BucketFacts, names.BucketJobReturns} {
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b}); err != nil {
			t.Fatal(err)
		}
	}
	return s, js
}

// streamSeq is a stream's message count and last sequence: a store that
// happened twice takes a second sequence.
func streamSeq(t *testing.T, js jetstream.JetStream, bucket string) (msgs, last uint64) {
	t.Helper()
	st, err := js.Stream(context.Background(), names.KVStream(bucket))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs, info.State.LastSeq
}

func smallFacts(_ int, id string, _ time.Time) []byte { return []byte(`{"id":"` + id + `"}`) }

// factsStored is connectedFleet with every peel's facts stored once
// (PublishFacts).
func factsStored(t *testing.T, url string, peels, conns, parts int) *Fleet {
	t.Helper()
	f := connectedFleet(t, url, peels, conns, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // hang guard
	defer cancel()
	e, err := f.EncodeFacts(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.PublishFacts(ctx, e); err != nil {
		t.Fatal(err)
	}
	return f
}

func connectedFleet(t *testing.T, url string, peels, conns, parts int) *Fleet {
	t.Helper()
	f, err := NewFleet(FleetConfig{Peels: peels, Conns: conns, Partitions: parts, URLs: []string{url}, BeatInterval: time.Hour, Facts: smallFacts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.Connect(ctx, 8); err != nil {
		t.Fatal(err)
	}
	return f
}

// A fact storm and a ping answered by every peel against a server that
// refuses most of them (its streams queue 16 messages, each of the 8
// connections starts with 64 stores in flight): the connections' windows
// are cut, every refusal is retried, and every fact and every return ends
// up stored exactly once.
func TestFleet_RefusalStorm_EveryFactAndReturnStoredOnce(t *testing.T) {
	const n, parts = 2000, 4
	s, js := tinyQueueServer(t)
	f := factsStored(t, s.ClientURL(), n, 8, parts)
	factRefusals := f.Refusals.Load()
	if factRefusals == 0 {
		t.Fatal("the server refused no fact: the storm did not reach the queue's limit")
	}
	if msgs, last := streamSeq(t, js, names.BucketFacts); msgs != n || last != n {
		t.Fatalf("facts stream: %d messages, last sequence %d; want %d of each (nothing lost, nothing stored twice)", msgs, last, n)
	}
	cuts := 0
	for _, c := range f.Connections() {
		cuts += c.Window().Cuts
	}
	if cuts == 0 {
		t.Fatalf("%d refusals and no window cut", factRefusals)
	}

	// A job for every peel of every partition, as a master dispatches.
	jid := "20260101000000000001"
	nc := testkit.Connect(t, s.ClientURL())
	for p := range parts {
		d := wire.Dispatch{JID: jid, Function: "test.ping", All: true, Deadline: time.Now().Add(time.Minute)}
		if err := nc.Publish(names.JobSubject(p), []byte(testkit.JSON(t, d))); err != nil {
			t.Fatal(err)
		}
	}
	jt := f.Job(jid)
	testkit.Eventually(t, "every return stored", 90*time.Second, func() bool { return jt.Stored.Load() == n })
	if msgs, last := streamSeq(t, js, names.BucketJobReturns); msgs != n || last != n {
		t.Fatalf("returns stream: %d messages, last sequence %d; want %d of each", msgs, last, n)
	}
	if d := jt.DoubleStored.Load(); d != 0 {
		t.Fatalf("%d returns stored twice", d)
	}
	t.Logf("refusals: %d of facts, %d of returns; window cuts %d", factRefusals, f.Refusals.Load()-factRefusals, cuts)
}

// After their server restarts, every connection republishes its peels'
// facts, spread over its Spreader's window and through the same window
// and retries: each fact is stored once more, none lost, none twice.
func TestFleet_Reconnect_RepublishesEveryFactOnce(t *testing.T) {
	const n = 1000
	s, js := tinyQueueServer(t)
	f := factsStored(t, s.ClientURL(), n, 4, 4)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "every fact republished and stored", 90*time.Second, func() bool {
		return f.Republished.Load() == n && f.FactsStored.Load() == 2*n
	})
	if msgs, last := streamSeq(t, js, names.BucketFacts); msgs != n || last != 2*n {
		t.Fatalf("facts stream after the republish: %d keys, last sequence %d; want %d keys stored twice each (%d)", msgs, last, n, 2*n)
	}
	for _, c := range f.Connections() {
		if c.Reconnects() == 0 {
			t.Fatalf("connection %d did not reconnect", c.idx)
		}
	}
}

// A master's ControlRepublishFacts makes exactly the named peels republish.
func TestFleet_ControlRepublishFacts_NamedPeelsOnly(t *testing.T) {
	const n, parts = 200, 2
	s, js := tinyQueueServer(t)
	f := factsStored(t, s.ClientURL(), n, 2, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := testkit.Connect(t, s.ClientURL())
	named := []string{f.ID(3), f.ID(77), f.ID(150)}
	for p := range parts {
		ctl := wire.Control{Op: wire.ControlRepublishFacts, Peels: named}
		if err := nc.Publish(names.ControlSubject(p), []byte(testkit.JSON(t, ctl))); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "the named peels' facts stored again", 30*time.Second, func() bool {
		return f.FactsStored.Load() == n+int64(len(named))
	})
	kv, err := js.KeyValue(ctx, names.BucketFacts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		en, err := kv.Get(ctx, names.FactsKey(f.ID(i)))
		if err != nil {
			t.Fatal(err)
		}
		if republished := slices.Contains(named, f.ID(i)); (en.Revision() > n) != republished {
			t.Fatalf("peel %s: revision %d, want it republished: %v", f.ID(i), en.Revision(), republished)
		}
	}
	if r := f.Republished.Load(); r != int64(len(named)) {
		t.Fatalf("%d republished, want %d", r, len(named))
	}
}

// An ack that comes later than slowAck is a stored fact (counted, not sent
// again) and a congestion signal: the connection's window halves, as on a
// refusal, while an ack in time grows it. Without the signal a fleet fills
// the stream's ingest queue until its acks are older than asyncAckTimeout
// and every store is sent twice (the 1,000,000-peel collapse).
func TestConn_SlowAck_HalvesWindowAndCountsTheStore(t *testing.T) {
	s, _ := tinyQueueServer(t)
	f := connectedFleet(t, s.ClientURL(), 10, 1, 1)
	c := f.Connections()[0]
	ack := func(late time.Duration) {
		t.Helper()
		m := &nats.Msg{Subject: factsSubjectPrefix + names.FactsKey(f.ID(0))}
		if err := c.win.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.factsPending.Add(1)
		c.out.sending(m)
		c.out.mu.Lock()
		c.out.sent[m] -= int64(late) // sent that long ago
		c.out.mu.Unlock()
		c.onAck(c.js, m, &jetstream.PubAck{Stream: names.KVStream(names.BucketFacts), Sequence: 1})
	}
	before := c.Window()
	ack(0)
	fast := c.Window()
	if fast.Limit <= before.Limit || fast.Cuts != 0 || f.SlowAcks.Load() != 0 {
		t.Fatalf("an ack in time: window %+v → %+v, %d slow acks; want it grown, no cut", before, fast, f.SlowAcks.Load())
	}
	ack(slowAck + time.Second)
	slow := c.Window()
	if slow.Cuts != 1 || slow.Limit != max(fast.Limit/2, 1) {
		t.Fatalf("a late ack: window %+v → %+v; want one cut to half", fast, slow)
	}
	if f.SlowAcks.Load() != 1 || f.FactsStored.Load() != 2 || f.Retries.Load() != 0 {
		t.Fatalf("slow acks %d, facts stored %d, retries %d; want 1, 2, 0 (a late ack is a store)", f.SlowAcks.Load(), f.FactsStored.Load(), f.Retries.Load())
	}
	if len(c.out.sent) != 0 {
		t.Fatalf("%d send times left behind", len(c.out.sent))
	}
}

// A store nobody handles any more (its baseline run ended) is dropped, not
// retried; here one the server refuses as already stored (expected last subject
// sequence 0, the subject taken) whose subject no extra handler claims (a
// baseline's late retry after its run ended) is done with: never retried
// (it was retried forever, each refused again).
func TestConn_AlreadyStoredWithoutHandler_NotRetried(t *testing.T) {
	s, js := tinyQueueServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "lgtest"}); err != nil {
		t.Fatal(err)
	}
	f := connectedFleet(t, s.ClientURL(), 10, 1, 2)
	c := f.Connections()[0]
	msg := func(key string) *nats.Msg {
		m := &nats.Msg{Subject: names.KVSubjectPrefix("lgtest") + key, Data: []byte("v"), Header: nats.Header{}}
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		return m
	}
	stored := func(n uint64) func() error {
		return func() error {
			if msgs, _ := streamSeq(t, js, "lgtest"); msgs != n {
				return fmt.Errorf("%d stored, want %d", msgs, n)
			}
			return nil
		}
	}
	c.Publish(msg("a"))
	testkit.Until(t, 10*time.Second, stored(1))
	c.Publish(msg("a")) // refused: already stored
	// Acks and errors are handled in order on one goroutine: once a later
	// store is made and acknowledged, the refusal has been handled.
	c.Publish(msg("b"))
	testkit.Until(t, 10*time.Second, stored(2))
	testkit.Until(t, 10*time.Second, func() error {
		if n := c.Window().InFlight; n != 0 {
			return fmt.Errorf("%d in flight", n)
		}
		return nil
	})
	if n := f.Retries.Load(); n != 0 {
		t.Fatalf("%d retries of a store refused as already stored (reasons %v)", n, f.RetryReasons())
	}
	if msgs, last := streamSeq(t, js, "lgtest"); msgs != 2 || last != 2 {
		t.Fatalf("%d messages, last sequence %d; want 2 and 2", msgs, last)
	}
}
