package peel

import (
	"io"
	"log/slog"
	"os"

	"github.com/zester-io/zester/internal/daemon"
	"github.com/zester-io/zester/internal/version"
)

// Version is the peel's version.
var Version = version.String()

// Main is zester-peel's command line.
func Main(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "call" {
		return Call(args[1:], os.Stdout, stderr)
	}
	return daemon.Main(daemon.Command[Config]{
		Name:          "zester-peel",
		DefaultConfig: DefaultConfigPath,
		Version:       Version,
		Load:          LoadConfig,
		// The schedule's functions are known only with the registry New
		// would use.
		Check: func(cfg Config) error {
			return cfg.Schedule.validate(defaultRegistry(cfg, slog.New(slog.DiscardHandler), nil).Names())
		},
		New: func(cfg Config) (daemon.Daemon, error) {
			p, err := New(cfg, Options{})
			if err != nil {
				return daemon.Daemon{}, err
			}
			return daemon.Daemon{Run: p.Run, Log: p.log}, nil
		},
	}, args, stderr)
}
