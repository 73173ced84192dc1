package cli_test

import (
	"io"

	"github.com/zester-io/zester/internal/cli"
)

func cliMain(args []string, stdout, stderr io.Writer) int { return cli.Main(args, stdout, stderr) }
