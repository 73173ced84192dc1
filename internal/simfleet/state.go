package simfleet

import (
	"context"
	_ "embed"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/wire"
)

// State runs (docs/states.md, "How the tree reaches the peels"): with
// EnableStates, a simulated peel answers state.highstate and state.apply
// as a real peel does over NATS. It fetches the job's tree version from
// the state-tree bucket with statetree.FetchVersion, the real peel's code,
// into a cache of its own (a bitset of the contents it holds and the
// version it materialised: the first run is cold, the manifest and the
// version's pack, a later one of the same version costs nothing, one after
// a change the manifest and the changed contents), then stores a return of a real peel's size: the result of a
// real 50-state highstate, recorded by TestStateRecord_Highstate50Return
// (its first run, every state changed, and its second, none). It applies
// nothing: the compile and apply time of one host (BenchmarkHighstate500)
// is spent on each host in parallel, not on the shared servers.

//go:embed testdata/highstate50-cold.json
var highstateCold []byte

//go:embed testdata/highstate50-warm.json
var highstateWarm []byte

// StateConfig shapes the state answers.
type StateConfig struct {
	// Parallel bounds the state runs fetching at once across the fleet
	// (default 2,048): a real fleet's peels fetch independently, the
	// simulated ones share a process.
	Parallel int
	// Timeout bounds one peel's fetch (default 60 s).
	Timeout time.Duration
}

// States counts what the fleet's state runs moved.
type States struct {
	f   *Fleet
	sem chan struct{}
	to  time.Duration

	mu      sync.Mutex
	digests map[string]int // content digest → bit in a peel's have set
	peels   []simTree

	Runs        atomic.Int64 // state runs answered
	Failed      atomic.Int64 // runs that failed (fetch errors, busy)
	TreeGets    atomic.Int64 // direct gets of the state-tree bucket
	TreeBytes   atomic.Int64 // their payload bytes
	ReturnBytes atomic.Int64 // bytes of the returns sent
}

// simTree is one simulated peel's cache: what a real peel keeps in
// <data_dir>/state-tree.
type simTree struct {
	busy    atomic.Bool // a state run in progress (a real peel's state lock)
	mu      sync.Mutex
	version string
	have    []uint64
	ran     bool // it applied a highstate before: its host is in the state
}

// EnableStates makes the fleet answer state jobs; call before jobs run.
func (f *Fleet) EnableStates(cfg StateConfig) *States {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 2048
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	s := &States{f: f, sem: make(chan struct{}, cfg.Parallel), to: cfg.Timeout, digests: map[string]int{}, peels: make([]simTree, len(f.peels))}
	f.states.Store(s)
	return s
}

// stateRun is the dispatch hook: true when fn is a state run, which then
// answers in its own goroutine.
func (s *States) stateRun(c *Conn, jt *JobTrack, d *wire.Dispatch, idx int32, started time.Time) bool {
	if s == nil || (d.Function != "state.highstate" && d.Function != "state.apply") {
		return false
	}
	go s.run(c, jt, d, idx, started)
	return true
}

func (s *States) run(c *Conn, jt *JobTrack, d *wire.Dispatch, idx int32, started time.Time) {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	pt := &s.peels[idx]
	id := s.f.peels[idx].id
	ret := wire.Return{JID: d.JID, Peel: id, Function: d.Function, Started: started.UTC()}
	if !pt.busy.CompareAndSwap(false, true) {
		ret.Error = &wire.Error{Code: "state_busy", Msg: "another state run is in progress on this peel; try again when it ends"}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), s.to)
		_, st, err := statetree.FetchVersion(ctx, c.nc, simCache{s, pt}, d.StateTree)
		cancel()
		s.TreeGets.Add(int64(st.Gets))
		s.TreeBytes.Add(st.Bytes)
		pt.mu.Lock()
		first := !pt.ran
		pt.ran = pt.ran || err == nil
		pt.mu.Unlock()
		pt.busy.Store(false)
		switch {
		case err != nil:
			ret.Error = &wire.Error{Code: "failed", Msg: "the masters' state tree: " + err.Error()}
		case first:
			ret.Success, ret.Result = true, highstateCold
		default:
			ret.Success, ret.Result = true, highstateWarm
		}
	}
	if !ret.Success {
		s.Failed.Add(1)
		jt.Failed.Add(1)
	}
	ret.Duration = wire.Duration(time.Since(started))
	b, _ := json.Marshal(&ret)
	s.Runs.Add(1)
	s.ReturnBytes.Add(int64(len(b)))
	c.Publish(peelproto.ReturnMsgRaw(d.JID, id, ret.Success, b))
}

// simCache is statetree.Cache over one simulated peel's simTree.
type simCache struct {
	s *States
	t *simTree
}

func (c simCache) bit(digest string, add bool) (int, bool) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	i, ok := c.s.digests[digest]
	if !ok && add {
		i, ok = len(c.s.digests), true
		c.s.digests[digest] = i
	}
	return i, ok
}

func (c simCache) Tree(version string) (string, bool) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	return "", c.t.version == version
}

func (c simCache) Has(digest string) bool {
	i, ok := c.bit(digest, false)
	if !ok {
		return false
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	return i/64 < len(c.t.have) && c.t.have[i/64]&(1<<(i%64)) != 0
}

func (c simCache) Put(digest string, _ []byte) error {
	i, _ := c.bit(digest, true)
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	for len(c.t.have) <= i/64 {
		c.t.have = append(c.t.have, 0)
	}
	c.t.have[i/64] |= 1 << (i % 64)
	return nil
}

func (c simCache) Materialise(m statetree.Manifest) (string, error) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.t.version = m.Version
	return "", nil
}
