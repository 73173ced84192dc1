package master_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// TestPingScale times a ping to ZESTER_SCALE simulated peels through 1
// master (skipped unless ZESTER_SCALE is set; the load generator measures
// this properly, beside the raw NATS baseline).
func TestPingScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ZESTER_SCALE"))
	if n == 0 {
		t.Skip("set ZESTER_SCALE=N")
	}
	s := single(t)
	url := s.ClientURL()
	ms := startMasters(t, url, 1)
	startSimFleet(t, url, n, 64)
	waitFor(t, "index", 120*time.Second, func() bool { return ms[0].PeelCount() == n })
	nc, _ := nats.Connect(url)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kvJobs, _ := js.KeyValue(context.Background(), names.BucketJobs)
	for round := 0; round < 3; round++ {
		req, _ := json.Marshal(wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(60 * time.Second)})
		start := time.Now()
		msg, err := nc.Request(names.APISubject("job.run"), req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var resp wire.RunResponse
		json.Unmarshal(msg.Data, &resp)
		var job wire.Job
		waitFor(t, "final", 120*time.Second, func() bool { job = jobStatus(t, kvJobs, resp.JID); return wire.Final(job.Status) })
		fmt.Printf("ping %d peels: %s in %s (returned %d)\n", n, job.Status, time.Since(start), job.Returned)
	}
}
