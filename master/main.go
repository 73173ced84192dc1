package master

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main is zester-master's command line: flags, config, run until a signal.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("zester-master", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", DefaultConfigPath, "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit")
	fs.BoolVar(check, "t", false, "shorthand for --check")
	version := fs.Bool("version", false, "print the version and exit")
	natsOnly := fs.Bool("nats-only", false, "run only the embedded nats-server (maintenance, e.g. a restore), not the master")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stderr, "zester-master", Version)
		return 0
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := LoadConfig(*path, explicit)
	if err != nil {
		fmt.Fprintln(stderr, "zester-master:", err)
		return 2
	}
	if *check {
		if _, err := os.Stat(*path); !explicit && errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "zester-master: no configuration file at %s: the defaults are used, and they are valid\n", *path)
			return 0
		}
		fmt.Fprintf(stderr, "zester-master: configuration %s is valid\n", *path)
		return 0
	}
	if *natsOnly {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if err := RunEmbeddedOnly(ctx, cfg); err != nil {
			fmt.Fprintln(stderr, "zester-master:", err)
			return 1
		}
		return 0
	}
	m, err := New(cfg, Options{})
	if err != nil {
		fmt.Fprintln(stderr, "zester-master:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		// Grace period for the clean hand-over, then force.
		select {
		case err = <-errc:
		case <-time.After(15 * time.Second):
			fmt.Fprintln(stderr, "zester-master: shutdown took too long; exiting")
			return 1
		}
	}
	if err != nil {
		m.log.Error("master failed", "err", err)
		return 1
	}
	return 0
}
