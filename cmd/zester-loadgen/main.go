// Command zester-loadgen simulates a Zester fleet of up to hundreds of
// thousands of peels against real NATS and real masters, and measures it
// (see package loadgen).
package main

import (
	"os"

	"github.com/zester-io/zester/loadgen"
)

func main() { os.Exit(loadgen.Main(os.Args[1:], os.Stdout, os.Stderr)) }
