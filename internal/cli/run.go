package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

type runFlags struct {
	json    bool
	timeout time.Duration
	kind    map[string]*bool
	batch   string
	async   bool
}

func (a *app) runCmd() *cobra.Command {
	f := &runFlags{kind: map[string]*bool{}}
	c := &cobra.Command{
		Use:   "run [flags] TARGET FUNCTION [ARGS...]",
		Short: "Run a function on the peels a target selects",
		Long: `Run a function on every peel the target selects, print each return as it
arrives and a summary. The master resolves the target to the exact set of
peels, so the summary names every peel that did not answer.

Targets: glob on ids (default), -L list, -E regex, -G fact (os:id:debian),
-P fact regex, -S CIDR, -N node group, -C compound
('G@os:id:debian and web* or L@db1,db2').

Arguments: one JSON object or array is passed as is; key=value words make an
object; other words are positional.

Exit status: 0 all returned success, 1 some failed, 2 some did not answer
or were offline, 3 the command itself failed.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return a.run(cmd.Context(), f, args) },
	}
	c.Flags().BoolVar(&f.json, "json", false, "one JSON object per return, then a JSON summary")
	c.Flags().DurationVarP(&f.timeout, "timeout", "t", 0, "job timeout (default: the master's jobs.default_timeout)")
	c.Flags().StringVar(&f.batch, "batch", "", "rolling batch: N peels or P% at a time")
	c.Flags().BoolVar(&f.async, "async", false, "print the job id and return at once")
	for _, k := range []struct{ letter, help string }{
		{"L", "target is a comma-separated list of ids"},
		{"E", "target is a regular expression on ids"},
		{"G", "target is a fact match key:path:glob"},
		{"P", "target is a fact regex key:path:regex"},
		{"S", "target is a CIDR or address"},
		{"N", "target is a node group"},
		{"C", "target is a compound expression"},
	} {
		f.kind[k.letter] = c.Flags().BoolP(strings.ToLower(k.letter)+"-target", k.letter, false, k.help)
	}
	return c
}

// ParseArgs turns command-line words into job arguments.
func ParseArgs(words []string) (json.RawMessage, error) {
	if len(words) == 0 {
		return nil, nil
	}
	if len(words) == 1 {
		w := strings.TrimSpace(words[0])
		if strings.HasPrefix(w, "{") || strings.HasPrefix(w, "[") {
			if !json.Valid([]byte(w)) {
				return nil, fmt.Errorf("argument %q: looks like JSON but does not parse", w)
			}
			return json.RawMessage(w), nil
		}
	}
	kv := map[string]any{}
	var pos []string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if ok && k != "" && !strings.ContainsAny(k, " \t/'\"") {
			var jv any
			if err := json.Unmarshal([]byte(v), &jv); err == nil && !strings.HasPrefix(v, "\"") {
				kv[k] = jv
			} else {
				kv[k] = v
			}
			continue
		}
		pos = append(pos, w)
	}
	switch {
	case len(kv) > 0 && len(pos) > 0:
		return nil, errors.New("arguments: mix of key=value and positional words; use one form or a JSON object")
	case len(kv) > 0:
		return json.Marshal(kv)
	default:
		return json.Marshal(pos)
	}
}

func (f *runFlags) targetKind() (string, error) {
	kind := ""
	for letter, on := range f.kind {
		if *on {
			if kind != "" {
				return "", errors.New("give at most one of -L -E -G -P -S -N -C")
			}
			k, err := target.KindFromFlag(letter)
			if err != nil {
				return "", err
			}
			kind = string(k)
		}
	}
	return kind, nil
}

func (a *app) submit(ctx context.Context, req wire.RunRequest) (string, error) {
	b, _ := json.Marshal(req)
	msg, err := a.request(ctxT(ctx, 10*time.Second), names.APISubject("job.run"), b)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return "", withCode(ExitError, fmt.Errorf("no master answers on %s: is zester-master running?", config.Redact(a.natsURL)))
		}
		return "", withCode(ExitError, fmt.Errorf("submit job: %w", err))
	}
	if e := msg.Header.Get(micro.ErrorHeader); e != "" {
		return "", withCode(ExitError, fmt.Errorf("master refused the job: %s", e))
	}
	var resp wire.RunResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.JID == "" {
		return "", withCode(ExitError, fmt.Errorf("bad answer from master: %s", msg.Data))
	}
	return resp.JID, nil
}

func ctxT(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

func (a *app) run(ctx context.Context, f *runFlags, args []string) error {
	kind, err := f.targetKind()
	if err != nil {
		return withCode(ExitError, err)
	}
	tgt, fn := args[0], args[1]
	jargs, err := ParseArgs(args[2:])
	if err != nil {
		return withCode(ExitError, err)
	}
	if err := a.connect(ctx); err != nil {
		return err
	}
	// Parse here too, with the masters' node groups, so a bad target is
	// reported before anything is recorded.
	info := a.info(ctx)
	if _, err := target.Parse(target.Kind(kind), tgt, target.Options{Nodegroups: info.Nodegroups}); err != nil {
		return withCode(ExitError, err)
	}
	if info.MaxArgs > 0 && int64(len(jargs)) > info.MaxArgs {
		return withCode(ExitError, fmt.Errorf("arguments: %d bytes, over the masters' maximum of %d bytes (jobs.max_args)", len(jargs), info.MaxArgs))
	}
	req := wire.RunRequest{Target: wire.Target{Kind: kind, Expr: tgt}, Function: fn, Args: jargs, Timeout: wire.Duration(f.timeout), Requester: requester()}
	if f.batch != "" {
		return a.runBatch(ctx, f, req)
	}
	jid, err := a.submit(ctx, req)
	if err != nil {
		return err
	}
	if f.async {
		if f.json {
			json.NewEncoder(a.out).Encode(wire.RunResponse{JID: jid})
		} else {
			fmt.Fprintln(a.out, jid)
		}
		return nil
	}
	return a.follow(ctx, jid, f.json, true)
}

func requester() string {
	u := os.Getenv("USER")
	h, _ := os.Hostname()
	return u + "@" + h
}

// jobResult is the summary of one finished job.
type jobResult struct {
	JID      string   `json:"jid"`
	Status   string   `json:"status"`
	Function string   `json:"function"`
	Expected int      `json:"expected"`
	Returned int      `json:"returned"`
	Failed   []string `json:"failed"`
	Missing  []string `json:"missing"`
	Duration string   `json:"duration"`
	// Offline peels were targeted but offline when the job started: not
	// sent the job, not waited for.
	Offline []string `json:"offline"`
}

// follow streams a job's returns until the job is final, prints the
// summary and returns the exit status.
func (a *app) follow(ctx context.Context, jid string, asJSON, stream bool) error {
	res, err := a.collect(ctx, jid, asJSON, stream)
	if err != nil {
		return err
	}
	if asJSON {
		json.NewEncoder(a.out).Encode(map[string]any{"summary": res})
	} else {
		printSummary(a.out, res)
	}
	return res.exit()
}

func (r jobResult) exit() error {
	switch {
	case len(r.Missing) > 0 || r.Status == wire.StatusTimedOut || r.Status == wire.StatusPartial:
		return withCode(ExitMissing, nil)
	case len(r.Failed) > 0:
		return withCode(ExitFailed, nil)
	}
	return nil
}

// collect streams a job's returns until the job is final and returns its
// summary.
func (a *app) collect(ctx context.Context, jid string, asJSON, stream bool) (jobResult, error) {
	kvJobs, err := a.kv(ctx, names.BucketJobs)
	if err != nil {
		return jobResult{}, err
	}
	kvRet, err := a.kv(ctx, names.BucketJobReturns)
	if err != nil {
		return jobResult{}, err
	}
	rw, err := kvRet.Watch(ctx, names.ReturnFilter(jid))
	if err != nil {
		return jobResult{}, withCode(ExitError, err)
	}
	defer rw.Stop()
	jw, err := kvJobs.Watch(ctx, names.JobKey(jid))
	if err != nil {
		return jobResult{}, withCode(ExitError, err)
	}
	defer jw.Stop()

	progress := isTerminal(a.errOut) && !asJSON && !a.noProgress
	var job wire.Job
	haveJob := false
	seen := map[string]bool{}
	var failed []string
	enc := json.NewEncoder(a.out)
	lastProgress := time.Time{}
	showProgress := func(force bool) {
		if !progress || (!force && time.Since(lastProgress) < 100*time.Millisecond) {
			return
		}
		lastProgress = time.Now()
		exp := "?"
		if haveJob && job.Status != wire.StatusPending {
			exp = fmt.Sprint(job.Expected)
		}
		fmt.Fprintf(a.errOut, "\r\033[Kjob %s: %d/%s returned, %d failed", jid, len(seen), exp, len(failed))
	}
	var deadline <-chan time.Time
	for {
		if haveJob && wire.Final(job.Status) && len(seen) >= job.Returned {
			break
		}
		select {
		case <-ctx.Done():
			return jobResult{}, withCode(ExitError, fmt.Errorf("interrupted; job %s goes on (zester job wait %s)", jid, jid))
		case <-deadline:
			return jobResult{}, withCode(ExitMissing, fmt.Errorf("job %s: no final status from the masters after its deadline", jid))
		case e := <-jw.Updates():
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if err := json.Unmarshal(e.Value(), &job); err != nil {
				return jobResult{}, withCode(ExitError, fmt.Errorf("job %s: corrupt record: %v", jid, err))
			}
			if !haveJob {
				deadline = time.After(time.Until(job.Deadline) + 15*time.Second)
			}
			haveJob = true
			showProgress(true)
			if wire.Final(job.Status) && len(seen) < job.Returned {
				// The returns are stored; give the watch a moment to bring them.
				deadline = time.After(3 * time.Second)
			}
		case e := <-rw.Updates():
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			_, keyPeel, _ := names.ParseReturnKey(e.Key())
			var r wire.Return
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				// A corrupt value still counts as that peel's (failed) return.
				r = wire.Return{JID: jid, Peel: keyPeel, Error: &wire.Error{Code: "corrupt", Msg: fmt.Sprintf("stored return does not decode: %v", err)}}
			}
			if r.Peel != keyPeel {
				// The key is what the peel's permissions allow it to write;
				// a body naming another peel is a lie, not that peel's return.
				r = wire.Return{JID: jid, Peel: keyPeel, Error: &wire.Error{Code: "identity", Msg: fmt.Sprintf("return stored under %q claims to be from %q", keyPeel, r.Peel)}}
			}
			if seen[r.Peel] {
				continue
			}
			seen[r.Peel] = true
			if !r.Success {
				failed = append(failed, r.Peel)
			}
			if stream {
				if progress {
					fmt.Fprint(a.errOut, "\r\033[K")
				}
				if asJSON {
					enc.Encode(r)
				} else {
					printReturn(a.out, &r)
				}
			}
			showProgress(false)
		}
	}
	if progress {
		fmt.Fprint(a.errOut, "\r\033[K")
	}
	missing, _ := a.missing(ctx, kvJobs, jid, job.Partitions)
	sort.Strings(failed)
	return jobResult{JID: jid, Status: job.Status, Function: job.Function, Expected: job.Expected, Returned: len(seen), Failed: nonNil(failed), Missing: nonNil(missing),
		Duration: job.Finished.Sub(job.Created).Round(time.Millisecond).String(), Offline: nonNil(a.offlinePeels(ctx, kvJobs, jid, job.Offline))}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// missing collects the names of peels that did not answer from the parts.
func (a *app) missing(ctx context.Context, kv jetstream.KeyValue, jid string, parts int) ([]string, error) {
	lister, err := kv.ListKeysFiltered(ctx, names.JobPartFilter(jid))
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var p wire.JobPart
		if json.Unmarshal(e.Value(), &p) == nil {
			out = append(out, p.Missing...)
		}
	}
	sort.Strings(out)
	return out, nil
}

func printReturn(w io.Writer, r *wire.Return) {
	if !r.Success {
		msg := "failed"
		if r.Error != nil {
			msg = r.Error.Code + ": " + r.Error.Msg
		}
		fmt.Fprintf(w, "%s: ERROR %s\n", r.Peel, msg)
		if len(r.Result) == 0 {
			return
		}
	}
	var cmd struct {
		Stdout  *string `json:"stdout"`
		Stderr  string  `json:"stderr"`
		Retcode int     `json:"retcode"`
	}
	if json.Unmarshal(r.Result, &cmd) == nil && cmd.Stdout != nil {
		if r.Success {
			fmt.Fprintf(w, "%s: retcode %d\n", r.Peel, cmd.Retcode)
		}
		for _, l := range strings.Split(strings.TrimRight(*cmd.Stdout, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
		if cmd.Stderr != "" {
			for _, l := range strings.Split(strings.TrimRight(cmd.Stderr, "\n"), "\n") {
				fmt.Fprintf(w, "    stderr: %s\n", l)
			}
		}
		return
	}
	if r.Success {
		fmt.Fprintf(w, "%s: %s\n", r.Peel, string(r.Result))
	}
}

func printSummary(w io.Writer, r jobResult) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "\nJOB\tSTATUS\tEXPECTED\tRETURNED\tFAILED\tMISSING\tDURATION")
	fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.JID, r.Status, r.Expected, r.Returned, len(r.Failed), len(r.Missing), r.Duration)
	tw.Flush()
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, "failed: %s\n", strings.Join(capList(r.Failed, 50), ", "))
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "did not answer: %s\n", strings.Join(capList(r.Missing, 50), ", "))
	}
	printOffline(w, r.Offline)
}

func capList(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("… and %d more", len(s)-n))
}
