package peel

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/zester-io/zester/internal/stateout"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/state"
)

// Call is "zester-peel call FUNCTION [ARGS...]", Salt's salt-call: it runs
// one job function on this host, without a master, and prints its result.
// ARGS are Salt's words: positional ones and key=value pairs mixed
// (call state.apply web test=true). State runs print Salt's highstate
// block (--state-output, or --json for the return as JSON); anything else
// prints as JSON. Exit status: 0 success, 1 the function or a state
// failed, 2 a usage or configuration error.
func Call(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zester-peel call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: zester-peel call [flags] FUNCTION [ARGS...]   (e.g. call state.apply web test=true)")
		fs.PrintDefaults()
	}
	path := fs.String("config", DefaultConfigPath, "configuration file (id, states_dir)")
	local := fs.String("local", "", "state tree to use (masterless); default: states_dir of the configuration")
	root := fs.String("root", "", "prefix of every host path states read and write (a chroot or image being built; tests)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	output := fs.String("state-output", stateout.Full, "state runs: full, terse or changes (changed and failed states in full)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// Flags may also follow the function and its words, as salt-call
	// allows (call state.apply web --state-output=terse): job words
	// never start with a dash.
	var words []string
	for rest := fs.Args(); len(rest) > 0; {
		if len(rest[0]) > 1 && rest[0][0] == '-' {
			if err := fs.Parse(rest); err != nil {
				return 2
			}
			rest = fs.Args()
			continue
		}
		words, rest = append(words, rest[0]), rest[1:]
	}
	if len(words) == 0 {
		fs.Usage()
		return 2
	}
	if err := stateout.Check(*output); err != nil {
		fmt.Fprintln(stderr, "zester-peel call:", err)
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := LoadConfig(*path, explicit)
	if err != nil {
		fmt.Fprintln(stderr, "zester-peel call:", err)
		return 2
	}
	if *local != "" {
		cfg.StatesDir = *local
	}
	fn := words[0]
	raw, _ := json.Marshal(append([]string{}, words[1:]...))

	reg := funcs.NewRegistry()
	state.Register(reg, state.JobConfig{StatesDir: cfg.StatesDir, Root: *root, LockFile: filepath.Join(cfg.DataDir, "state.lock"), Settings: callSettings(cfg, stderr)})
	env := &funcs.Env{PeelID: cfg.ID, MaxOutput: int(cfg.MaxOutput.N()), Facts: localFacts(cfg.ID)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := reg.Run(ctx, env, fn, raw)
	if err != nil {
		var fe *funcs.Error
		if errors.As(err, &fe) && fe.Code == state.CodeCompile {
			fmt.Fprintf(stderr, "zester-peel call: %s: the state tree does not compile; nothing ran:\n%s\n", fn, fe.Msg)
		} else {
			fmt.Fprintf(stderr, "zester-peel call: %s: %v\n", fn, err)
		}
		return 1
	}
	r, isState := res.(state.Return)
	states, printable := stateout.FromRuns(r)
	if isState && printable && !*asJSON {
		stateout.Print(stdout, cfg.ID, states, *output, "")
	} else {
		b, err := json.MarshalIndent(map[string]any{cfg.ID: res}, "", "  ")
		if err != nil {
			fmt.Fprintln(stderr, "zester-peel call: result not encodable:", err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
	}
	if r, ok := res.(state.Return); ok && r.Failed() {
		return 1
	}
	if cr, ok := res.(*funcs.CmdResult); ok && (cr.Retcode != 0 || cr.TimedOut) {
		return 1
	}
	return 0
}

// localFacts collects this host's facts once, on first use, in the shape
// the peel publishes (with its id).
func localFacts(id string) func(ctx context.Context, refresh bool) (any, error) {
	var cached map[string]any
	return func(ctx context.Context, refresh bool) (any, error) {
		if cached != nil && !refresh {
			return cached, nil
		}
		_, m, err := collectFacts(ctx, id, "")
		if err != nil {
			return nil, err
		}
		cached = m
		return m, nil
	}
}
