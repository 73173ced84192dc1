package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/layout"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/wire"
)

// checkProblems is zester check's exit status when a check failed (as
// zester backup verify's); 0 is all passed, 3 the command failed.
const checkProblems = 1

// checkRow is one line of `zester check`.
type checkRow struct {
	Check    string   `json:"check"`
	OK       bool     `json:"ok"`
	Detail   string   `json:"detail"`
	Problems []string `json:"problems,omitempty"`
}

func (r *checkRow) fail(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// checkReport is the whole result (--json).
type checkReport struct {
	OK     bool       `json:"ok"`
	Checks []checkRow `json:"checks"`
}

type checkOptions struct {
	replicas  int           // expected replicas of every bucket and stream; 0: any
	deadAfter time.Duration // a heartbeat older than this is a dead master
	settle    time.Duration // how long ownership may take to agree
	timeout   time.Duration // per JetStream request
}

func (a *app) checkCmd() *cobra.Command {
	var asJSON bool
	o := checkOptions{}
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the deployment: buckets and streams, their replicas, masters, partition ownership",
		Long: `Check what an operator checks after a change or an outage, in one command:

  bucket <name>, stream job-events  exist with the seed's history, TTL and storage
                                    (a TTL changed by retention settings is shown, not
                                    failed); a leader, and every replica current;
                                    state-tree: the published tree's manifest, every
                                    content and its pack present and matching
  masters                           at least one master alive (heartbeat younger than
                                    --dead-after); stale heartbeats of dead masters
  partitions                        every partition owned by exactly one live master
                                    (waiting up to --settle for a hand-over to finish)
  peels                             online and offline counts from the masters' presence
                                    view (offline peels are listed, not failed); an id
                                    beaten from two places at once fails

Exit status: 0 every check passed, 1 some failed (each is named), 3 the command
itself failed (NATS not reachable).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := a.connect(ctx); err != nil {
				return err
			}
			rep := a.runChecks(ctx, o)
			if asJSON {
				if err := writeJSON(a.out, rep); err != nil {
					return withCode(ExitError, err)
				}
			} else {
				printChecks(a, rep)
			}
			if !rep.OK {
				return withCode(checkProblems, nil)
			}
			return nil
		},
	}
	f := c.Flags()
	jsonFlag(c, &asJSON, "JSON output")
	f.IntVar(&o.replicas, "replicas", 0, "replicas every bucket and stream must have (default: any; 3 on a 3-node cluster)")
	f.DurationVar(&o.deadAfter, "dead-after", 3*time.Second, "a master whose last heartbeat is older is dead (the masters' dead_after)")
	f.DurationVar(&o.settle, "settle", 3*time.Second, "how long partition ownership may take to agree after a change")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound of each JetStream request")
	return c
}

func printChecks(a *app, rep checkReport) {
	failed := 0
	table(a.out, "CHECK\tSTATUS\tDETAIL", func(tw io.Writer) {
		for _, r := range rep.Checks {
			status, detail := "ok", r.Detail
			if !r.OK {
				failed++
				status = "FAIL"
				detail = strings.Join(r.Problems, "; ")
				if r.Detail != "" {
					detail += " (" + r.Detail + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Check, status, detail)
		}
	})
	if failed == 0 {
		fmt.Fprintf(a.out, "all %d checks passed\n", len(rep.Checks))
	} else {
		fmt.Fprintf(a.out, "%d of %d checks failed\n", failed, len(rep.Checks))
	}
}

func (a *app) runChecks(ctx context.Context, o checkOptions) checkReport {
	var rows []checkRow
	for _, b := range layout.Buckets {
		rows = append(rows, a.checkBucket(ctx, o, b))
	}
	rows = append(rows, a.checkJobEvents(ctx, o))
	rows = append(rows, a.checkMasters(ctx, o)...)
	rows = append(rows, a.checkPeels(ctx))
	rep := checkReport{OK: true, Checks: rows}
	for i := range rep.Checks {
		rep.Checks[i].OK = len(rep.Checks[i].Problems) == 0
		rep.OK = rep.OK && rep.Checks[i].OK
	}
	return rep
}

// stream looks a stream up, bounded; a missing one is (nil, nil).
func (a *app) stream(ctx context.Context, o checkOptions, name string) (*jetstream.StreamInfo, error) {
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	st, err := a.js.Stream(cctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return st.CachedInfo(), nil
}

func (a *app) checkBucket(ctx context.Context, o checkOptions, b layout.Bucket) checkRow {
	r := checkRow{Check: "bucket " + b.Name}
	stream := names.KVStream(b.Name)
	si, err := a.stream(ctx, o, stream)
	switch {
	case err != nil:
		r.fail("stream %s: %v", stream, err)
		return r
	case si == nil:
		r.fail("missing (stream %s does not exist; a master creates it at start)", stream)
		return r
	}
	cfg := si.Config
	var d []string
	if want := names.KVSubjectPrefix(b.Name) + ">"; !slices.Equal(cfg.Subjects, []string{want}) {
		r.fail("subjects %v, want [%s]: not a KV bucket's stream", cfg.Subjects, want)
	}
	if cfg.MaxMsgsPerSubject != int64(b.History) {
		r.fail("history %d, want %d", cfg.MaxMsgsPerSubject, b.History)
	}
	d = append(d, fmt.Sprintf("history %d", cfg.MaxMsgsPerSubject))
	switch {
	case cfg.MaxAge == b.TTL:
		d = append(d, "TTL "+ttlText(cfg.MaxAge))
	case b.TunableTTL && cfg.MaxAge != 0:
		d = append(d, fmt.Sprintf("TTL %s (set by retention; default %s)", ttlText(cfg.MaxAge), ttlText(b.TTL)))
	default:
		r.fail("TTL %s, want %s", ttlText(cfg.MaxAge), ttlText(b.TTL))
	}
	if cfg.Storage != b.Storage {
		r.fail("storage %s, want %s", storageText(cfg.Storage), storageText(b.Storage))
	}
	d = append(d, storageText(cfg.Storage))
	d = append(d, checkReplicas(&r, o, si)...)
	if b.Name == names.BucketStateTree {
		d = append(d, a.checkStateTree(ctx, o, &r))
	}
	r.Detail = strings.Join(d, ", ")
	return r
}

// checkStateTree checks the published tree: its manifest, contents and
// pack (statetree.Check), and describes it.
func (a *app) checkStateTree(ctx context.Context, o checkOptions, r *checkRow) string {
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	detail, problems := statetree.Check(cctx, a.nc)
	for _, err := range problems {
		r.fail("%v", err)
	}
	return detail
}

func (a *app) checkJobEvents(ctx context.Context, o checkOptions) checkRow {
	want := layout.JobEvents
	r := checkRow{Check: "stream " + want.Name}
	si, err := a.stream(ctx, o, want.Name)
	switch {
	case err != nil:
		r.fail("%v", err)
		return r
	case si == nil:
		r.fail("missing (a master creates it at start)")
		return r
	}
	cfg := si.Config
	var d []string
	if !slices.Equal(cfg.Subjects, want.Subjects) {
		r.fail("subjects %v, want %v", cfg.Subjects, want.Subjects)
	}
	if cfg.Retention != want.Retention {
		r.fail("retention %s, want %s", cfg.Retention, want.Retention)
	}
	if cfg.Storage != want.Storage {
		r.fail("storage %s, want %s", storageText(cfg.Storage), storageText(want.Storage))
	}
	if cfg.MaxAge == want.MaxAge {
		d = append(d, "max age "+ttlText(cfg.MaxAge))
	} else {
		d = append(d, fmt.Sprintf("max age %s (set by retention; default %s)", ttlText(cfg.MaxAge), ttlText(want.MaxAge)))
	}
	d = append(d, storageText(cfg.Storage))
	d = append(d, checkReplicas(&r, o, si)...)
	r.Detail = strings.Join(d, ", ")
	return r
}

// storageText is "file" or "memory", as the seed's table writes them.
func storageText(s jetstream.StorageType) string { return strings.ToLower(s.String()) }

// checkReplicas checks a stream's RAFT group: a leader, and every replica
// online and current. It returns the detail words.
func checkReplicas(r *checkRow, o checkOptions, si *jetstream.StreamInfo) []string {
	n := si.Config.Replicas
	if n < 1 {
		n = 1
	}
	d := []string{fmt.Sprintf("R%d", n)}
	if o.replicas > 0 && n != o.replicas {
		r.fail("%d replicas, want %d", n, o.replicas)
	}
	ci := si.Cluster
	if ci == nil || ci.Leader == "" {
		r.fail("no leader")
		return d
	}
	current := 1 // the leader
	for _, p := range ci.Replicas {
		switch {
		case p.Offline:
			r.fail("replica %s offline", p.Name)
		case !p.Current && p.Active > 0:
			r.fail("replica %s not current (lag %d, last seen %s ago)", p.Name, p.Lag, p.Active.Round(time.Millisecond))
		case !p.Current:
			r.fail("replica %s not current (lag %d)", p.Name, p.Lag)
		default:
			current++
		}
	}
	if have := 1 + len(ci.Replicas); have < n {
		r.fail("%d of %d replicas placed", have, n)
	}
	return append(d, fmt.Sprintf("leader %s, %d/%d current", ci.Leader, current, n))
}

func ttlText(d time.Duration) string {
	switch {
	case d == 0:
		return "none"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return d.String()
	}
}

// checkMasters reads master-heartbeat until the live masters' ownership
// agrees or o.settle has passed (a hand-over in progress shows overlaps or
// gaps for up to a heartbeat), and reports the masters and the partitions.
func (a *app) checkMasters(ctx context.Context, o checkOptions) []checkRow {
	deadline := time.Now().Add(o.settle)
	wait := backoff.New(100*time.Millisecond, 500*time.Millisecond)
	for {
		masters, parts, handOver := a.readOwnership(ctx, o)
		if !handOver || time.Now().After(deadline) || ctx.Err() != nil {
			return []checkRow{masters, parts}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait.Next()):
		}
	}
}

// readOwnership reads the heartbeats once. handOver reports live masters
// whose Owned lists leave gaps or overlap, which a hand-over in progress
// shows for up to a heartbeat: worth reading again.
func (a *app) readOwnership(ctx context.Context, o checkOptions) (masters, parts checkRow, handOver bool) {
	masters, parts = checkRow{Check: "masters"}, checkRow{Check: "partitions"}
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	kv, err := a.js.KeyValue(cctx, names.BucketMasterHeartbeat)
	if err != nil {
		masters.fail("bucket %s: %v", names.BucketMasterHeartbeat, err)
		parts.fail("unknown without master heartbeats")
		return masters, parts, false
	}
	w, err := kv.WatchAll(cctx, jetstream.IgnoreDeletes())
	if err != nil {
		masters.fail("watch %s: %v", names.BucketMasterHeartbeat, err)
		parts.fail("unknown without master heartbeats")
		return masters, parts, false
	}
	defer w.Stop()
	var alive []wire.MasterRecord
	var stale []string
	for done := false; !done; {
		select {
		case e := <-w.Updates():
			if e == nil {
				done = true
				break
			}
			var rec wire.MasterRecord
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				masters.fail("heartbeat %q unreadable: %v", e.Key(), err)
				continue
			}
			rec.Beat = e.Created()
			if age := time.Since(rec.Beat); age > o.deadAfter {
				stale = append(stale, fmt.Sprintf("%s (last heartbeat %s ago)", e.Key(), age.Round(100*time.Millisecond)))
				continue
			}
			alive = append(alive, rec)
		case <-cctx.Done():
			masters.fail("reading %s: %v", names.BucketMasterHeartbeat, cctx.Err())
			parts.fail("unknown without master heartbeats")
			return masters, parts, false
		}
	}
	sort.Slice(alive, func(i, j int) bool { return alive[i].ID < alive[j].ID })
	sort.Strings(stale)
	if len(stale) > 0 {
		masters.fail("dead: %s", strings.Join(stale, ", "))
	}
	if len(alive) == 0 {
		masters.fail("no master alive")
		parts.fail("no live master owns any partition")
		return masters, parts, false
	}
	var ids []string
	for _, m := range alive {
		ids = append(ids, fmt.Sprintf("%s (%d)", m.ID, len(m.Owned)))
	}
	masters.Detail = fmt.Sprintf("%d alive: %s", len(alive), strings.Join(ids, ", "))

	P := alive[0].Partitions
	for _, m := range alive[1:] {
		if m.Partitions != P {
			parts.fail("masters disagree on the partition count: %s has %d, %s has %d", alive[0].ID, P, m.ID, m.Partitions)
			return masters, parts, false
		}
	}
	owners := make([][]string, P)
	for _, m := range alive {
		for _, p := range m.Owned {
			if p < 0 || p >= P {
				parts.fail("%s claims partition %d of %d", m.ID, p, P)
				continue
			}
			owners[p] = append(owners[p], m.ID)
		}
	}
	var none, twice []string
	for p, ow := range owners {
		switch {
		case len(ow) == 0:
			none = append(none, fmt.Sprint(p))
		case len(ow) > 1:
			twice = append(twice, fmt.Sprintf("%d (%s)", p, strings.Join(ow, "+")))
		}
	}
	if len(none) > 0 {
		parts.fail("%d not owned: %s", len(none), limitList(none, 10))
	}
	if len(twice) > 0 {
		parts.fail("%d owned twice: %s", len(twice), limitList(twice, 10))
	}
	parts.Detail = fmt.Sprintf("%d of %d owned exactly once", P-len(none)-len(twice), P)
	return masters, parts, len(none)+len(twice) > 0
}

// limitList joins the first n items and says how many more there are.
func limitList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// checkPeels counts the peels by the masters' presence view, as `zester
// peels` shows them. Offline peels are reported, not failed: a host that is
// down or gone is the fleet's state, not a fault of the deployment. An id
// beaten from two places at once (a cloned host) fails the check.
func (a *app) checkPeels(ctx context.Context) checkRow {
	r := checkRow{Check: "peels"}
	rows, err := a.peelRows(ctx)
	if err != nil {
		r.fail("%v", err)
		return r
	}
	var offline, dup []string
	unknown := 0
	for _, p := range rows {
		switch p.State {
		case wire.PresenceOffline:
			offline = append(offline, p.ID)
		case wire.PresenceOnline:
		default:
			unknown++
		}
		if p.Duplicate {
			dup = append(dup, p.ID)
		}
	}
	if len(dup) > 0 {
		r.fail("duplicate id, beaten by two processes at once (a cloned host?): %s", limitList(dup, 10))
	}
	r.Detail = fmt.Sprintf("%d known: %d online, %d offline", len(rows), len(rows)-len(offline)-unknown, len(offline))
	if unknown > 0 {
		r.Detail += fmt.Sprintf(", %d unknown (no master answered for their partition, or it just took it over)", unknown)
	}
	if len(offline) > 0 {
		r.Detail += " (offline: " + limitList(offline, 10) + ")"
	}
	return r
}
