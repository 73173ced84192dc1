package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

func (a *app) jobCmd() *cobra.Command {
	var listJSON bool
	var limit int
	list := command("list", "List recent jobs, newest first", cobra.NoArgs, a.online(func(ctx context.Context, _ []string) error {
		// Main records only: their keys are one token, parts' are two.
		byKey := map[string]wire.Job{}
		err := a.snapshot(ctx, names.BucketJobs, "*", false, func(e kvwatch.KeyValueEntry) {
			var j wire.Job
			if json.Unmarshal(e.Value(), &j) == nil {
				byKey[e.Key()] = j
			}
		})
		if err != nil {
			return err
		}
		var jobs []wire.Job
		for _, j := range byKey {
			jobs = append(jobs, j)
		}
		sort.Slice(jobs, func(i, k int) bool { return jobs[i].JID > jobs[k].JID })
		if limit > 0 && len(jobs) > limit {
			jobs = jobs[:limit]
		}
		return a.emit(listJSON, jobs, "JID\tFUNCTION\tTARGET\tSTATUS\tEXPECTED\tRETURNED\tFAILED\tMISSING\tCREATED\tBY", func(tw io.Writer) {
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", j.JID, j.Function, j.Target.Expr, j.Status, j.Expected, j.Returned, j.Failed, j.Missing,
					j.Created.Local().Format(time.DateTime), j.Requester)
			}
		})
	}))
	jsonFlag(list, &listJSON, "JSON output")
	list.Flags().IntVarP(&limit, "limit", "n", 50, "show at most N jobs (0: all)")

	var showJSON bool
	show := command("show JID", "Show a job's record and its returns", cobra.ExactArgs(1), a.online(func(ctx context.Context, args []string) error {
		kv, err := a.kv(ctx, names.BucketJobs)
		if err != nil {
			return err
		}
		var e jetstream.KeyValueEntry
		err = a.retry(ctx, "read job "+args[0], a.stepBudget(), attemptTimeout, func(actx context.Context) error {
			var err error
			e, err = kv.Get(actx, names.JobKey(args[0]))
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
				return stop(err)
			}
			return err
		})
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return withCode(ExitError, fmt.Errorf("no job %q", args[0]))
		}
		if err != nil {
			return err
		}
		var j wire.Job
		if err := json.Unmarshal(e.Value(), &j); err != nil {
			return withCode(ExitError, fmt.Errorf("job %s: corrupt record: %v", args[0], err))
		}
		if !wire.Final(j.Status) {
			if showJSON {
				return writeJSON(a.out, j)
			}
			fmt.Fprintf(a.out, "job %s: %s, %s on %q, expected %d\n", j.JID, j.Status, j.Function, j.Target.Expr, j.Expected)
			return nil
		}
		return a.follow(ctx, args[0], showJSON, true)
	}))
	jsonFlag(show, &showJSON, "JSON output")

	var waitJSON bool
	var waitTimeout time.Duration
	wait := command("wait JID", "Wait for a job to finish; exit status as for run", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if waitTimeout > 0 {
			// Also how long each step is retried when NATS or
			// JetStream does not answer.
			a.budget = waitTimeout
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, waitTimeout, errGaveUp)
			defer cancel()
		}
		if err := a.connect(ctx); err != nil {
			return err
		}
		return a.follow(ctx, args[0], waitJSON, false)
	})
	jsonFlag(wait, &waitJSON, "JSON summary")
	wait.Flags().DurationVarP(&waitTimeout, "timeout", "t", 0, "give up after DURATION (default: 15s after the job's deadline; 30s per step to reach NATS and the buckets)")
	return group("job", "List, show and wait for jobs", list, show, wait)
}
