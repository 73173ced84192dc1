package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/syncio"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

// parseBatch reads "N" or "P%" against a total.
func parseBatch(spec string, total int) (int, error) {
	s := strings.TrimSpace(spec)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, fmt.Errorf("--batch %q: want a percentage in (0, 100]", spec)
		}
		n := int(float64(total) * f / 100)
		return max(n, 1), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--batch %q: want a positive number of peels or a percentage like 25%%", spec)
	}
	return n, nil
}

// resolveLocal evaluates a target against the facts bucket, exactly as the
// masters do against their index.
func (a *app) resolveLocal(ctx context.Context, expr target.Expr) ([]string, error) {
	kv, err := a.kv(ctx, names.BucketFacts)
	if err != nil {
		return nil, err
	}
	var opts []jetstream.WatchOpt
	opts = append(opts, jetstream.IgnoreDeletes())
	if expr.IDOnly() {
		opts = append(opts, jetstream.MetaOnly())
	}
	w, err := kv.WatchAll(ctx, opts...)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	defer w.Stop()
	var ids []string
	for e := range w.Updates() {
		if e == nil {
			break
		}
		// The masters' matcher: target.SubjectFromJSON over the decoded value.
		subj := &target.MapSubject{PeelID: e.Key()}
		if !expr.IDOnly() {
			if doc, err := factcodec.Decode(e.Value()); err == nil {
				subj, _ = target.SubjectFromJSON(e.Key(), doc)
			}
		}
		if expr.Match(subj) {
			ids = append(ids, e.Key())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// resolveTarget parses a target with the masters' node groups and resolves
// it against the facts bucket (resolveLocal); a target that matches no
// known peel is an error (exit 2).
func (a *app) resolveTarget(ctx context.Context, t wire.Target) ([]string, wire.Info, error) {
	info := a.info(ctx)
	expr, err := target.Parse(target.Kind(t.Kind), t.Expr, target.Options{Nodegroups: info.Nodegroups})
	if err != nil {
		return nil, info, withCode(ExitError, err)
	}
	if target.UsesSettings(expr) {
		// Only the masters hold the rendered settings.
		return nil, info, withCode(ExitError, fmt.Errorf("target %q: the CLI resolves targets from the facts bucket here, and I@ needs the settings the masters rendered: target the peels by facts or ids", t.Expr))
	}
	ids, err := a.resolveLocal(ctx, expr)
	if err != nil {
		return nil, info, err
	}
	if len(ids) == 0 {
		return nil, info, withCode(ExitMissing, fmt.Errorf("target %q matches no known peel", t.Expr))
	}
	return ids, info, nil
}

// runBatch runs the job as a rolling batch over the resolved peels: at most
// N peels have the job at any time. The peels go out in slices of about N/4
// (each slice one job, so the master still names every peel that did not
// answer), and a new slice starts as soon as one finishes, so the batch
// rolls on instead of waiting for the slowest peel of a whole wave. A slice
// that fails or misses peels does not stop the rest, as with Salt's --batch;
// the exit status reports the worst outcome.
func (a *app) runBatch(ctx context.Context, f *runFlags, req wire.RunRequest) error {
	if _, err := parseBatch(f.batch, 1); err != nil {
		return withCode(ExitError, err)
	}
	ids, _, err := a.resolveTarget(ctx, req.Target)
	if err != nil {
		return err
	}
	n, err := parseBatch(f.batch, len(ids))
	if err != nil {
		return withCode(ExitError, err)
	}
	slice := max(1, (n+3)/4)
	window := max(1, n/slice) // slices in flight: at most n peels
	var slices [][]string
	for i := 0; i < len(ids); i += slice {
		slices = append(slices, ids[i:min(i+slice, len(ids))])
	}

	// Slices print concurrently: whole lines through one lock, and no
	// per-job progress line (the batch keeps its own).
	out := syncio.NewWriter(a.out)
	sub := *a
	sub.out, sub.noProgress = out, true
	progress := isTerminal(a.errOut) && !f.json

	total := jobResult{Status: wire.StatusDone, Function: req.Function, Failed: []string{}, Missing: []string{}, Offline: []string{}}
	var mu sync.Mutex
	var firstErr error
	done, inFlight := 0, 0
	showProgress := func() {
		if progress {
			out.Locked(func() {
				fmt.Fprintf(a.errOut, "\r\033[Kbatch of %d: %d/%d peels done, %d in flight", n, done, len(ids), inFlight)
			})
		}
	}
	start := time.Now()
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	for k, part := range slices {
		sem <- struct{}{}
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			<-sem
			break
		}
		wr := req
		wr.Target = wire.Target{Kind: string(target.KindList), Expr: strings.Join(part, ",")}
		jid, err := a.submit(ctx, wr)
		if err != nil {
			<-sem
			mu.Lock()
			firstErr = err
			mu.Unlock()
			break
		}
		if !f.json {
			fmt.Fprintf(out, "slice %d/%d: %d peels, job %s\n", k+1, len(slices), len(part), jid)
		}
		mu.Lock()
		inFlight += len(part)
		mu.Unlock()
		showProgress()
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := sub.collect(ctx, jid, f.json, true)
			mu.Lock()
			defer mu.Unlock()
			inFlight -= len(part)
			done += len(part)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			total.Expected += res.Expected
			total.Returned += res.Returned
			total.Failed = append(total.Failed, res.Failed...)
			total.Missing = append(total.Missing, res.Missing...)
			total.Offline = append(total.Offline, res.Offline...)
			if res.Status != wire.StatusDone {
				total.Status = wire.StatusPartial
			}
			if f.json {
				encodeLine(out, map[string]any{"slice": k + 1, "summary": res})
			}
			showProgress()
		}()
	}
	wg.Wait()
	if progress {
		fmt.Fprint(a.errOut, "\r\033[K")
	}
	if firstErr != nil {
		return firstErr
	}
	sort.Strings(total.Failed)
	sort.Strings(total.Missing)
	sort.Strings(total.Offline)
	total.JID = fmt.Sprintf("%d jobs", len(slices))
	total.Duration = time.Since(start).Round(time.Millisecond).String()
	if f.json {
		json.NewEncoder(a.out).Encode(map[string]any{"summary": total})
	} else {
		printSummary(a.out, total)
	}
	return total.exit()
}

// encodeLine writes v as one JSON line in a single Write (whole, through a
// syncio.Writer).
func encodeLine(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}
