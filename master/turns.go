package master

import "sync"

// turns runs functions one at a time, in the order their tickets were taken.
//
// The membership computes a new partition table under its lock and must
// announce the change after releasing it (the receivers call back into the
// membership). Two goroutines recompute (the heartbeat watch and the expiry
// ticker), so without turns the announcements of two successive tables could
// run at once or in the wrong order, and a partition gained then lost again
// could end up believed gained. Taking the ticket under the lock that orders
// the tables makes the announcements follow the same order.
type turns struct {
	mu      sync.Mutex
	cond    sync.Cond
	issued  uint64 // last ticket handed out
	served  uint64 // last ticket whose function has returned
	waiting int    // callers parked until their turn
}

// take hands out the next ticket; every ticket must be passed to run once.
func (t *turns) take() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.issued++
	return t.issued
}

// run waits until every earlier ticket has run, then runs f.
func (t *turns) run(ticket uint64, f func()) {
	t.mu.Lock()
	if t.cond.L == nil {
		t.cond.L = &t.mu
	}
	for t.served != ticket-1 {
		t.waiting++
		t.cond.Wait()
		t.waiting--
	}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.served = ticket
		t.cond.Broadcast()
		t.mu.Unlock()
	}()
	f()
}

// parked is how many callers wait for their turn (for tests).
func (t *turns) parked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waiting
}
