package master

import (
	"context"
	"flag"
	"io"

	"github.com/zester-io/zester/internal/daemon"
)

// Main is zester-master's command line: flags, config, run until a signal.
func Main(args []string, stderr io.Writer) int {
	var natsOnly *bool
	return daemon.Main(daemon.Command[Config]{
		Name:          "zester-master",
		DefaultConfig: DefaultConfigPath,
		Version:       Version,
		Flags: func(fs *flag.FlagSet) {
			natsOnly = fs.Bool("nats-only", false, "run only the embedded nats-server (maintenance, e.g. a restore), not the master")
		},
		Load: LoadConfig,
		New: func(cfg Config) (daemon.Daemon, error) {
			if *natsOnly {
				return daemon.Daemon{Run: func(ctx context.Context) error { return RunEmbeddedOnly(ctx, cfg) }}, nil
			}
			m, err := New(cfg, Options{})
			if err != nil {
				return daemon.Daemon{}, err
			}
			return daemon.Daemon{Run: m.Run, Log: m.log}, nil
		},
	}, args, stderr)
}
