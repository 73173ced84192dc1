package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

func (a *app) peelsCmd() *cobra.Command {
	var asJSON, online, offline bool
	c := &cobra.Command{
		Use:   "peels",
		Short: "List known peels: state (online/offline), last seen, facts",
		Long: `List every peel known from the facts bucket or from its presence beats, with
its state as the masters that own its partition see it: online (beating),
offline (silent for presence.offline_after, or stopped cleanly), or "?" when
no master answered for its partition or its master took it over a moment ago. LAST SEEN is the last beat that master
heard. NOTES flags an id beaten by two processes at once (a cloned host) and
facts that the store holds but cannot be read (republish asked).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if online && offline {
				return withCode(ExitError, errors.New("give at most one of --online and --offline"))
			}
			ctx := cmd.Context()
			if err := a.connect(ctx); err != nil {
				return err
			}
			rows, err := a.peelRows(ctx)
			if err != nil {
				return err
			}
			if online || offline {
				want := wire.PresenceOnline
				if offline {
					want = wire.PresenceOffline
				}
				kept := rows[:0]
				for _, r := range rows {
					if r.State == want {
						kept = append(kept, r)
					}
				}
				rows = kept
			}
			if asJSON {
				return writeJSON(a.out, rows)
			}
			now := time.Now()
			counts := map[string]int{}
			table(a.out, "PEEL\tSTATE\tLAST SEEN\tPARTITION\tOS\tKERNEL\tARCH\tFACTS UPDATED\tNOTES", func(tw io.Writer) {
				for _, r := range rows {
					counts[r.State]++
					state, seen, updated := r.State, "-", "-"
					if state == "" {
						state = "?"
					}
					if !r.LastSeen.IsZero() {
						seen = now.Sub(r.LastSeen).Round(100*time.Millisecond).String() + " ago"
					}
					if !r.Updated.IsZero() {
						updated = r.Updated.Local().Format(time.DateTime)
					}
					var notes []string
					if r.Duplicate {
						notes = append(notes, "DUPLICATE ID: two processes beat with this id")
					}
					switch r.Facts {
					case wire.FactsBad:
						notes = append(notes, "facts bad ("+r.FactsError+"), republish asked")
					case "":
						if r.Updated.IsZero() {
							notes = append(notes, "no facts")
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, state, seen, r.Partition, dash(r.OS), dash(r.Kernel), dash(r.Arch), updated, dash(strings.Join(notes, "; ")))
				}
			})
			fmt.Fprintf(a.out, "%d peels: %d online, %d offline", len(rows), counts[wire.PresenceOnline], counts[wire.PresenceOffline])
			if n := counts[""]; n > 0 {
				fmt.Fprintf(a.out, ", %d unknown (no master answered for their partition, or it just took it over)", n)
			}
			fmt.Fprintln(a.out)
			return nil
		},
	}
	jsonFlag(c, &asJSON, "JSON output")
	c.Flags().BoolVar(&online, "online", false, "only peels that are online")
	c.Flags().BoolVar(&offline, "offline", false, "only peels that are offline")
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// info asks any master for the deployment's settings; without a master it
// returns the defaults.
func (a *app) info(ctx context.Context) wire.Info {
	msg, err := a.request(ctxT(ctx, 2*time.Second), names.APISubject(names.EndpointInfo), nil)
	if err == nil {
		var info wire.Info
		if json.Unmarshal(msg.Data, &info) == nil && info.Partitions > 0 {
			return info
		}
	}
	return wire.Info{Partitions: shard.DefaultPartitions}
}

func (a *app) partitions(ctx context.Context) int { return a.info(ctx).Partitions }

func (a *app) peelRows(ctx context.Context) ([]wire.PeelSummary, error) {
	kv, err := a.kv(ctx, names.BucketFacts)
	if err != nil {
		return nil, err
	}
	P := a.partitions(ctx)
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	defer w.Stop()
	byID := map[string]*wire.PeelSummary{}
	var rows []*wire.PeelSummary
	for e := range w.Updates() {
		if e == nil {
			break
		}
		r := &wire.PeelSummary{ID: e.Key(), Partition: shard.Partition(e.Key(), P), Updated: e.Created()}
		if doc, err := factcodec.Decode(e.Value()); err == nil {
			var f struct {
				OS struct {
					PrettyName string `json:"pretty_name"`
					ID         string `json:"id"`
					VersionID  string `json:"version_id"`
					Arch       string `json:"arch"`
				} `json:"os"`
				Kernel struct {
					Release string `json:"release"`
				} `json:"kernel"`
			}
			if json.Unmarshal(doc, &f) == nil {
				r.OS = f.OS.ID
				if f.OS.VersionID != "" {
					r.OS += " " + f.OS.VersionID
				}
				r.Kernel, r.Arch = f.Kernel.Release, f.OS.Arch
			}
		}
		byID[r.ID] = r
		rows = append(rows, r)
	}
	// Presence from the masters, each for the partitions it owns.
	pres, err := a.presence(ctx, P)
	if err != nil {
		return nil, err
	}
	for _, pp := range pres {
		r := byID[pp.p.ID]
		if r == nil {
			r = &wire.PeelSummary{ID: pp.p.ID, Partition: shard.Partition(pp.p.ID, P)}
			byID[r.ID] = r
			rows = append(rows, r)
		}
		r.Master, r.State, r.LastSeen, r.Duplicate = pp.master, pp.p.State, pp.p.LastSeen, pp.p.Duplicate
		r.Facts, r.FactsError = pp.p.Facts, pp.p.FactsError
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	out := make([]wire.PeelSummary, len(rows))
	for i, r := range rows {
		out[i] = *r
	}
	return out, nil
}

type masterPresence struct {
	master string
	p      wire.PeelPresence
}

// presenceWait bounds how long `zester peels` waits for the masters'
// presence answers when some partition has no owner answering.
const presenceWait = 3 * time.Second

// presence asks every master (the endpoint has no queue group) for the
// presence of its partitions and merges the answers: it is done when the
// masters that finished answering own all P partitions. During a hand-over
// two masters may both report a partition; the later beat wins.
func (a *app) presence(ctx context.Context, P int) ([]masterPresence, error) {
	inbox := a.nc.NewInbox()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, withCode(ExitError, fmt.Errorf("presence: %w", err))
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	if err := a.nc.PublishRequest(names.APISubject(names.EndpointPresence), inbox, nil); err != nil {
		return nil, withCode(ExitError, fmt.Errorf("presence: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, presenceWait)
	defer cancel()
	covered := make([]bool, P)
	left := P
	byID := map[string]masterPresence{}
	for left > 0 {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // no (more) masters: the rest stays unknown
		}
		if len(msg.Data) == 0 {
			if msg.Header.Get("Status") == "503" {
				break // no master at all
			}
			continue
		}
		var r wire.PresenceReply
		if json.Unmarshal(msg.Data, &r) != nil {
			continue
		}
		for _, p := range r.Peels {
			if cur, ok := byID[p.ID]; !ok || p.LastSeen.After(cur.p.LastSeen) {
				byID[p.ID] = masterPresence{master: r.Master, p: p}
			}
		}
		if r.Last {
			for _, p := range r.Owned {
				if p >= 0 && p < P && !covered[p] {
					covered[p] = true
					left--
				}
			}
		}
	}
	out := make([]masterPresence, 0, len(byID))
	for _, v := range byID {
		out = append(out, v)
	}
	return out, nil
}

// printOffline adds the offline line to a job summary.
func printOffline(w io.Writer, offline []string) {
	if len(offline) > 0 {
		fmt.Fprintf(w, "offline (not sent, not waited for): %s\n", strings.Join(capList(offline, 50), ", "))
	}
}

func (a *app) factsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "facts PEEL",
		Short: "Print one peel's facts (JSON)",
		Args:  cobra.ExactArgs(1),
		// Shell completion of peel ids, from the facts bucket.
		ValidArgsFunction: func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 || a.connect(cmd.Context()) != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			kv, err := a.js.KeyValue(cmd.Context(), names.BucketFacts)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			lister, err := kv.ListKeys(cmd.Context())
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var ids []string
			for k := range lister.Keys() {
				if strings.HasPrefix(k, prefix) {
					ids = append(ids, k)
				}
			}
			return ids, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := names.ValidateID(args[0]); err != nil {
				return withCode(ExitError, err)
			}
			if err := a.connect(ctx); err != nil {
				return err
			}
			kv, err := a.kv(ctx, names.BucketFacts)
			if err != nil {
				return err
			}
			e, err := kv.Get(ctx, names.FactsKey(args[0]))
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return withCode(ExitError, fmt.Errorf("no facts for peel %q", args[0]))
			}
			if err != nil {
				return withCode(ExitError, err)
			}
			doc, err := factcodec.Decode(e.Value())
			if err != nil {
				return withCode(ExitError, fmt.Errorf("facts of %s (revision %d): %w", args[0], e.Revision(), err))
			}
			var v any
			if err := json.Unmarshal(doc, &v); err != nil {
				return withCode(ExitError, fmt.Errorf("facts of %s: %w", args[0], err))
			}
			enc := json.NewEncoder(a.out)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		},
	}
}

func (a *app) mastersCmd() *cobra.Command {
	var asJSON bool
	c := command("masters", "List live masters with their partitions and load", cobra.NoArgs, a.online(func(ctx context.Context, _ []string) error {
		kv, err := a.kv(ctx, names.BucketMasterHeartbeat)
		if err != nil {
			return err
		}
		w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			return withCode(ExitError, err)
		}
		defer w.Stop()
		var rows []wire.MasterRecord
		for e := range w.Updates() {
			if e == nil {
				break
			}
			var r wire.MasterRecord
			if json.Unmarshal(e.Value(), &r) == nil {
				r.Beat = e.Created()
				rows = append(rows, r)
			}
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
		return a.emit(asJSON, rows, "MASTER\tHOST\tVERSION\tPARTITIONS\tLAST HEARTBEAT\tPEELS\tACTIVE JOBS\tUP SINCE", func(tw io.Writer) {
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s ago\t%d\t%d\t%s\n", r.ID, r.Host, r.Version, len(r.Owned), r.Partitions,
					time.Since(r.Beat).Round(100*time.Millisecond), r.Load.Peels, r.Load.ActiveJobs, r.Started.Local().Format(time.DateTime))
			}
		})
	}))
	jsonFlag(c, &asJSON, "JSON output")
	return c
}
