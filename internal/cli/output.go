package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// The shapes every command repeats, in one place each: a leaf command, a
// command that only groups others, a body that needs NATS, and output that
// is either JSON (--json) or an aligned table.

// command is a leaf command: use and short as help shows them, args the
// check of its positional arguments, run its body. Set Long and flags on
// what it returns.
func command(use, short string, args cobra.PositionalArgs, run func(*cobra.Command, []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args, RunE: run}
}

// group is a command that only holds subs (zester pki, zester basket, …).
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short}
	c.AddCommand(subs...)
	return c
}

// online is a command body that runs connected to NATS: it connects first
// (a.connect, retried within the step budget) and then runs with the
// command's context. Bodies that check their flags or arguments before
// reaching NATS connect themselves, so that bad input is refused without a
// server.
func (a *app) online(run func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := a.connect(cmd.Context()); err != nil {
			return err
		}
		return run(cmd.Context(), args)
	}
}

// jsonFlag adds --json to c, bound to p, with help what.
func jsonFlag(c *cobra.Command, p *bool, what string) { c.Flags().BoolVar(p, "json", false, what) }

// emit prints v as JSON (writeJSON) when asJSON, else the table of header
// and rows (table) on a.out.
func (a *app) emit(asJSON bool, v any, header string, rows func(w io.Writer)) error {
	if asJSON {
		return writeJSON(a.out, v)
	}
	return table(a.out, header, rows)
}

// writeJSON writes v as one line of JSON. A nil slice is written as [] and
// a nil map as {}, never null, so that scripts can iterate over the answer.
func writeJSON(w io.Writer, v any) error {
	switch rv := reflect.ValueOf(v); {
	case rv.Kind() == reflect.Slice && rv.IsNil():
		v = []struct{}{}
	case rv.Kind() == reflect.Map && rv.IsNil():
		v = struct{}{}
	}
	return json.NewEncoder(w).Encode(v)
}

// table writes an aligned table to w: the header line (none when ""), then
// the lines rows writes, cells separated by tabs, columns two spaces apart.
func table(w io.Writer, header string, rows func(w io.Writer)) error {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, header)
	}
	rows(tw)
	return tw.Flush()
}
