package daemon

import (
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnectJS connects to url (a comma-separated list of servers) and opens a
// JetStream context on the connection. On an error nothing is left open.
func ConnectJS(url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// AsyncErrors is the connect option that logs the errors NATS reports
// asynchronously (a slow consumer, a permission violation), with the
// subscription's subject.
func AsyncErrors(log *slog.Logger) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subj := ""
		if sub != nil {
			subj = sub.Subject
		}
		log.Warn("nats async error", "subject", subj, "err", err)
	})
}

// Closer waits for a NATS connection to finish draining. Drain returns at
// once and the connection closes when its subscriptions have delivered what
// they hold and its publishes are flushed; the closed callback says when.
type Closer struct {
	once   sync.Once
	closed chan struct{}
}

// NewCloser returns a Closer; pass its Option to nats.Connect.
func NewCloser() *Closer { return &Closer{closed: make(chan struct{})} }

// Option is the connect option that tells the Closer the connection closed.
// It replaces any earlier ClosedHandler in the option list.
func (c *Closer) Option() nats.Option {
	return nats.ClosedHandler(func(*nats.Conn) { c.once.Do(func() { close(c.closed) }) })
}

// Closed is closed once the connection is.
func (c *Closer) Closed() <-chan struct{} { return c.closed }

// Drain drains nc and waits until it has closed, at most within; then it
// closes nc regardless, so a server that does not answer cannot hold the
// stop beyond its budget.
func (c *Closer) Drain(nc *nats.Conn, within time.Duration) {
	if nc.IsClosed() {
		return
	}
	if err := nc.Drain(); err == nil {
		t := time.NewTimer(within)
		defer t.Stop()
		select {
		case <-c.closed:
		case <-t.C:
		}
	}
	nc.Close()
}
