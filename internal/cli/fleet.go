package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/shard"
)

func (a *app) peelsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "peels",
		Short: "List known peels from the fact index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := a.connect(ctx); err != nil {
				return err
			}
			rows, err := a.peelRows(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.out).Encode(rows)
			}
			tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "PEEL\tPARTITION\tOS\tKERNEL\tARCH\tFACTS UPDATED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.Partition, dash(r.OS), dash(r.Kernel), dash(r.Arch), r.Updated.Local().Format(time.DateTime))
			}
			tw.Flush()
			fmt.Fprintf(a.out, "%d peels\n", len(rows))
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "JSON output")
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
	msg, err := a.nc.RequestWithContext(ctxT(ctx, 2*time.Second), names.APISubject("info"), nil)
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
	var rows []wire.PeelSummary
	for e := range w.Updates() {
		if e == nil {
			break
		}
		r := wire.PeelSummary{ID: e.Key(), Partition: shard.Partition(e.Key(), P), Updated: e.Created()}
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
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	return rows, nil
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
	c := &cobra.Command{
		Use:   "masters",
		Short: "List live masters with their partitions and load",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := a.connect(ctx); err != nil {
				return err
			}
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
			if asJSON {
				if rows == nil {
					rows = []wire.MasterRecord{}
				}
				return json.NewEncoder(a.out).Encode(rows)
			}
			tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "MASTER\tHOST\tVERSION\tPARTITIONS\tLAST HEARTBEAT\tPEELS\tACTIVE JOBS\tUP SINCE")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s ago\t%d\t%d\t%s\n", r.ID, r.Host, r.Version, len(r.Owned), r.Partitions,
					time.Since(r.Beat).Round(100*time.Millisecond), r.Load.Peels, r.Load.ActiveJobs, r.Started.Local().Format(time.DateTime))
			}
			tw.Flush()
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return c
}
