package peel

import (
	"io"

	"github.com/zester-io/zester/internal/daemon"
	"github.com/zester-io/zester/internal/version"
)

// Version is the peel's version.
var Version = version.String()

// Main is zester-peel's command line.
func Main(args []string, stderr io.Writer) int {
	return daemon.Main(daemon.Command[Config]{
		Name:          "zester-peel",
		DefaultConfig: DefaultConfigPath,
		Version:       Version,
		Load:          LoadConfig,
		New: func(cfg Config) (daemon.Daemon, error) {
			p, err := New(cfg, Options{})
			if err != nil {
				return daemon.Daemon{}, err
			}
			return daemon.Daemon{Run: p.Run, Log: p.log}, nil
		},
	}, args, stderr)
}
