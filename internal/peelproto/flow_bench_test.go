package peelproto_test

import (
	"context"
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
	"github.com/zester-io/zester/topology"
)

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
