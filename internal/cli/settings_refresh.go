package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

// refreshWait bounds how long settings refresh waits for the masters'
// answers (each renders its share before answering).
const refreshWait = 2 * time.Minute

func (a *app) settingsRefreshCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "refresh [TARGET]",
		Short: "Reload the settings tree on every master and render the peels TARGET selects (all by default)",
		Long: `Every master reloads settings_dir and renders again the peels of its
partitions that TARGET selects (a -C compound expression, so a glob is one;
all peels without it), then writes what changed. Masters do this by
themselves when a fact or a file changes; refresh forces it, and reports
what each master rendered, wrote and could not render.

Exit status: 0 done, 1 some peel's render failed or the tree does not load
(the last good render stays), 3 the command itself failed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req wire.SettingsRefreshRequest
			if len(args) == 1 {
				if _, err := target.Parse(target.KindCompound, args[0], target.Options{}); err != nil {
					return withCode(ExitError, err)
				}
				req.Target = &wire.Target{Kind: string(target.KindCompound), Expr: args[0]}
			}
			return a.settingsRefresh(cmd.Context(), req, asJSON)
		},
	}
	jsonFlag(c, &asJSON, "the masters' answers as JSON")
	return c
}

func (a *app) settingsRefresh(ctx context.Context, req wire.SettingsRefreshRequest, asJSON bool) error {
	if err := a.connect(ctx); err != nil {
		return err
	}
	info, err := a.masterInfo(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	inbox := a.nc.NewInbox()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		return withCode(ExitError, err)
	}
	defer sub.Unsubscribe()
	m := &nats.Msg{Subject: names.APISubject("settings.refresh"), Reply: inbox, Data: body}
	if a.signer != nil {
		if err := a.signer.Sign(sig.API, m, time.Now()); err != nil {
			return withCode(ExitError, err)
		}
	}
	if err := a.nc.PublishMsg(m); err != nil {
		return withCode(ExitError, err)
	}
	ctx, cancel := context.WithTimeout(ctx, refreshWait)
	defer cancel()
	covered := make([]bool, info.Partitions)
	left := info.Partitions
	var replies []wire.SettingsRefreshReply
	for left > 0 {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break
		}
		if e := msg.Header.Get("Nats-Service-Error"); e != "" {
			return withCode(ExitError, fmt.Errorf("settings refresh: %s", e))
		}
		var r wire.SettingsRefreshReply
		if json.Unmarshal(msg.Data, &r) != nil {
			continue
		}
		replies = append(replies, r)
		for _, p := range r.Owned {
			if p >= 0 && p < info.Partitions && !covered[p] {
				covered[p] = true
				left--
			}
		}
	}
	if len(replies) == 0 {
		return withCode(ExitError, errors.New("settings refresh: no master answered"))
	}
	sort.Slice(replies, func(i, j int) bool { return replies[i].Master < replies[j].Master })
	failed := false
	for _, r := range replies {
		failed = failed || r.Failed > 0 || r.Tree != ""
	}
	if asJSON {
		enc := json.NewEncoder(a.out)
		for _, r := range replies {
			enc.Encode(r)
		}
	} else {
		for _, r := range replies {
			fmt.Fprintf(a.out, "%s: %d peels, %d rendered, %d written, %d failed\n", r.Master, r.Peels, r.Rendered, r.Written, r.Failed)
			if r.Tree != "" {
				fmt.Fprintf(a.out, "  tree does not load (last good tree kept): %s\n", strings.ReplaceAll(r.Tree, "\n", "\n    "))
			}
			for _, e := range r.Errors {
				fmt.Fprintf(a.out, "  %s\n", e)
			}
		}
		if left > 0 {
			fmt.Fprintf(a.out, "%d partitions had no master answering\n", left)
		}
	}
	if failed {
		return withCode(ExitFailed, errors.New("settings refresh: some renders failed; the last good render stays"))
	}
	return nil
}
