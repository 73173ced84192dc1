package peelproto_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/topology"
)

// The window doubles per window of acknowledged stores until the first
// refusal, then grows by one per window, halves once per window on
// congestion, and stays within [1, ceiling].
func TestWindow_AIMD(t *testing.T) {
	w := peelproto.NewWindow(2, 8)
	ctx := context.Background()
	take := func(n int) {
		t.Helper()
		for range n {
			if !w.TryAcquire() {
				t.Fatalf("no room at %+v", w.Stats())
			}
		}
		if w.TryAcquire() {
			t.Fatalf("room beyond the limit at %+v", w.Stats())
		}
	}
	acks := func(n int, want int) {
		t.Helper()
		for range n {
			w.Done(nil)
		}
		if got := w.Stats().Limit; got != want {
			t.Fatalf("limit %d after %d acks, want %d", got, n, want)
		}
	}
	take(2)
	acks(2, 4) // slow start: one per ack
	take(4)
	acks(4, 8)
	take(8)
	acks(8, 8) // the ceiling
	// Eight in flight; the first refusal halves, the refusals of the other
	// seven (sent at the old rate) do not.
	take(8)
	refused := &jetstream.APIError{Code: 429, ErrorCode: peelproto.ErrCodeTooManyRequests, Description: "too many requests"}
	w.Done(refused)
	if got := w.Stats().Limit; got != 4 {
		t.Fatalf("limit %d after a refusal at 8, want 4", got)
	}
	w.Done(fmt.Errorf("publish: %w", refused))
	w.Done(context.DeadlineExceeded)
	for range 5 {
		w.Done(jetstream.ErrTooManyStalledMsgs)
	}
	if st := w.Stats(); st.Limit != 4 || st.Cuts != 1 || st.InFlight != 0 {
		t.Fatalf("after the window's own refusals: %+v, want limit 4, 1 cut, 0 in flight", st)
	}
	// Past a refusal: one more per full window of acks.
	take(4)
	acks(3, 4)
	acks(1, 5)
	// A new window's refusal halves again, down to the floor of 1.
	take(5)
	w.Done(nats.ErrTimeout)
	for range 4 {
		w.Done(nats.ErrNoResponders)
	}
	take(2)
	w.Done(refused)
	w.Done(nats.ErrNoResponders)
	if st := w.Stats(); st.Limit != 1 || st.Cuts != 3 {
		t.Fatalf("%+v, want limit 1 after 3 cuts", st)
	}
	// An outcome that says nothing about load only frees the room.
	take(1)
	w.Done(nats.ErrConnectionClosed)
	if st := w.Stats(); st.Limit != 1 || st.InFlight != 0 || st.Cuts != 3 {
		t.Fatalf("%+v after a lost connection", st)
	}
	// Acquire waits for room and gives up with its context.
	take(1)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := w.Acquire(short); err == nil {
		t.Fatal("Acquire on a full window returned without room")
	}
	got := make(chan error, 1)
	go func() { got <- w.Acquire(ctx) }()
	w.Ack()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestSpreader_WidensWithRefusals(t *testing.T) {
	s := peelproto.NewSpreaderRand(2*time.Second, 30*time.Second, rand.NewPCG(1, 2))
	for _, want := range []time.Duration{2, 4, 8, 16, 30, 30} {
		if got := s.Window(); got != want*time.Second {
			t.Fatalf("window %v, want %v", got, want*time.Second)
		}
		for range 100 {
			if d := s.Delay(); d < 0 || d >= s.Window() {
				t.Fatalf("delay %v outside [0, %v)", d, s.Window())
			}
		}
		s.Refused()
	}
	s.Calm()
	s.Calm()
	if got := s.Window(); got != 7500*time.Millisecond {
		t.Fatalf("window %v after two calm republishes from 30s, want 7.5s", got)
	}
	for range 5 {
		s.Calm()
	}
	if got := s.Window(); got != 2*time.Second {
		t.Fatalf("window %v, want it back at the base 2s", got)
	}
}

// serverConn starts a server (tune, when set, changes its options) and
// connects to it.
func serverConn(t *testing.T, tune func(*server.Options)) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := testkit.StartServer(t, topology.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Tune: tune})
	return testkit.ConnectJS(t, s.ClientURL())
}

// tinyQueue starts a server whose streams queue at most 8 inbound messages
// (nats-server's StreamMaxBufferedMsgs, 100,000 by default), so a burst of
// stores is refused with a real 429, and the job-returns bucket.
func tinyQueue(t *testing.T) (*nats.Conn, jetstream.Stream) {
	t.Helper()
	nc, js := serverConn(t, func(o *server.Options) { o.StreamMaxBufferedMsgs = 8 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketJobReturns}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_"+names.BucketJobReturns)
	if err != nil {
		t.Fatal(err)
	}
	return nc, st
}

func returnMsg(i int) *nats.Msg {
	peel := fmt.Sprintf("sim-%06d.example.com", i)
	return peelproto.ReturnMsgRaw("20260101000000000000", peel, true, []byte(`{"jid":"20260101000000000000","peel":"`+peel+`","success":true}`))
}

// storedOnce checks that the stream holds n returns and stored n messages
// in all (a second store of the same return would have taken a sequence).
func storedOnce(t *testing.T, st jetstream.Stream, n int) {
	t.Helper()
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(n) || info.State.LastSeq != uint64(n) {
		t.Fatalf("stream holds %d messages, last sequence %d: want %d of each (nothing lost, nothing stored twice)", info.State.Msgs, info.State.LastSeq, n)
	}
}

// The simulated fleet's pattern (see Window's doc) against a server that
// really refuses: async stores through a window that starts far above what
// the queue takes, refusals retried with backoff. The server refuses with a
// 429 that IsTooManyRequests tells, the window halves on it, and every
// return ends up stored exactly once.
func TestWindow_RealRefusalsNothingLostNothingTwice(t *testing.T) {
	nc, st := tinyQueue(t)
	const n = 4000
	w := peelproto.NewWindow(n, n)
	retry := backoff.New(5*time.Millisecond, 200*time.Millisecond)
	var refused, stored atomic.Int64
	var pending sync.WaitGroup
	var send func(m *nats.Msg, attempt int)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(n),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, _ *jetstream.PubAck) {
			w.Ack()
			stored.Add(1)
			pending.Done()
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			w.Done(err)
			if peelproto.IsAlreadyStored(err) {
				pending.Done()
				return
			}
			if !peelproto.Retryable(err) {
				t.Errorf("store of %s failed for good: %v", m.Subject, err)
				pending.Done()
				return
			}
			if peelproto.IsTooManyRequests(err) {
				refused.Add(1)
			}
			time.AfterFunc(retry.Delay(min(int(refused.Load()), 8)), func() { send(m, 1) })
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()
	send = func(m *nats.Msg, _ int) {
		if err := w.Acquire(ctx); err != nil {
			t.Errorf("acquire: %v", err)
			pending.Done()
			return
		}
		if _, err := js.PublishMsgAsync(m); err != nil {
			w.Done(err)
			time.AfterFunc(retry.Delay(3), func() { send(m, 1) })
		}
	}
	pending.Add(n)
	for i := range n {
		send(returnMsg(i), 0)
	}
	done := make(chan struct{})
	go func() { pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("stored %d of %d within the hang guard; window %+v", stored.Load(), n, w.Stats())
	}
	if refused.Load() == 0 {
		t.Fatal("the server refused nothing: the test did not reach the queue's limit")
	}
	if st := w.Stats(); st.Cuts == 0 || st.Limit >= n {
		t.Fatalf("window %+v after %d refusals: want it cut", st, refused.Load())
	}
	storedOnce(t, st, n)
	t.Logf("%d refusals (429), window %+v", refused.Load(), w.Stats())
}

// Returns stored synchronously by many jobs at once, as a peel does, are
// retried through refusals and stored exactly once.
func TestPublishReturnPaced_RetriesRefusals(t *testing.T) {
	nc, st := tinyQueue(t)
	js, _ := jetstream.New(nc)
	const n = 300
	w := peelproto.NewWindow(n, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- peelproto.PublishReturnPaced(ctx, js, returnMsg(i), w) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("PublishReturnPaced: %v", err)
		}
	}
	if w.Stats().Cuts == 0 {
		t.Fatal("no refusal or timeout reached the window: the test did not load the queue")
	}
	storedOnce(t, st, n)
	// A second delivery of each is refused as already stored: sent, not stored.
	if err := peelproto.PublishReturnPaced(ctx, js, returnMsg(7), w); err != nil {
		t.Fatal(err)
	}
	storedOnce(t, st, n)
}

// IsTooManyRequests and Retryable on the error values nats.go hands out.
func TestFlowErrors(t *testing.T) {
	refused := &jetstream.APIError{Code: 429, ErrorCode: peelproto.ErrCodeTooManyRequests}
	dup := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}
	for _, c := range []struct {
		err                  error
		many, over, retrying bool
	}{
		{refused, true, true, true},
		{fmt.Errorf("put facts x: %w", refused), true, true, true},
		{context.DeadlineExceeded, false, true, true},
		{jetstream.ErrAsyncPublishTimeout, false, true, true},
		{jetstream.ErrTooManyStalledMsgs, false, true, true},
		{nats.ErrNoResponders, false, false, true},
		{dup, false, false, false},
		{nats.ErrConnectionClosed, false, false, false},
		{errors.New("encode return: bad"), false, false, false},
	} {
		if got := peelproto.IsTooManyRequests(c.err); got != c.many {
			t.Errorf("IsTooManyRequests(%v) = %v", c.err, got)
		}
		if got := peelproto.Overloaded(c.err); got != c.over {
			t.Errorf("Overloaded(%v) = %v", c.err, got)
		}
		if got := peelproto.Retryable(c.err); got != c.retrying {
			t.Errorf("Retryable(%v) = %v", c.err, got)
		}
	}
}

// BenchmarkFleetStores is issue 14's collapse at a tenth of the scale: a
// stream whose ingest queue holds 10,000 messages (1M peels against the
// default 100,000) takes 100,000 returns from 400 connections (250 peels
// each, as 1M peels on 4,000), each allowed 4,096 unacknowledged stores. "fixed" is the load generator's pattern
// before flow control (a fixed async window, refusals retried after
// 200–500 ms); "aimd" paces each connection with a peelproto.Window
// (starting at 64) and retries with full-jitter backoff per message. One op stores all of them; run with
// -benchtime=1x. Reported: refusals (429), retries (refusals, timeouts,
// stalls) and wall time per op.
func BenchmarkFleetStores(b *testing.B) {
	const n, conns, window, queue = 100_000, 400, 4096, 10_000
	for _, mode := range []string{"fixed", "aimd"} {
		b.Run(mode, func(b *testing.B) {
			var refusals, retries atomic.Int64
			for b.Loop() {
				b.StopTimer()
				s, err := topology.StartServer(topology.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: b.TempDir(),
					Tune: func(o *server.Options) { o.StreamMaxBufferedMsgs = queue }})
				if err != nil {
					b.Fatal(err)
				}
				ctl, _ := nats.Connect(s.ClientURL())
				cjs, _ := jetstream.New(ctl)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				if _, err := cjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketJobReturns}); err != nil {
					b.Fatal(err)
				}
				var all sync.WaitGroup
				all.Add(n)
				// Every connection first, then all publish at once, as a
				// fleet answers a broadcast job.
				starts := make([]func(), conns)
				for c := range conns {
					nc, err := nats.Connect(s.ClientURL())
					if err != nil {
						b.Fatal(err)
					}
					defer nc.Close()
					starts[c] = fleetConn(ctx, b, nc, mode, window, c, conns, n, &all, &refusals, &retries)
				}
				b.StartTimer()
				for _, start := range starts {
					go start()
				}
				all.Wait()
				b.StopTimer()
				st, _ := cjs.Stream(ctx, "KV_"+names.BucketJobReturns)
				info, _ := st.Info(ctx)
				if info.State.Msgs != n || info.State.LastSeq != n {
					b.Fatalf("%d stored, last sequence %d, want %d", info.State.Msgs, info.State.LastSeq, n)
				}
				cancel()
				ctl.Close()
				s.Shutdown()
				b.StartTimer()
			}
			b.ReportMetric(float64(refusals.Load())/float64(b.N), "refusals/op")
			b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/op")
		})
	}
}

// fleetConn returns the publisher of returns c, c+conns, … of n on one
// connection.
func fleetConn(ctx context.Context, b *testing.B, nc *nats.Conn, mode string, window, c, conns, n int, all *sync.WaitGroup, refusals, retries *atomic.Int64) func() {
	w := peelproto.NewWindow(64, window)
	retry := backoff.New(10*time.Millisecond, 2*time.Second)
	var attempts sync.Map // *nats.Msg → attempts so far
	var send func(m *nats.Msg)
	later := func(m *nats.Msg) {
		retries.Add(1)
		d := 200*time.Millisecond + time.Duration(rand.Int64N(int64(300*time.Millisecond)))
		if mode == "aimd" {
			a, _ := attempts.LoadOrStore(m, new(int))
			n := a.(*int)
			d = retry.Delay(*n)
			*n++
		}
		time.AfterFunc(d, func() { send(m) })
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) {
			if mode == "aimd" {
				w.Ack()
			}
			all.Done()
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			if mode == "aimd" {
				w.Done(err)
			}
			if peelproto.IsAlreadyStored(err) {
				all.Done()
				return
			}
			if peelproto.IsTooManyRequests(err) {
				refusals.Add(1)
			}
			go later(m)
		}))
	if err != nil {
		b.Fatal(err)
	}
	send = func(m *nats.Msg) {
		if mode == "aimd" {
			if w.Acquire(ctx) != nil {
				return
			}
		}
		if _, err := js.PublishMsgAsync(m); err != nil {
			if mode == "aimd" {
				w.Done(err)
			}
			later(m)
		}
	}
	var msgs []*nats.Msg
	for i := c; i < n; i += conns {
		peel := fmt.Sprintf("sim-%06d.example.com", i)
		msgs = append(msgs, peelproto.ReturnMsgRaw("20260101000000000000", peel, true, []byte(`{"jid":"20260101000000000000","peel":"`+peel+`","success":true}`)))
	}
	return func() {
		for _, m := range msgs {
			send(m)
		}
	}
}
