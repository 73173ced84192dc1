package kvwatch

import (
	"sort"
	"sync"
	"time"
)

// Health is one watch's state.
type Health struct {
	Name     string
	Stream   string
	Consumer string // the current consumer's name
	// Blind is true from the moment the current consumer is known lost (no
	// message or heartbeat for 2 heartbeats, gone, disconnected) until a
	// replacement answers.
	Blind       bool
	BlindSince  time.Time
	Reason      string // why it is blind
	Recreations uint64 // consumers replaced so far
}

// Recreated describes one replaced consumer.
type Recreated struct {
	Watch, Stream, Consumer string // Consumer is the new one
	Reason                  string // why the old one was given up
	Blind                   time.Duration
}

// Monitor tracks the health of a process's watches, for readiness checks
// and metrics. The zero value is not usable: use NewMonitor.
type Monitor struct {
	mu          sync.Mutex
	set         map[*Follower]struct{}
	onRecreated func(Recreated)
}

// NewMonitor returns an empty monitor; onRecreated (may be nil) is called
// after every replaced consumer.
func NewMonitor(onRecreated func(Recreated)) *Monitor {
	return &Monitor{set: map[*Follower]struct{}{}, onRecreated: onRecreated}
}

func (m *Monitor) add(f *Follower) {
	m.mu.Lock()
	m.set[f] = struct{}{}
	m.mu.Unlock()
}

func (m *Monitor) remove(f *Follower) {
	m.mu.Lock()
	delete(m.set, f)
	m.mu.Unlock()
}

func (m *Monitor) recreated(r Recreated) {
	if m.onRecreated != nil {
		m.onRecreated(r)
	}
}

// Watches is the health of every running watch, by name.
func (m *Monitor) Watches() []Health {
	m.mu.Lock()
	fs := make([]*Follower, 0, len(m.set))
	for f := range m.set {
		fs = append(fs, f)
	}
	m.mu.Unlock()
	out := make([]Health, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Health())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Consumer < out[j].Consumer
	})
	return out
}

// Blind is the health of the watches that are blind now.
func (m *Monitor) Blind() []Health {
	var out []Health
	for _, h := range m.Watches() {
		if h.Blind {
			out = append(out, h)
		}
	}
	return out
}
