// Package cli is the zester operator command line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/sig"
	"github.com/zester-io/zester/internal/stateout"
	"github.com/zester-io/zester/internal/version"
)

// Exit codes of zester run and job wait.
const (
	ExitOK      = 0 // every expected peel returned success
	ExitFailed  = 1 // some peel returned a failure
	ExitMissing = 2 // some expected peel did not answer
	ExitError   = 3 // the command itself failed (bad target, no master, …)
)

// ExitError carries an exit code out of a command.
type exitCode struct {
	code int
	err  error
}

func (e *exitCode) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCode) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitCode{code: code, err: err} }

type app struct {
	natsURL string
	creds   string
	// pkiDir and tlsCA: --pki-dir, --tls-ca; signer signs API requests
	// with the credentials (creds.go).
	pkiDir string
	tlsCA  string
	signer *sig.Signer
	out    io.Writer
	errOut io.Writer
	nc     *nats.Conn
	js     jetstream.JetStream
	// outFormat is --out, Salt's spelling of --json.
	outFormat string
	// stateOutput is --state-output: how state returns are printed.
	stateOutput string
	// budget bounds how long one step of a command (connect, bind a
	// bucket, submit, read) is retried: the job's --timeout for run,
	// defaultBudget otherwise.
	budget time.Duration
	// noProgress turns off the per-job progress line (rolling batches
	// print their own).
	noProgress bool
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	a := &app{out: stdout, errOut: stderr}
	root := a.rootCmd()
	if hint, ok := saltHabit(root, args); ok {
		fmt.Fprintln(stderr, "zester:", hint)
		return ExitError
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if a.nc != nil {
		a.nc.Close()
	}
	if err == nil {
		return ExitOK
	}
	var ec *exitCode
	if errors.As(err, &ec) {
		if ec.err != nil {
			fmt.Fprintln(stderr, "zester:", ec.err)
		}
		return ec.code
	}
	fmt.Fprintln(stderr, "zester:", err)
	return ExitError
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "zester",
		Short:         "Operate a Zester fleet: run jobs, read facts, list masters",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("ZESTER_NATS")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	root.PersistentFlags().StringVar(&a.natsURL, "nats", def, "NATS server URL(s), comma separated (env ZESTER_NATS)")
	root.PersistentFlags().StringVar(&a.creds, "creds", os.Getenv("ZESTER_CREDS"), "NATS credentials file (env ZESTER_CREDS; default: admin.creds of --pki-dir when readable)")
	root.PersistentFlags().StringVar(&a.pkiDir, "pki-dir", pkiDirDefault(), "PKI directory whose admin.creds is used when no --creds is given (env ZESTER_PKI_DIR)")
	root.PersistentFlags().StringVar(&a.tlsCA, "tls-ca", os.Getenv("ZESTER_TLS_CA"), "CA bundle of the NATS servers' certificates (env ZESTER_TLS_CA)")
	root.PersistentFlags().StringVar(&a.outFormat, "out", "", "output format: json (as --json; Salt's spelling)")
	root.PersistentFlags().StringVar(&a.stateOutput, "state-output", stateout.Full, "state returns: full, terse, or changes (changed and failed states in full)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := stateout.Check(a.stateOutput); err != nil {
			return withCode(ExitError, err)
		}
		return a.applyOut(cmd)
	}
	root.AddCommand(a.runCmd(), a.peelsCmd(), a.factsCmd(), a.mastersCmd(), a.jobCmd(), a.checkCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(a.out, "zester", version.String()) },
	})
	root.AddCommand(a.pkiCmd(), a.tlsCmd(), a.enrollCmd(), a.secretsCmd(), a.settingsCmd(), a.basketCmd(),
		a.backupCmd(), a.restoreCmd(), a.purgeCmd(), a.topologyCmd())
	return root
}

func (a *app) connect(ctx context.Context) error {
	if a.nc != nil {
		return nil
	}
	opts := []nats.Option{
		nats.Name("zester-cli"), nats.Timeout(5 * time.Second),
		// Once connected, ride out a server restart: reconnect with
		// jittered backoff for as long as the command runs; every step
		// has its own bound (a.retry).
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(backoffDelay),
	}
	auth, err := a.authOptions()
	if err != nil {
		return err
	}
	opts = append(opts, auth...)
	var nc *nats.Conn
	err = a.retry(ctx, "connect to NATS at "+config.Redact(a.natsURL), min(a.stepBudget(), absentBudget), 10*time.Second, func(context.Context) error {
		var err error
		nc, err = nats.Connect(a.natsURL, opts...)
		return a.connectHint(err)
	})
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return withCode(ExitError, err)
	}
	a.nc, a.js = nc, js
	return nil
}

// stepBudget is how long one step of the current command is retried.
func (a *app) stepBudget() time.Duration {
	if a.budget > 0 {
		return a.budget
	}
	return defaultBudget
}

// kv binds a bucket, retrying through elections and restarts.
func (a *app) kv(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := a.retry(ctx, "bucket "+bucket, a.stepBudget(), attemptTimeout, func(ctx context.Context) error {
		var err error
		kv, err = a.js.KeyValue(ctx, bucket)
		return err
	})
	if err != nil {
		return nil, bucketHint(bucket, err)
	}
	return kv, nil
}

// bucketHint says what a missing bucket means.
func bucketHint(bucket string, err error) error {
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return withCode(ExitError, fmt.Errorf("bucket %s does not exist (zester-master creates the buckets when it starts: has one run against this NATS?): %w", bucket, err))
	}
	return err
}

// applyOut maps --out json onto the command's --json flag.
func (a *app) applyOut(cmd *cobra.Command) error {
	// A command's own --out (topology gen: a directory) shadows this one.
	f := cmd.Flags().Lookup("out")
	if f == nil || !f.Changed || f != cmd.Root().PersistentFlags().Lookup("out") {
		return nil
	}
	if a.outFormat != "json" {
		return withCode(ExitError, fmt.Errorf("--out %q: zester prints a table (the default) or JSON (--out json, or --json)", a.outFormat))
	}
	if cmd.Flags().Lookup("json") == nil {
		return withCode(ExitError, fmt.Errorf("--out json: %q has no JSON output", cmd.CommandPath()))
	}
	return cmd.Flags().Set("json", "true")
}

// saltHabit recognises Salt's `salt '*' test.ping` typed as `zester '*'
// test.ping` and returns the command to type instead.
func saltHabit(root *cobra.Command, args []string) (string, bool) {
	isCommand := func(w string) bool {
		if w == "help" || w == "completion" || strings.HasPrefix(w, "__complete") {
			return true
		}
		for _, c := range root.Commands() {
			if c.Name() == w || c.HasAlias(w) {
				return true
			}
		}
		return false
	}
	var pos []int
	insert := -1 // where `run` goes: after the global flags
	for i := 0; i < len(args); i++ {
		arg := args[i]
		global := arg == "--nats" || arg == "--creds" || arg == "--out"
		switch {
		case arg == "--":
			return "", false
		case global:
			i++ // the flag's value
		case strings.HasPrefix(arg, "--nats=") || strings.HasPrefix(arg, "--creds=") || strings.HasPrefix(arg, "--out="):
		case strings.HasPrefix(arg, "-"):
			if insert < 0 {
				insert = i
			}
		default:
			if isCommand(arg) {
				return "", false
			}
			if insert < 0 {
				insert = i
			}
			pos = append(pos, i)
		}
	}
	if len(pos) < 2 {
		return "", false
	}
	words := []string{"zester"}
	for i, arg := range args {
		if i == insert {
			words = append(words, "run")
		}
		words = append(words, shellQuote(arg))
	}
	tgt := args[pos[0]]
	return fmt.Sprintf("%q is not a zester command; to run %s on the peels %q, type:\n  %s", tgt, args[pos[1]], tgt, strings.Join(words, " ")), true
}

// shellQuote quotes a word for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/=@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isTerminal reports whether w is a terminal (progress lines go there only).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
