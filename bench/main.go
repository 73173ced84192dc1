// Command bench runs the load generator over a matrix of fleet sizes,
// master counts and NATS topologies, or the chaos loop, and rewrites
// benchmarks.md with the measured figures (package bench/suite).
//
//	go run ./bench -matrix quick   # 1k and 10k peels, single and cluster: under 3 minutes
//	go run ./bench -matrix full    # 1k/10k/100k × 1/3 masters × single/cluster/leaf
//	go run ./bench -chaos 20       # 20 kill -9 of a random node of 3 nats-server processes (~7 min)
package main

import (
	_ "embed"
	"os"

	"github.com/zester-io/zester/bench/suite"
	"github.com/zester-io/zester/loadgen"
)

// analysis is the hand-written part of benchmarks.md (profile findings and
// what would move the limits); it is copied in verbatim.
//
//go:embed analysis.md
var analysis string

func main() {
	// The enrollment storm re-runs this executable as its server child.
	if code, ok := loadgen.ServeChild(); ok {
		os.Exit(code)
	}
	os.Exit(suite.Main(os.Args[1:], analysis, os.Stderr))
}
