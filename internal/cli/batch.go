package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
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
		subj := target.MapSubject{PeelID: e.Key()}
		if !expr.IDOnly() {
			if doc, err := factcodec.Decode(e.Value()); err == nil {
				json.Unmarshal(doc, &subj.Facts)
			}
		}
		if expr.Match(&subj) {
			ids = append(ids, e.Key())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// runBatch runs the job in waves of at most N peels: the next wave starts
// when the previous one is final. A wave that fails or misses peels does not
// stop the rest, as Salt's --batch does not; the exit status reports the
// worst outcome.
func (a *app) runBatch(ctx context.Context, f *runFlags, req wire.RunRequest) error {
	if _, err := parseBatch(f.batch, 1); err != nil {
		return withCode(ExitError, err)
	}
	info := a.info(ctx)
	expr, err := target.Parse(target.Kind(req.Target.Kind), req.Target.Expr, target.Options{Nodegroups: info.Nodegroups})
	if err != nil {
		return withCode(ExitError, err)
	}
	ids, err := a.resolveLocal(ctx, expr)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return withCode(ExitMissing, fmt.Errorf("target %q matches no known peel", req.Target.Expr))
	}
	n, err := parseBatch(f.batch, len(ids))
	if err != nil {
		return withCode(ExitError, err)
	}
	total := jobResult{Status: wire.StatusDone, Function: req.Function, Failed: []string{}, Missing: []string{}}
	start := time.Now()
	waves := (len(ids) + n - 1) / n
	for w := 0; w < waves; w++ {
		part := ids[w*n : min((w+1)*n, len(ids))]
		wr := req
		wr.Target = wire.Target{Kind: string(target.KindList), Expr: strings.Join(part, ",")}
		jid, err := a.submit(ctx, wr)
		if err != nil {
			return err
		}
		if !f.json {
			fmt.Fprintf(a.out, "batch %d/%d: %d peels, job %s\n", w+1, waves, len(part), jid)
		}
		res, err := a.collect(ctx, jid, f.json, true)
		if err != nil {
			return err
		}
		total.Expected += res.Expected
		total.Returned += res.Returned
		total.Failed = append(total.Failed, res.Failed...)
		total.Missing = append(total.Missing, res.Missing...)
		if res.Status != wire.StatusDone {
			total.Status = wire.StatusPartial
		}
		if f.json {
			json.NewEncoder(a.out).Encode(map[string]any{"batch": w + 1, "summary": res})
		}
	}
	total.JID = fmt.Sprintf("%d batches", waves)
	total.Duration = time.Since(start).Round(time.Millisecond).String()
	if f.json {
		json.NewEncoder(a.out).Encode(map[string]any{"summary": total})
	} else {
		printSummary(a.out, total)
	}
	return total.exit()
}
