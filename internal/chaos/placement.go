package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
)

// Consumer is one watch consumer and the node that hosts it.
type Consumer struct {
	Stream, Name, Node string
}

// WatchConsumers lists the Zester watch consumers (names.WatchConsumerPrefix)
// of the given streams with the node each one lives on ("" when the server
// cannot say, e.g. its node is down).
func WatchConsumers(ctx context.Context, js jetstream.JetStream, streams ...string) ([]Consumer, error) {
	var out []Consumer
	for _, st := range streams {
		s, err := js.Stream(ctx, st)
		if err != nil {
			return nil, err
		}
		l := s.ListConsumers(ctx)
		for ci := range l.Info() {
			if !strings.HasPrefix(ci.Name, names.WatchConsumerPrefix) {
				continue
			}
			c := Consumer{Stream: st, Name: ci.Name}
			if ci.Cluster != nil {
				c.Node = ci.Cluster.Leader
			}
			out = append(out, c)
		}
		if err := l.Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// StreamLeader is the node leading stream ("" during an election).
func StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	if ci := s.CachedInfo().Cluster; ci != nil {
		return ci.Leader, nil
	}
	return "", nil
}

// WaitStreamLeader polls until stream has a leader other than not (a node
// just killed) and returns it.
func WaitStreamLeader(ctx context.Context, js jetstream.JetStream, stream, not string) (string, error) {
	for {
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		l, err := StreamLeader(pctx, js, stream)
		cancel()
		if err == nil && l != "" && l != not {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("stream %s: no new leader: %w", stream, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// WaitStreamsCurrent polls until every stream has a leader and every replica
// is online and current: a restarted node has caught up.
func WaitStreamsCurrent(ctx context.Context, js jetstream.JetStream, streams ...string) error {
	for _, st := range streams {
		for {
			ok := false
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := js.Stream(pctx, st)
			cancel()
			if err == nil {
				if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader != "" {
					ok = true
					for _, r := range ci.Replicas {
						if r.Offline || !r.Current {
							ok = false
						}
					}
				}
			}
			if ok {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("stream %s: replicas not current: %w", st, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// ConsumerNode is the node hosting one consumer (asked of the consumer
// itself, so consumers left on a dead node do not get in the way).
func ConsumerNode(ctx context.Context, js jetstream.JetStream, stream, name string) (string, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return "", err
	}
	if ci := c.CachedInfo().Cluster; ci != nil {
		return ci.Leader, nil
	}
	return "", nil
}
