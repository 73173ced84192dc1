// Package daemon is the process lifecycle shared by zester-master and
// zester-peel: the common flags (--config, --check/-t, --version), loading and
// validating the configuration, running until SIGINT or SIGTERM, and a grace
// period after which the process exits whether or not the daemon has stopped.
//
// Exit codes: 0 a clean stop (or --check/--version), 1 the daemon failed or
// did not stop within Grace, 2 bad flags or configuration.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/zester-io/zester/internal/obs"
)

// Grace is how long a daemon has after the stop signal to stop cleanly
// (hand its partitions over, send its goodbye, let running jobs return)
// before the process exits anyway. The daemons budget their shutdown steps
// inside it.
const Grace = 15 * time.Second

// Exit codes of Main.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// Daemon is a built daemon, ready to run.
type Daemon struct {
	// Run serves until ctx ends (the stop signal) or the daemon fails.
	Run func(ctx context.Context) error
	// Log reports a failure of Run; nil reports it on stderr.
	Log *slog.Logger
}

// Defaults fills in what the caller of a daemon's New left out of its
// options: the logger is JSON on stderr at level (the configuration's
// log_level), the metrics a set of its own.
func Defaults(log *slog.Logger, set *metrics.Set, level string) (*slog.Logger, *metrics.Set) {
	if log == nil {
		log = obs.StderrLogger(level)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	return log, set
}

// Command describes one daemon binary for Main.
type Command[C any] struct {
	// Name is the binary's name ("zester-master"), the prefix of its
	// messages on stderr.
	Name string
	// DefaultConfig is the configuration file read without --config.
	DefaultConfig string
	// Version is printed by --version.
	Version string
	// Flags adds the daemon's own flags to fs (may be nil).
	Flags func(fs *flag.FlagSet)
	// Load reads and validates the configuration. explicit is whether
	// --config was given: a missing default file means the defaults, a
	// missing explicit one is an error.
	Load func(path string, explicit bool) (C, error)
	// New builds the daemon from a valid configuration; its error is a
	// configuration error (exit 2).
	New func(cfg C) (Daemon, error)
	// Check, when set, is --check's part beyond Load: what only the
	// daemon knows (the peel's schedule names functions of its registry).
	// Its error is a configuration error (exit 2).
	Check func(cfg C) error
}

// Main runs the command line of c with args and returns the exit code.
func Main[C any](c Command[C], args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return run(ctx, c, args, stderr, Grace)
}

// run is Main with the stop signal as ctx and the grace period as a
// parameter, so tests can stop a daemon without sending the process a
// signal.
func run[C any](ctx context.Context, c Command[C], args []string, stderr io.Writer, grace time.Duration) int {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", c.DefaultConfig, "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit")
	fs.BoolVar(check, "t", false, "shorthand for --check")
	version := fs.Bool("version", false, "print the version and exit")
	if c.Flags != nil {
		c.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *version {
		fmt.Fprintln(stderr, c.Name, c.Version)
		return ExitOK
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := c.Load(*path, explicit)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return ExitUsage
	}
	if *check {
		if c.Check != nil {
			if err := c.Check(cfg); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
				return ExitUsage
			}
		}
		if _, err := os.Stat(*path); !explicit && errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "%s: no configuration file at %s: the defaults are used, and they are valid\n", c.Name, *path)
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s: configuration %s is valid\n", c.Name, *path)
		return ExitOK
	}
	d, err := c.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return ExitUsage
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		select {
		case err = <-errc:
		case <-time.After(grace):
			fmt.Fprintf(stderr, "%s: shutdown took too long; exiting\n", c.Name)
			return ExitFailed
		}
	}
	if err != nil {
		if d.Log != nil {
			d.Log.Error(strings.TrimPrefix(c.Name, "zester-")+" failed", "err", err)
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		}
		return ExitFailed
	}
	return ExitOK
}
