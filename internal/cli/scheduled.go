package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// `zester run TARGET FUNCTION --scheduled` runs nothing: it shows, for each
// peel the target selects, the latest run of FUNCTION by the peel's own
// schedule (peel.yaml schedule:), read from job-events, printed as a job's
// return would be (state returns in Salt's state output).

// scheduledFilters bounds the per-peel filter subjects of one read; a larger
// target reads every peel's latest events and keeps the targeted ones.
const scheduledFilters = 100

// scheduledRow is one targeted peel's line of the --scheduled output.
type scheduledRow struct {
	Peel string `json:"peel"`
	// State is the peel's presence: online, offline, or "" (unknown).
	State string              `json:"state"`
	Event *wire.ScheduleEvent `json:"event"`
}

// scheduledSummary is the --scheduled summary.
type scheduledSummary struct {
	Function string   `json:"function"`
	Entry    string   `json:"entry,omitempty"`
	Peels    int      `json:"peels"`
	Results  int      `json:"results"`
	Drift    []string `json:"drift"`
	Failed   []string `json:"failed"`
	None     []string `json:"none"`
	Offline  []string `json:"offline"`
}

func (a *app) runScheduled(ctx context.Context, f *runFlags, tgt, fn string, words []string) error {
	switch {
	case len(words) > 0:
		return withCode(ExitError, fmt.Errorf("--scheduled runs nothing and takes no arguments (the schedule in peel.yaml has them): drop %s", strings.Join(words, " ")))
	case f.batch != "" || f.async:
		return withCode(ExitError, errors.New("--scheduled runs nothing: --batch and --async do not apply"))
	}
	if f.entry != "" {
		if err := names.ValidateScheduleName(f.entry); err != nil {
			return withCode(ExitError, fmt.Errorf("--entry: %w", err))
		}
	}
	kind, err := f.targetKind()
	if err != nil {
		return withCode(ExitError, err)
	}
	if err := a.connect(ctx); err != nil {
		return err
	}
	ids, info, err := a.resolveTarget(ctx, wire.Target{Kind: kind, Expr: tgt})
	if err != nil {
		return err
	}
	latest, err := a.latestScheduled(ctx, ids, fn, f.entry)
	if err != nil {
		return err
	}
	pres, err := a.presence(ctx, info.Partitions)
	if err != nil {
		return err
	}
	state := map[string]string{}
	for _, p := range pres {
		state[p.p.ID] = p.p.State
	}
	sum := scheduledSummary{Function: fn, Entry: f.entry, Peels: len(ids), Drift: []string{}, Failed: []string{}, None: []string{}, Offline: []string{}}
	enc := json.NewEncoder(a.out)
	for _, id := range ids {
		row := scheduledRow{Peel: id, State: state[id], Event: latest[id]}
		if row.State == wire.PresenceOffline {
			sum.Offline = append(sum.Offline, id)
		}
		switch ev := row.Event; {
		case ev == nil:
			sum.None = append(sum.None, id)
		default:
			sum.Results++
			if !ev.Success {
				sum.Failed = append(sum.Failed, id)
			}
			if len(ev.Drift) > 0 {
				sum.Drift = append(sum.Drift, id)
			}
		}
		if f.json {
			enc.Encode(row)
		} else {
			printScheduled(a.out, row, fn, a.stateOutput)
		}
	}
	if f.json {
		enc.Encode(map[string]any{"summary": sum})
	} else {
		printScheduledSummary(a.out, sum)
	}
	switch {
	case len(sum.None) > 0 || len(sum.Offline) > 0:
		return withCode(ExitMissing, nil)
	case len(sum.Failed) > 0:
		return withCode(ExitFailed, nil)
	}
	return nil
}

// latestScheduled reads, in one last-per-subject pass over job-events, the
// latest scheduled run of fn (of entry, when given) of each peel of ids.
// Each entry of each peel is one subject, so the server hands over one
// message per entry and peel, however long the stream's history.
func (a *app) latestScheduled(ctx context.Context, ids []string, fn, entry string) (map[string]*wire.ScheduleEvent, error) {
	ent := entry
	if ent == "" {
		ent = "*"
	}
	want := map[string]bool{}
	var filters []string
	for _, id := range ids {
		want[id] = true
		filters = append(filters, names.ScheduleEventFilter(id, ent))
	}
	if len(filters) > scheduledFilters {
		filters = []string{names.ScheduleEventFilter("*", ent)}
	}
	var mu sync.Mutex
	latest := map[string]*wire.ScheduleEvent{}
	var bad []string
	// The read is bounded by progress, not by total time (as snapshot):
	// a large fleet's events take longer than any fixed bound.
	err := a.retry(ctx, "read "+names.StreamJobEvents, a.stepBudget(), attemptTimeout, func(context.Context) error {
		done := make(chan struct{})
		progress := make(chan struct{}, 1)
		var once sync.Once
		fw, err := kvwatch.Follow(ctx, a.js, names.StreamJobEvents, kvwatch.FollowOptions{
			Name: "scheduled", Subjects: filters, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
			OnCaughtUp: func() { once.Do(func() { close(done) }) },
		}, func(m jetstream.Msg) {
			select {
			case progress <- struct{}{}:
			default:
			}
			id, _, _, ok := names.ParseScheduleSubject(m.Subject())
			if !ok || !want[id] {
				return
			}
			var ev wire.ScheduleEvent
			mu.Lock()
			defer mu.Unlock()
			if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.Peel != id {
				// The subject is what the peel's permissions let it
				// publish; a body naming another peel is not its run.
				bad = append(bad, m.Subject())
				return
			}
			if ev.Function != fn {
				return
			}
			if cur := latest[id]; cur == nil || ev.Started.After(cur.Started) {
				latest[id] = &ev
			}
		})
		if err != nil {
			return err
		}
		defer fw.Stop()
		idle := time.NewTimer(snapshotIdle)
		defer idle.Stop()
		for {
			select {
			case <-done:
				return nil
			case <-progress:
				idle.Reset(snapshotIdle)
			case <-idle.C:
				return fmt.Errorf("read %s: no events for %s (%w)", names.StreamJobEvents, snapshotIdle, context.DeadlineExceeded)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, withCode(ExitError, fmt.Errorf("stream %s does not exist (zester-master creates it when it starts): %w", names.StreamJobEvents, err))
	}
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	for _, s := range bad {
		fmt.Fprintf(a.errOut, "zester: ignored the event on %s: it does not decode or names another peel\n", s)
	}
	return latest, nil
}

// printScheduled writes one peel's latest scheduled run: a header line with
// the entry, when, how long, what it found, then the return as `zester run`
// prints it.
func printScheduled(w io.Writer, r scheduledRow, fn, stateOutput string) {
	name := r.Peel
	if r.State == wire.PresenceOffline {
		name += " (offline)"
	}
	ev := r.Event
	if ev == nil {
		fmt.Fprintf(w, "%s: no scheduled run of %s recorded\n", name, fn)
		return
	}
	var notes []string
	if ev.States != nil {
		notes = append(notes, fmt.Sprintf("%d states, %d changed, %d failed", ev.States.Total, ev.States.Changed, ev.States.Failed))
	}
	if len(ev.Drift) > 0 {
		ids := make([]string, 0, len(ev.Drift))
		for _, d := range ev.Drift {
			ids = append(ids, d.Function+" "+d.ID)
		}
		notes = append(notes, "drift: "+strings.Join(capList(ids, 20), ", "))
	}
	if ev.Skipped > 0 {
		notes = append(notes, fmt.Sprintf("%d runs skipped (still running)", ev.Skipped))
	}
	next := ""
	if !ev.Next.IsZero() {
		next = ", next " + ev.Next.Local().Format(time.DateTime)
	}
	took := ev.Duration.D().Round(time.Millisecond).String()
	if ev.Duration.D() < time.Millisecond {
		took = "under 1ms"
	}
	fmt.Fprintf(w, "%s: scheduled %s %q at %s, took %s%s\n", name, ev.Function, ev.Entry, ev.Started.Local().Format(time.DateTime), took, next)
	for _, n := range notes {
		fmt.Fprintf(w, "    %s\n", n)
	}
	switch {
	case ev.Return != nil:
		ret := *ev.Return
		ret.Peel = name
		printReturn(w, &ret, stateOutput)
	case ev.Clean:
		fmt.Fprintf(w, "    clean: no state changed or failed (the per-state return of a clean run is not stored)\n")
	case ev.Truncated:
		fmt.Fprintf(w, "    (the full return was over the server's maximum payload and is not stored)\n")
	}
}

func printScheduledSummary(w io.Writer, s scheduledSummary) {
	what := s.Function
	if s.Entry != "" {
		what += " (" + s.Entry + ")"
	}
	table(w, "\nSCHEDULED\tPEELS\tRESULTS\tDRIFT\tFAILED\tNONE\tOFFLINE", func(tw io.Writer) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", what, s.Peels, s.Results, len(s.Drift), len(s.Failed), len(s.None), len(s.Offline))
	})
	for _, l := range []struct {
		title string
		ids   []string
	}{{"drift", s.Drift}, {"failed", s.Failed}, {"no scheduled run recorded", s.None}, {"offline", s.Offline}} {
		if len(l.ids) > 0 {
			sort.Strings(l.ids)
			fmt.Fprintf(w, "%s: %s\n", l.title, strings.Join(capList(l.ids, 50), ", "))
		}
	}
}
