package peelproto_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
)

// A return published while nobody stores it (the stream is electing a
// leader; here it does not exist yet) is retried until the stream answers,
// then stored exactly once; publishing it again counts as sent and stores
// nothing more.
func TestPublishReturn_RetriesUntilStoredOnce(t *testing.T) {
	s := testkit.Server(t)
	nc, js := testkit.ConnectJS(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()

	msg, err := peelproto.ReturnMsg(&wire.Return{JID: "20260101000000000000", Peel: "web1.example.com", Success: true})
	if err != nil {
		t.Fatal(err)
	}
	// Every attempt is visible on the return's subject.
	attempts, err := nc.SubscribeSync(msg.Subject)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	done := make(chan error, 1)
	go func() { done <- peelproto.PublishReturn(ctx, js, msg) }()
	if _, err := attempts.NextMsgWithContext(ctx); err != nil {
		t.Fatalf("first attempt not seen: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("PublishReturn returned %v with no stream to store the return", err)
	default:
	}
	attempts.Unsubscribe()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.BucketJobReturns})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("PublishReturn once the stream exists: %v", err)
	}
	again := peelproto.ReturnMsgRaw("20260101000000000000", "web1.example.com", true, msg.Data)
	if err := peelproto.PublishReturn(ctx, js, again); err != nil {
		t.Fatalf("second delivery of the same return: %v, want it counted as sent", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Values() != 1 {
		t.Fatalf("%d messages stored, want exactly one", st.Values())
	}
}
