package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/daemon"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// submitBackoff spaces the client's resubmissions.
var submitBackoff = backoff.New(20*time.Millisecond, time.Second)

// Client submits jobs through the master API and reads their outcome from
// the store, as the CLI does, over a connection to every node.
type Client struct {
	NC        *nats.Conn
	JS        jetstream.JetStream
	jobs      jetstream.KeyValue
	returnsKV string
}

// Connect opens a client on urls; the buckets must exist (a master
// bootstraps them).
func Connect(ctx context.Context, urls []string) (*Client, error) {
	nc, js, err := daemon.ConnectJS(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 0), nats.Name("chaos client"))
	if err != nil {
		return nil, err
	}
	jobs, err := js.KeyValue(ctx, names.BucketJobs)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bucket %s: %w", names.BucketJobs, err)
	}
	return &Client{NC: nc, JS: js, jobs: jobs, returnsKV: names.BucketJobReturns}, nil
}

// Close closes the connection.
func (c *Client) Close() { c.NC.Close() }

// Submit asks a master to run fn with args on every peel and returns the
// job id. The id is chosen here, so a request that got no answer (lost with
// a connection to a node that died, or a master still retrying through an
// election) is sent again safely: the masters record it once. It keeps
// asking for up to wait.
func (c *Client) Submit(ctx context.Context, fn string, args any, timeout, wait time.Duration) (string, error) {
	req := wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: fn, Timeout: wire.Duration(timeout), Requester: "chaos",
		JID: names.NewJID(time.Now())}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return "", err
		}
		req.Args = b
	}
	b, _ := json.Marshal(req)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var err error
	// Short first: a request lost with its connection is asked again soon.
	// Growing: a master may take up to 25 s to record a job during an
	// election, and a retry then only waits in its queue.
	per := 2 * time.Second
	for attempt := 0; ; attempt++ {
		var msg *nats.Msg
		rctx, rcancel := context.WithTimeout(wctx, per)
		per = min(2*per, 30*time.Second)
		msg, err = c.NC.RequestWithContext(rctx, names.APISubject(names.EndpointJobRun), b)
		rcancel()
		if err == nil {
			if e := msg.Header.Get(micro.ErrorHeader); e != "" {
				return "", fmt.Errorf("submit %s: master refused: %s", fn, e)
			}
			var resp wire.RunResponse
			if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.JID != req.JID {
				return "", fmt.Errorf("submit %s: bad answer %q", fn, msg.Data)
			}
			return resp.JID, nil
		}
		if wctx.Err() != nil {
			return "", fmt.Errorf("submit %s (job %s): %w", fn, req.JID, err)
		}
		d := submitBackoff.Delay(attempt)
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("submit %s (job %s): %w", fn, req.JID, err)
		case <-time.After(d):
		}
	}
}

// Job reads a job's main record.
func (c *Client) Job(ctx context.Context, jid string) (wire.Job, error) {
	var j wire.Job
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	e, err := c.jobs.Get(gctx, names.JobKey(jid))
	if err != nil {
		return j, err
	}
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return j, fmt.Errorf("job %s: %w", jid, err)
	}
	return j, nil
}

// WaitFinal polls the job record until its status is final (every poll is
// an observation of the store; a failed read during an election is
// retried) and returns it with the time it was first seen final.
func (c *Client) WaitFinal(ctx context.Context, jid string) (wire.Job, time.Time, error) {
	var last error
	for {
		j, err := c.Job(ctx, jid)
		if err == nil && wire.Final(j.Status) {
			return j, time.Now(), nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = fmt.Errorf("status %s", j.Status)
			}
			return j, time.Time{}, fmt.Errorf("job %s not final: %w (last: %v)", jid, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StoredReturns counts the messages stored in job-returns per peel for jid:
// exactly one each is the exactly-once property.
func (c *Client) StoredReturns(ctx context.Context, jid string) (map[string]uint64, error) {
	for {
		out, err := c.storedReturns(ctx, jid)
		if err == nil || ctx.Err() != nil {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Client) storedReturns(ctx context.Context, jid string) (map[string]uint64, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := c.JS.Stream(sctx, names.KVStream(c.returnsKV))
	if err != nil {
		return nil, err
	}
	info, err := s.Info(sctx, jetstream.WithSubjectFilter(names.ReturnSubjectPrefix+names.ReturnFilter(jid)))
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		_, peel, ok := names.ParseReturnSubject(subj)
		if !ok {
			return nil, errors.New("unexpected subject " + subj)
		}
		out[peel] = n
	}
	return out, nil
}
