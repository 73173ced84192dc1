package loadgen

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress prints what the run is doing: one line rewritten in place on a
// terminal, plain lines (phase changes and a status every 5 s) otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	r     *runner

	mu    sync.Mutex
	phase string
	stop  chan struct{}
	done  chan struct{}
	width int
	rt    *rtSampler
}

func newProgress(w io.Writer, tty bool, r *runner) *progress {
	p := &progress{w: w, tty: tty, start: time.Now(), r: r, stop: make(chan struct{}), done: make(chan struct{}), rt: newRTSampler()}
	if w == nil {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

func (p *progress) set(phase string) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	changed := p.phase != phase
	p.phase = phase
	p.mu.Unlock()
	if changed && !p.tty {
		fmt.Fprintf(p.w, "[%7.1fs] %s\n", time.Since(p.start).Seconds(), phase)
	}
}

func (p *progress) line() string {
	p.mu.Lock()
	phase := p.phase
	p.mu.Unlock()
	parts := []string{fmt.Sprintf("[%7.1fs] %s", time.Since(p.start).Seconds(), phase)}
	if f := p.r.fleet; f != nil {
		parts = append(parts,
			fmt.Sprintf("conns %s/%s", fmtInt(int64(f.Connected())), fmtInt(int64(f.Conns()))),
			fmt.Sprintf("facts %s", fmtInt(f.FactsStored.Load())),
			fmt.Sprintf("returns %s", fmtInt(f.ReturnsStored.Load())))
		if n := f.Retries.Load(); n > 0 {
			parts = append(parts, fmt.Sprintf("retries %s (429 %s, timeouts %s)", fmtInt(n), fmtInt(f.Refusals.Load()), fmtInt(f.Timeouts.Load())))
		}
	}
	if st := p.r.status.Load(); st != nil {
		parts = append(parts, (*st)())
	}
	parts = append(parts, "RSS "+fmtBytes(curRSS()))
	if !p.tty {
		// The runtime's view (collector share, scheduler wait) on the plain
		// lines, every 5 s: what a starved run is short of.
		parts = append(parts, p.rt.read().String())
	}
	return strings.Join(parts, " · ")
}

func (p *progress) loop() {
	defer close(p.done)
	every := 5 * time.Second
	if p.tty {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			if p.tty {
				fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
			}
			return
		case <-t.C:
			l := p.line()
			if p.tty {
				pad := ""
				if n := len([]rune(l)); n < p.width {
					pad = strings.Repeat(" ", p.width-n)
				}
				p.width = max(p.width, len([]rune(l)))
				fmt.Fprintf(p.w, "\r%s%s", l, pad)
			} else {
				fmt.Fprintln(p.w, l)
			}
		}
	}
}

func (p *progress) close() {
	if p.w == nil {
		return
	}
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}
