// Package cli is the zester operator command line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/sig"
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
	// noProgress turns off the per-job progress line (rolling batches
	// print their own).
	noProgress bool
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	a := &app{out: stdout, errOut: stderr}
	root := a.rootCmd()
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
	root.AddCommand(a.runCmd(), a.peelsCmd(), a.factsCmd(), a.mastersCmd(), a.jobCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(a.out, "zester", version.String()) },
	})
	root.AddCommand(a.pkiCmd())
	root.AddCommand(a.tlsCmd())
	for _, extra := range extraCommands {
		root.AddCommand(extra(a))
	}
	return root
}

// extraCommands lets other files of this package register command groups.
var extraCommands []func(*app) *cobra.Command

func (a *app) connect(ctx context.Context) error {
	if a.nc != nil {
		return nil
	}
	opts := []nats.Option{nats.Name("zester-cli"), nats.Timeout(5 * time.Second)}
	auth, err := a.authOptions()
	if err != nil {
		return err
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(a.natsURL, opts...)
	if err != nil {
		return withCode(ExitError, fmt.Errorf("connect to NATS at %s: %w", config.Redact(a.natsURL), a.connectHint(err)))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return withCode(ExitError, err)
	}
	a.nc, a.js = nc, js
	return nil
}

func (a *app) kv(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := a.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, withCode(ExitError, fmt.Errorf("bucket %s: %w (is a master running against %s?)", bucket, err, config.Redact(a.natsURL)))
	}
	return kv, nil
}

// isTerminal reports whether w is a terminal (progress lines go there only).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
