package peel

import (
	"github.com/zester-io/zester/internal/version"

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

// Version is the peel's version.
var Version = version.String()

// Main is zester-peel's command line.
func Main(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "call" {
		return Call(args[1:], os.Stdout, stderr)
	}
	fs := flag.NewFlagSet("zester-peel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", DefaultConfigPath, "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit")
	fs.BoolVar(check, "t", false, "shorthand for --check")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stderr, "zester-peel", Version)
		return 0
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := LoadConfig(*path, explicit)
	if err != nil {
		fmt.Fprintln(stderr, "zester-peel:", err)
		return 2
	}
	if *check {
		if _, err := os.Stat(*path); !explicit && errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "zester-peel: no configuration file at %s: the defaults are used, and they are valid\n", *path)
			return 0
		}
		fmt.Fprintf(stderr, "zester-peel: configuration %s is valid\n", *path)
		return 0
	}
	p, err := New(cfg, Options{})
	if err != nil {
		fmt.Fprintln(stderr, "zester-peel:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		select {
		case err = <-errc:
		case <-time.After(15 * time.Second):
			fmt.Fprintln(stderr, "zester-peel: shutdown took too long; exiting")
			return 1
		}
	}
	if err != nil {
		p.log.Error("peel failed", "err", err)
		return 1
	}
	return 0
}
