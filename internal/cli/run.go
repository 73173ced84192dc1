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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/kvwatch"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/stateout"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

type runFlags struct {
	json    bool
	timeout time.Duration
	kind    map[string]*bool
	batch   string
	async   bool
	// scheduled and entry: --scheduled shows the peels' latest scheduled
	// runs instead of running (scheduled.go).
	scheduled bool
	entry     string
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
-P fact regex, -S CIDR, -N node group, -I settings (role:web), -C compound
('G@os:id:debian and web* or L@db1,db2').

Arguments: one JSON object or array is passed as is; key=value words make an
object; other words are positional; both together are Salt's convention
(state.apply web test=true), sent as {"_args": ["web"], "test": true}.

Exit status: 0 all returned success, 1 some failed, 2 some did not answer
or were offline, 3 the command itself failed.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return a.run(cmd.Context(), f, args) },
	}
	c.Flags().BoolVar(&f.json, "json", false, "one JSON object per return, then a JSON summary")
	c.Flags().DurationVarP(&f.timeout, "timeout", "t", 0, "job timeout (default: the master's jobs.default_timeout)")
	c.Flags().StringVar(&f.batch, "batch", "", "rolling batch: N peels or P% at a time")
	c.Flags().BoolVar(&f.async, "async", false, "print the job id and return at once")
	c.Flags().BoolVar(&f.scheduled, "scheduled", false, "run nothing: show each peel's latest run of FUNCTION by its own schedule (peel.yaml schedule:)")
	c.Flags().StringVar(&f.entry, "entry", "", "with --scheduled: only the runs of this schedule entry")
	addTargetFlags(c, f.kind)
	return c
}

// addTargetFlags adds -L -E -G -P -S -N -C to a command that takes a
// target; targetKind reads them back.
func addTargetFlags(c *cobra.Command, kind map[string]*bool) {
	for _, k := range []struct{ letter, help string }{
		{"L", "target is a comma-separated list of ids"},
		{"E", "target is a regular expression on ids"},
		{"G", "target is a fact match key:path:glob"},
		{"P", "target is a fact regex key:path:regex"},
		{"S", "target is a CIDR or address"},
		{"N", "target is a node group"},
		{"I", "target is a settings match key:path:glob (what the masters rendered)"},
		{"C", "target is a compound expression"},
	} {
		kind[k.letter] = c.Flags().BoolP(strings.ToLower(k.letter)+"-target", k.letter, false, k.help)
	}
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
		// Salt's convention: positional words and key=value pairs
		// together, the words under wire.ArgsKey.
		if _, taken := kv[wire.ArgsKey]; taken {
			return nil, fmt.Errorf("arguments: %s= is reserved for the positional words when they are mixed with key=value pairs", wire.ArgsKey)
		}
		kv[wire.ArgsKey] = pos
		return json.Marshal(kv)
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
				return "", errors.New("give at most one of -L -E -G -P -S -N -I -C")
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

// submit records a job through a master's job.run and returns its id.
//
// The CLI chooses the job id itself (names.NewJID) and sends it with the
// request, so every retry is safe: a master that gets a jid already
// recorded for the same request answers with that job instead of creating
// a second one (master.answerTakenJID). That covers the answer that never
// came: a timeout during an election, a master that recorded the job and
// died before answering. Before sending again after such a timeout, the
// CLI looks for the job in the jobs bucket, and stops if it is there. No
// responders means no master got the request, and is retried only briefly
// (absentBudget): a master restarting, not a fleet without masters.
func (a *app) submit(ctx context.Context, req wire.RunRequest) (string, error) {
	if req.JID == "" {
		req.JID = names.NewJID(time.Now())
	}
	subj := names.APISubject(names.EndpointJobRun)
	var jid string
	mayExist := false // an earlier attempt may have recorded the job
	err := a.retry(ctx, "submit job ("+subj+")", a.stepBudget(), 15*time.Second, func(actx context.Context) error {
		if mayExist && a.jobRecorded(actx, req.JID) {
			jid = req.JID
			return nil
		}
		b, _ := json.Marshal(req)
		msg, err := a.request(actx, subj, b)
		if err != nil {
			if !errors.Is(err, nats.ErrNoResponders) {
				mayExist = true
			}
			return err
		}
		if e := msg.Header.Get(micro.ErrorHeader); e != "" {
			switch msg.Header.Get(micro.ErrorCodeHeader) {
			case "409":
				// Another job drew the same jid: ours was never recorded
				// under it (a record of ours would have been answered).
				req.JID = names.NewJID(time.Now())
				mayExist = false
				return fmt.Errorf("master: %s", e)
			case "503":
				mayExist = true
				return fmt.Errorf("master could not record the job: %s", e)
			}
			return stop(fmt.Errorf("master refused the job: %s", e))
		}
		var resp wire.RunResponse
		if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.JID == "" {
			return stop(fmt.Errorf("bad answer from master: %.200s", msg.Data))
		}
		jid = resp.JID
		return nil
	})
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) && !mayExist {
			return "", withCode(ExitError, fmt.Errorf("no master answers on %s%s, tried for %s: is zester-master running? (zester masters lists the live ones)", subj, a.via(), absentBudget))
		}
		if mayExist {
			err = fmt.Errorf("%w; job %s may have been recorded all the same: zester job show %s", err, req.JID, req.JID)
		}
		return "", withCode(ExitError, err)
	}
	return jid, nil
}

// jobRecorded reports whether the job record exists. A failed lookup
// counts as "not seen": the caller then sends the request again, which is
// safe.
func (a *app) jobRecorded(ctx context.Context, jid string) bool {
	kv, err := a.js.KeyValue(ctxT(ctx, 2*time.Second), names.BucketJobs)
	if err != nil {
		return false
	}
	_, err = kv.Get(ctxT(ctx, 2*time.Second), names.JobKey(jid))
	return err == nil
}

// masterInfo asks a master for the deployment's settings; run needs a
// master, so none answering is an error that says so.
func (a *app) masterInfo(ctx context.Context) (wire.Info, error) {
	subj := names.APISubject(names.EndpointInfo)
	var info wire.Info
	err := a.retry(ctx, "ask a master ("+subj+")", a.stepBudget(), attemptTimeout, func(actx context.Context) error {
		msg, err := a.nc.RequestWithContext(actx, subj, nil)
		if err != nil {
			return err
		}
		if json.Unmarshal(msg.Data, &info) != nil || info.Partitions < 1 {
			return stop(fmt.Errorf("bad answer from master: %.200s", msg.Data))
		}
		return nil
	})
	if errors.Is(err, nats.ErrNoResponders) {
		return info, withCode(ExitError, fmt.Errorf("no master answers on %s%s, tried for %s: is zester-master running? (zester masters lists the live ones)", subj, a.via(), absentBudget))
	}
	return info, err
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
	if f.scheduled {
		return a.runScheduled(ctx, f, tgt, fn, args[2:])
	}
	if f.entry != "" {
		return withCode(ExitError, errors.New("--entry goes with --scheduled"))
	}
	jargs, err := ParseArgs(args[2:])
	if err != nil {
		return withCode(ExitError, err)
	}
	// Each step (connect, ask a master, bind the buckets, submit) is
	// retried for up to the job's timeout.
	a.budget = f.timeout
	if err := a.connect(ctx); err != nil {
		return err
	}
	// Parse here too, with the masters' node groups, so a bad target is
	// reported before anything is recorded.
	info, err := a.masterInfo(ctx)
	if err != nil {
		return err
	}
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
	// The job's results are read from these: reach them before recording
	// a job nobody would follow.
	for _, b := range []string{names.BucketJobs, names.BucketJobReturns} {
		if _, err := a.kv(ctx, b); err != nil {
			return err
		}
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

// jobResult is the summary of one finished job. Every expected peel is in
// exactly one of: returned in time (successes, and Failed), Late, Missing
// (or, where the masters add it, offline); NotStored counts returns the
// masters recorded that job-returns no longer holds.
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
	// Late are the peels that answered after the deadline, when the
	// masters had already counted them as not answering.
	Late []string `json:"late"`
	// NotStored is how many returns the masters counted that are no
	// longer in job-returns (purged, or expired before the job record).
	NotStored int `json:"not_stored,omitempty"`
	// Unknown are the ids of a -L list that no peel has (no facts).
	Unknown []string `json:"unknown,omitempty"`

	recFailed int          // failures the masters counted (when returns are gone)
	target    *wire.Target // the job's target, for "no peels matched"
}

// MarshalJSON writes empty lists as [], never null (batch totals build
// their lists by appending).
func (r jobResult) MarshalJSON() ([]byte, error) {
	type plain jobResult
	r.Failed, r.Missing, r.Late, r.Offline = nonNil(r.Failed), nonNil(r.Missing), nonNil(r.Late), nonNil(r.Offline)
	return json.Marshal(plain(r))
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
	case r.matchedNone():
		return withCode(ExitMissing, fmt.Errorf("no peels matched %s", targetWords(*r.target)))
	case len(r.Unknown) > 0:
		return withCode(ExitMissing, fmt.Errorf("no peel has the id %s (not in the facts bucket)", strings.Join(capList(r.Unknown, 50), ", ")))
	case len(r.Missing) > 0 || len(r.Late) > 0 || r.Status == wire.StatusTimedOut || r.Status == wire.StatusPartial:
		return withCode(ExitMissing, nil)
	case len(r.Failed) > 0 || r.recFailed > 0:
		return withCode(ExitFailed, nil)
	}
	return nil
}

// matchedNone reports a job whose target selected no peel at all.
func (r jobResult) matchedNone() bool {
	return r.target != nil && r.Expected == 0 && r.Returned == 0 && len(r.Missing) == 0 && len(r.Late) == 0 && len(r.Offline) == 0
}

// targetWords writes a target as it would be typed.
func targetWords(t wire.Target) string {
	for letter, k := range map[string]target.Kind{"L": target.KindList, "E": target.KindPCRE, "G": target.KindFact, "P": target.KindFactPCRE, "S": target.KindIPCIDR, "N": target.KindNodegroup, "C": target.KindCompound} {
		if t.Kind == string(k) {
			return "-" + letter + " " + shellQuote(t.Expr)
		}
	}
	return shellQuote(t.Expr)
}

// follower gathers one job's returns from job-returns.
type follower struct {
	a      *app
	jid    string
	asJSON bool
	stream bool
	enc    *json.Encoder

	rets   map[string]*wire.Return // peel → its return, as stored
	onTime int                     // returns not marked late by their peel
	failed int                     // returns with success false
	// progress line
	progress     bool
	lastProgress time.Time
}

// add takes one stored return; it reports whether the peel was new.
func (f *follower) add(key string, value []byte) bool {
	_, keyPeel, _ := names.ParseReturnKey(key)
	if _, dup := f.rets[keyPeel]; dup {
		return false
	}
	var r wire.Return
	if err := json.Unmarshal(value, &r); err != nil {
		// A corrupt value still counts as that peel's (failed) return.
		r = wire.Return{JID: f.jid, Peel: keyPeel, Error: &wire.Error{Code: "corrupt", Msg: fmt.Sprintf("stored return does not decode: %v", err)}}
	}
	if r.Peel != keyPeel {
		// The key is what the peel's permissions allow it to write; a body
		// naming another peel is a lie, not that peel's return.
		r = wire.Return{JID: f.jid, Peel: keyPeel, Error: &wire.Error{Code: "identity", Msg: fmt.Sprintf("return stored under %q claims to be from %q", keyPeel, r.Peel)}}
	}
	f.rets[keyPeel] = &r
	if !r.Late {
		f.onTime++
	}
	if !r.Success {
		f.failed++
	}
	if f.stream {
		if f.progress {
			fmt.Fprint(f.a.errOut, "\r\033[K")
		}
		if f.asJSON {
			f.enc.Encode(&r)
		} else {
			printReturn(f.a.out, &r, f.a.stateOutput)
		}
	}
	return true
}

func (f *follower) showProgress(job *wire.Job, force bool) {
	if !f.progress || (!force && time.Since(f.lastProgress) < 100*time.Millisecond) {
		return
	}
	f.lastProgress = time.Now()
	exp := "?"
	if job != nil && job.Status != wire.StatusPending {
		exp = fmt.Sprint(job.Expected)
	}
	fmt.Fprintf(f.a.errOut, "\r\033[Kjob %s: %d/%s returned, %d failed", f.jid, len(f.rets), exp, f.failed)
}

// errGaveUp is the cause of a context ended by job wait --timeout.
var errGaveUp = errors.New("--timeout ran out")

// finalGrace is how long after the job's deadline the CLI waits for the
// masters' final status before it reads the record afresh and, if still
// not final, gives up.
const finalGrace = 15 * time.Second

// catchUp is how long the returns watch may stay quiet, once the job is
// final and returns are still to come, before the CLI reads what is
// stored directly (the watch lags, or the returns are gone).
const catchUp = time.Second

// collect streams a job's returns until the job is final and returns its
// summary.
//
// A job already final when the CLI reads its record: its stored returns,
// read once after that, are all there will be, so a return the masters
// counted that is not among them is gone (purged, or expired before the
// job record). A job not final yet is followed by watches until the record
// is final and every counted return has arrived; if the returns watch stays
// quiet short of that, the CLI reads the stored returns directly. Either
// way the job's parts then say which peels did not answer in time, and a
// peel of theirs with a stored return answered late: each peel lands in
// exactly one category.
func (a *app) collect(ctx context.Context, jid string, asJSON, stream bool) (jobResult, error) {
	var job wire.Job
	haveJob := false
	var decodeErr error
	decodeJob := func(e kvwatch.KeyValueEntry) {
		if err := json.Unmarshal(e.Value(), &job); err != nil {
			decodeErr = withCode(ExitError, fmt.Errorf("job %s: corrupt record: %v", jid, err))
			return
		}
		haveJob = true
	}
	// Every read below is bounded and retried: a watch whose consumer sits
	// on a node without quorum delivers nothing, and waiting on it would
	// hang the command. A record not found is looked for again for a few
	// seconds: a consumer on a replica that lags behind the stream leader
	// may not have the job just submitted yet.
	for n, start := 0, time.Now(); !haveJob; n++ {
		if err := a.snapshot(ctx, names.BucketJobs, names.JobKey(jid), false, decodeJob); err != nil {
			return jobResult{}, err
		}
		if decodeErr != nil {
			return jobResult{}, decodeErr
		}
		if haveJob {
			break
		}
		wait := backoffDelay(n)
		if time.Since(start)+wait > absentBudget {
			return jobResult{}, withCode(ExitError, fmt.Errorf("no job %q in the jobs bucket%s", jid, a.via()))
		}
		select {
		case <-ctx.Done():
			return jobResult{}, stopped(ctx, "job "+jid, errors.New("not found yet"))
		case <-time.After(wait):
		}
	}
	f := &follower{a: a, jid: jid, asJSON: asJSON, stream: stream, enc: json.NewEncoder(a.out),
		rets: map[string]*wire.Return{}, progress: isTerminal(a.errOut) && !asJSON && !a.noProgress}
	// snapshot: every return stored when the job was already final has
	// been seen, so one the masters counted but not here is gone.
	snapshot := false
	var err error
	if wire.Final(job.Status) {
		// Final when the CLI came: its stored returns, late ones included,
		// are all there is.
		if err := a.snapshot(ctx, names.BucketJobReturns, names.ReturnFilter(jid), false, func(e kvwatch.KeyValueEntry) {
			f.add(e.Key(), e.Value())
		}); err != nil {
			return jobResult{}, err
		}
		snapshot = true
	} else if snapshot, err = a.followLive(ctx, f, &job); err != nil {
		return jobResult{}, err
	}
	if f.progress {
		fmt.Fprint(a.errOut, "\r\033[K")
	}
	parts, err := a.readParts(ctx, jid)
	if err != nil {
		return jobResult{}, err
	}
	res := jobResult{JID: jid, Status: job.Status, Function: job.Function, Expected: job.Expected,
		Duration: job.Finished.Sub(job.Created).Round(time.Millisecond).String(), recFailed: job.Failed, target: &job.Target}
	missing := map[string]bool{}
	expected := map[string]bool{}
	offline := map[string]bool{}
	for _, p := range parts {
		for _, id := range p.Offline {
			offline[id] = true
			res.Offline = append(res.Offline, id)
		}
		for _, id := range p.Missing {
			missing[id] = true
		}
		for _, id := range p.Expected {
			expected[id] = true
		}
	}
	// An expected peel with neither a return seen nor a verdict of "did
	// not answer" was counted by the masters: its return is in flight on
	// the watch, or gone.
	if !snapshot {
		for id := range expected {
			if _, ok := f.rets[id]; !ok && !missing[id] {
				if err := a.readStoredReturns(ctx, f); err != nil {
					return jobResult{}, err
				}
				break
			}
		}
	}
	for id, r := range f.rets {
		switch {
		case missing[id]:
			res.Late = append(res.Late, id)
		case !r.Success:
			res.Failed = append(res.Failed, id)
			res.Returned++
		default:
			res.Returned++
		}
	}
	for id := range missing {
		if _, ok := f.rets[id]; !ok {
			res.Missing = append(res.Missing, id)
		}
	}
	for id := range expected {
		if _, ok := f.rets[id]; !ok && !missing[id] {
			res.NotStored++
		}
	}
	if len(expected) == 0 && job.Returned > res.Returned {
		// Parts gone too: only the record's count is left.
		res.NotStored = job.Returned - res.Returned
	}
	if res.NotStored > 0 {
		res.Returned += res.NotStored
	} else {
		res.recFailed = 0
	}
	if job.Target.Kind == string(target.KindList) {
		for _, id := range strings.Split(job.Target.Expr, ",") {
			if id = strings.TrimSpace(id); id != "" && !expected[id] && !offline[id] {
				res.Unknown = append(res.Unknown, id)
			}
		}
	}
	sort.Strings(res.Failed)
	sort.Strings(res.Missing)
	sort.Strings(res.Late)
	sort.Strings(res.Offline)
	res.Failed, res.Missing, res.Late, res.Offline = nonNil(res.Failed), nonNil(res.Missing), nonNil(res.Late), nonNil(res.Offline)
	return res, nil
}

// followLive follows a job that is not final yet until it is, and until
// every return the masters counted has been seen. When the watch stays
// quiet short of that, it reads the stored returns directly and reports
// snapshot: what is not there now is gone.
func (a *app) followLive(ctx context.Context, f *follower, job *wire.Job) (snapshot bool, err error) {
	jid := f.jid
	jw, stopJW, err := a.watch(ctx, names.BucketJobs, names.JobKey(jid), false)
	if err != nil {
		return false, err
	}
	defer stopJW()
	rw, stopRW, err := a.watch(ctx, names.BucketJobReturns, names.ReturnFilter(jid), false)
	if err != nil {
		return false, err
	}
	defer stopRW()
	f.showProgress(job, true)
	deadline := time.NewTimer(time.Until(job.Deadline) + finalGrace)
	defer deadline.Stop()
	var quiet <-chan time.Time
	for {
		final := wire.Final(job.Status)
		if final && f.onTime >= job.Returned {
			return false, nil
		}
		if final && quiet == nil {
			quiet = time.After(catchUp)
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errGaveUp) {
				return false, withCode(ExitMissing, fmt.Errorf("job %s: still %s when --timeout ran out; it goes on (zester job wait %s)", jid, job.Status, jid))
			}
			return false, withCode(ExitError, fmt.Errorf("interrupted; job %s goes on (zester job wait %s)", jid, jid))
		case <-quiet:
			// The watch lags or the returns are gone: read what is stored.
			return true, a.readStoredReturns(ctx, f)
		case <-deadline.C:
			if final {
				continue
			}
			// The watch may be blind: read the record afresh.
			var decodeErr error
			if err := a.snapshot(ctx, names.BucketJobs, names.JobKey(jid), false, func(e kvwatch.KeyValueEntry) {
				decodeErr = json.Unmarshal(e.Value(), job)
			}); err != nil {
				return false, err
			}
			if decodeErr != nil {
				return false, withCode(ExitError, fmt.Errorf("job %s: corrupt record: %v", jid, decodeErr))
			}
			if !wire.Final(job.Status) {
				return false, withCode(ExitMissing, fmt.Errorf("job %s: still %s %s after its deadline (%s): %s", jid, job.Status, finalGrace, job.Deadline.Local().Format(time.DateTime), a.mastersState(ctx)))
			}
		case e := <-jw.Updates():
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if err := json.Unmarshal(e.Value(), job); err != nil {
				return false, withCode(ExitError, fmt.Errorf("job %s: corrupt record: %v", jid, err))
			}
			f.showProgress(job, true)
		case e := <-rw.Updates():
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if f.add(e.Key(), e.Value()) && quiet != nil {
				quiet = time.After(catchUp)
			}
			f.showProgress(job, false)
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// watch follows bucket under filter, retrying the watch's creation.
func (a *app) watch(ctx context.Context, bucket, filter string, metaOnly bool) (*kvwatch.Watcher, func(), error) {
	var w *kvwatch.Watcher
	var stop func()
	err := a.retry(ctx, "bucket "+bucket+" (key "+filter+")", a.stepBudget(), attemptTimeout, func(context.Context) error {
		var err error
		w, stop, err = startWatch(ctx, a.js, bucket, filter, metaOnly)
		return err
	})
	return w, stop, bucketHint(bucket, err)
}

// startWatch starts a kvwatch that lives until stop is called or ctx ends,
// and whose creation gives up after attemptTimeout. kvwatch takes one
// context for both, and a JetStream request under a context with a
// deadline (job wait --timeout) waits for all of it: without this bound
// one request to a cluster without quorum would eat the whole budget.
func startWatch(ctx context.Context, js jetstream.JetStream, bucket, filter string, metaOnly bool) (*kvwatch.Watcher, func(), error) {
	wctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(attemptTimeout, cancel)
	w, err := kvwatch.Watch(wctx, js, bucket, kvwatch.Options{Filters: []string{filter}, MetaOnly: metaOnly})
	if !timer.Stop() {
		if err == nil {
			w.Stop()
		}
		cancel()
		return nil, nil, fmt.Errorf("watch %s: not started within %s: %w", bucket, attemptTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return w, func() { w.Stop(); cancel() }, nil
}

// snapshot passes the current values of bucket under filter to fn, through
// a fresh consumer. A read that makes no progress for snapshotIdle (its
// consumer sits on a node without quorum, say) is started over; fn may
// then see a value again.
func (a *app) snapshot(ctx context.Context, bucket, filter string, metaOnly bool, fn func(kvwatch.KeyValueEntry)) error {
	// The attempt is bounded by progress, not by total time: a large job's
	// returns may take longer than any fixed bound to arrive.
	return bucketHint(bucket, a.retry(ctx, "bucket "+bucket+" (key "+filter+")", a.stepBudget(), attemptTimeout, func(context.Context) error {
		w, stop, err := startWatch(ctx, a.js, bucket, filter, metaOnly)
		if err != nil {
			return err
		}
		defer stop()
		idle := time.NewTimer(snapshotIdle)
		defer idle.Stop()
		for n := 0; ; n++ {
			select {
			case e := <-w.Updates():
				if e == nil {
					return nil
				}
				if e.Operation() == jetstream.KeyValuePut {
					fn(e)
				}
				idle.Reset(snapshotIdle)
			case <-idle.C:
				return fmt.Errorf("watch %s: no values for %s after %d (%w)", bucket, snapshotIdle, n, context.DeadlineExceeded)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}))
}

// snapshotIdle is how long a read of current values may deliver nothing.
const snapshotIdle = 5 * time.Second

// readParts reads a job's parts (one per partition that had peels).
func (a *app) readParts(ctx context.Context, jid string) ([]wire.JobPart, error) {
	parts := map[string]wire.JobPart{}
	err := a.snapshot(ctx, names.BucketJobs, names.JobPartFilter(jid), false, func(e kvwatch.KeyValueEntry) {
		var p wire.JobPart
		if json.Unmarshal(e.Value(), &p) == nil {
			parts[e.Key()] = p
		}
	})
	out := make([]wire.JobPart, 0, len(parts))
	for _, p := range parts {
		out = append(out, p)
	}
	return out, err
}

// readStoredReturns lists the job's stored returns and fetches those the
// watch has not brought yet.
func (a *app) readStoredReturns(ctx context.Context, f *follower) error {
	var keys []string
	err := a.snapshot(ctx, names.BucketJobReturns, names.ReturnFilter(f.jid), true, func(e kvwatch.KeyValueEntry) {
		if _, peel, ok := names.ParseReturnKey(e.Key()); ok && f.rets[peel] == nil {
			keys = append(keys, e.Key())
		}
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	kv, err := a.kv(ctx, names.BucketJobReturns)
	if err != nil {
		return err
	}
	for _, k := range keys {
		var e jetstream.KeyValueEntry
		err := a.retry(ctx, "read return "+k, a.stepBudget(), attemptTimeout, func(actx context.Context) error {
			var err error
			e, err = kv.Get(actx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil // expired since the listing
			}
			return err
		})
		if err != nil {
			return err
		}
		if e != nil {
			f.add(k, e.Value())
		}
	}
	return nil
}

// mastersState says whether any master answers, for the message of a job
// that no master finished.
func (a *app) mastersState(ctx context.Context) string {
	_, err := a.nc.RequestWithContext(ctxT(ctx, 2*time.Second), names.APISubject(names.EndpointInfo), nil)
	switch {
	case err == nil:
		return "a master answers, but none finished the job (zester masters; the masters' logs)"
	case errors.Is(err, nats.ErrNoResponders):
		return "no master answers: is zester-master running?"
	}
	return fmt.Sprintf("no master answered %s within 2s (%v)", names.APISubject(names.EndpointInfo), err)
}

func printReturn(w io.Writer, r *wire.Return, stateOutput string) {
	if states, ok := stateout.Decode(r.Function, r.Result); ok {
		name := r.Peel
		if r.Late {
			name += " (late)"
		}
		errLine := ""
		if !r.Success && r.Error != nil {
			errLine = r.Error.Code + ": " + r.Error.Msg
		}
		stateout.Print(w, name, states, stateOutput, errLine)
		return
	}
	name := r.Peel
	if r.Late {
		name += " (late)"
	}
	if !r.Success {
		msg := "failed"
		if r.Error != nil {
			msg = r.Error.Code + ": " + r.Error.Msg
		}
		fmt.Fprintf(w, "%s: ERROR %s\n", name, msg)
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
			fmt.Fprintf(w, "%s: retcode %d\n", name, cmd.Retcode)
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
		fmt.Fprintf(w, "%s: %s\n", name, string(r.Result))
	}
}

func printSummary(w io.Writer, r jobResult) {
	table(w, "\nJOB\tSTATUS\tEXPECTED\tRETURNED\tFAILED\tMISSING\tDURATION", func(tw io.Writer) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.JID, r.Status, r.Expected, r.Returned, len(r.Failed), len(r.Missing), r.Duration)
	})
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, "failed: %s\n", strings.Join(capList(r.Failed, 50), ", "))
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "did not answer: %s\n", strings.Join(capList(r.Missing, 50), ", "))
	}
	printOffline(w, r.Offline)
	if len(r.Late) > 0 {
		fmt.Fprintf(w, "late (answered after the deadline): %s\n", strings.Join(capList(r.Late, 50), ", "))
	}
	if r.NotStored > 0 {
		fmt.Fprintf(w, "%d of %d returns are no longer stored (job-returns purged or expired); the masters counted %d returned, %d failed\n",
			r.NotStored, r.Returned, r.Returned, max(r.recFailed, len(r.Failed)))
	}
}

func capList(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("… and %d more", len(s)-n))
}
