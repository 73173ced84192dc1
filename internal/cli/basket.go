package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/wire"
)

// zester basket: read the entries peels publish in the basket bucket
// (Salt's mine), through a master's basket.get endpoint (the master
// resolves the target with its fact index).

func (a *app) basketCmd() *cobra.Command {
	return group("basket", "Read the basket: the values peels publish for each other (Salt's mine)", a.basketGetCmd(), a.basketLsCmd())
}

func (a *app) basketGetCmd() *cobra.Command {
	var asJSON bool
	kind := map[string]*bool{}
	c := &cobra.Command{
		Use:   "get [flags] TARGET NAME",
		Short: "Print basket entry NAME of every peel TARGET selects",
		Long: `Print basket entry NAME of every peel TARGET selects: one line per peel that
publishes it, the value as JSON (a string as is), then how many selected peels
publish none. Targets as for zester run: a glob on ids by default, -L -E -G -P
-S -N -C. Peels publish entries named in peel.yaml's basket (docs/settings.md,
"Basket").`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := names.ValidateBasketName(args[1]); err != nil {
				return withCode(ExitError, err)
			}
			resp, err := a.basketAsk(cmd.Context(), kind, args[0], args[1])
			if err != nil {
				return err
			}
			if asJSON {
				if resp.Values == nil {
					resp.Values = map[string]json.RawMessage{}
				}
				return writeJSON(a.out, resp)
			}
			ids := slices.Sorted(maps.Keys(resp.Values))
			table(a.out, "PEEL\tVALUE", func(tw io.Writer) {
				for _, id := range ids {
					fmt.Fprintf(tw, "%s\t%s\n", id, showValue(resp.Values[id]))
				}
			})
			fmt.Fprintf(a.out, "%d peels publish %s", len(ids), args[1])
			if n := len(resp.Missing); n > 0 {
				fmt.Fprintf(a.out, "; %d selected peels do not: %s", n, strings.Join(resp.Missing, ", "))
			}
			fmt.Fprintln(a.out)
			return nil
		},
	}
	jsonFlag(c, &asJSON, "JSON output: {name, values: {peel: value}, missing: [peel]}")
	addTargetFlags(c, kind)
	return c
}

func (a *app) basketLsCmd() *cobra.Command {
	var asJSON bool
	kind := map[string]*bool{}
	c := command("ls [flags] [TARGET]", "List the basket entries of the peels TARGET selects (default: every peel)", cobra.MaximumNArgs(1), func(cmd *cobra.Command, args []string) error {
		tgt := "*"
		if len(args) == 1 {
			tgt = args[0]
		}
		resp, err := a.basketAsk(cmd.Context(), kind, tgt, "")
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(a.out, resp.Entries)
		}
		table(a.out, "PEEL\tNAME\tFUNCTION\tBYTES\tUPDATED", func(tw io.Writer) {
			for _, e := range resp.Entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Peel, e.Name, e.Function, e.Bytes, e.Updated.Local().Format(time.DateTime))
			}
		})
		fmt.Fprintf(a.out, "%d entries\n", len(resp.Entries))
		return nil
	})
	jsonFlag(c, &asJSON, "JSON output: a list of {peel, name, function, bytes, updated}")
	addTargetFlags(c, kind)
	return c
}

// showValue prints a value on one line: a JSON string as its text,
// anything else as compact JSON.
func showValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// basketAsk sends a basket.get request for entry name ("" lists) of the
// peels tgt selects (its kind from the -L… flags) to any master, retrying
// through restarts and elections; a refusal (bad target, name, role) is
// final.
func (a *app) basketAsk(ctx context.Context, kind map[string]*bool, tgt, name string) (*wire.BasketGetResponse, error) {
	k, err := (&runFlags{kind: kind}).targetKind()
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	if err := a.connect(ctx); err != nil {
		return nil, err
	}
	subj := names.APISubject(names.EndpointBasketGet)
	body, _ := json.Marshal(wire.BasketGetRequest{Target: wire.Target{Kind: k, Expr: tgt}, Name: name})
	var resp wire.BasketGetResponse
	err = a.retry(ctx, "read the basket ("+subj+")", a.stepBudget(), 15*time.Second, func(actx context.Context) error {
		msg, err := a.request(actx, subj, body)
		if err != nil {
			return err
		}
		if e := msg.Header.Get(micro.ErrorHeader); e != "" {
			if msg.Header.Get(micro.ErrorCodeHeader) == "503" {
				return fmt.Errorf("master: %s", e)
			}
			return stop(fmt.Errorf("master refused: %s", e))
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return stop(fmt.Errorf("bad answer from master: %.200s", msg.Data))
		}
		return nil
	})
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, withCode(ExitError, fmt.Errorf("no master answers on %s%s, tried for %s: is zester-master running? (zester masters lists the live ones)", subj, a.via(), absentBudget))
	}
	if err != nil {
		return nil, err
	}
	return &resp, nil
}
