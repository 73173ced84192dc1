// Command zester is the operator CLI of a Zester fleet.
package main

import (
	"os"

	"github.com/zester-io/zester/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
