// Package suite is the benchmark suite behind `go run ./bench`: it runs the
// load generator over a matrix of fleet sizes, master counts and NATS
// topologies, or the chaos loop, and rewrites benchmarks.md with the
// measured figures.
//
//	go run ./bench -matrix quick   # 1k and 10k peels, single and cluster: under 3 minutes
//	go run ./bench -matrix full    # 1k/10k/100k × 1/3 masters × single/cluster/leaf
//	go run ./bench -chaos 20       # 20 kill -9 of a random node of 3 nats-server processes (~7 min)
//
// Every cell is a fresh in-process topology with in-process masters (package
// loadgen); cells run one after the other on the same machine.
package suite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/zester-io/zester/loadgen"
)

// Exit codes of Main.
const (
	exitOK     = 0
	exitFailed = 1 // a cell or a scenario failed
	exitUsage  = 2 // bad flags, or the run could not start
)

// options are Main's flags.
type options struct {
	kind, peels, masters, topos string
	out, reports, cpuprofile    string
	dry                         bool
	only, from                  string
	chaos                       chaosOpts
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kind, "matrix", "quick", "quick (1k, 10k × 1/3 masters × single/cluster; under 3 minutes) or full (1k/10k/100k × 1/3 masters × single/cluster/leaf)")
	fs.StringVar(&o.peels, "peels", "", "override the fleet sizes, e.g. 1k,10k,100k")
	fs.StringVar(&o.masters, "masters", "", "override the master counts, e.g. 1,3")
	fs.StringVar(&o.topos, "topologies", "", "override the topologies, e.g. single,cluster,leaf")
	fs.StringVar(&o.out, "out", "", "file to rewrite (default: benchmarks.md at the module root)")
	fs.StringVar(&o.reports, "reports", "", "directory for each cell's report.json and report.md")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "directory for per-scenario CPU profiles of each cell")
	fs.BoolVar(&o.dry, "n", false, "print the cells and exit")
	fs.StringVar(&o.only, "only", "", "run only these cells (comma list of names as -n prints)")
	fs.StringVar(&o.from, "from", "", "do not run: rewrite the file from the reports a previous run saved with -reports DIR")
	fs.IntVar(&o.chaos.kills, "chaos", 0, "run the chaos loop instead of the matrix: N kill -9 of a random node of 3 nats-server processes (see bench/suite/chaos.go)")
	fs.DurationVar(&o.chaos.every, "chaos-every", 20*time.Second, "chaos loop: one kill every")
	fs.IntVar(&o.chaos.peels, "chaos-peels", 3, "chaos loop: peels (real agents, in-process)")
	fs.IntVar(&o.chaos.masters, "chaos-masters", 2, "chaos loop: masters (in-process)")
	fs.BoolVar(&o.chaos.keepLogs, "chaos-keep", false, "chaos loop: keep the servers' and Zester's logs")
	return o, fs.Parse(args)
}

// Main runs the suite with the command line args; analysis is the
// hand-written end of benchmarks.md (bench/analysis.md). It returns the
// process's exit code.
func Main(args []string, analysis string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return exitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.chaos.kills > 0 {
		if o.chaos.out, err = o.path(); err != nil {
			return fail("%v", err)
		}
		if err := runChaos(ctx, o.chaos); err != nil {
			return fail("chaos: %v", err)
		}
		return exitOK
	}
	cells, err := o.cells()
	if err != nil {
		return fail("%v", err)
	}
	if o.dry {
		for _, c := range cells {
			fmt.Printf("%-22s %s\n", c.name(), strings.Join(c.Scenarios, ","))
		}
		return exitOK
	}
	path, err := o.path()
	if err != nil {
		return fail("%v", err)
	}
	var results []result
	var took time.Duration
	if o.from != "" {
		if results, err = load(o.from, cells); err != nil {
			return fail("%v", err)
		}
		for _, r := range results {
			took += r.wall
		}
	} else {
		start := time.Now()
		results = runCells(ctx, cells, o, stderr)
		if len(results) == 0 {
			return fail("no cell ran")
		}
		took = time.Since(start)
	}
	if err := rewrite(path, page{kind: o.kind, results: results, took: took, args: args, analysis: analysis}); err != nil {
		return fail("%v", err)
	}
	if o.from != "" {
		fmt.Fprintf(stderr, "wrote %s from %d saved reports\n", path, len(results))
		return exitOK
	}
	fmt.Fprintf(stderr, "wrote %s (%d cells, %s)\n", path, len(results), took.Round(time.Second))
	for _, r := range results {
		if r.err != nil || r.rep.Failed {
			return exitFailed
		}
	}
	return exitOK
}

// path is the file to rewrite: -out, or benchmarks.md at the module root.
func (o options) path() (string, error) {
	if o.out != "" {
		return o.out, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("%w (use -out)", err)
	}
	return filepath.Join(root, "benchmarks.md"), nil
}

// cells is the matrix the flags select.
func (o options) cells() ([]cell, error) {
	var peels, masters []int
	var topos []string
	switch o.kind {
	case "quick":
		peels, masters, topos = []int{1000, 10_000}, []int{1, 3}, []string{"single", "cluster"}
	case "full":
		peels, masters, topos = []int{1000, 10_000, 100_000}, []int{1, 3}, []string{"single", "cluster", "leaf"}
	default:
		return nil, fmt.Errorf("-matrix %q: want quick or full", o.kind)
	}
	var err error
	if o.peels != "" {
		if peels, err = ints(o.peels); err != nil {
			return nil, fmt.Errorf("-peels: %w", err)
		}
	}
	if o.masters != "" {
		if masters, err = ints(o.masters); err != nil {
			return nil, fmt.Errorf("-masters: %w", err)
		}
	}
	if o.topos != "" {
		topos = strings.Split(o.topos, ",")
	}
	cells := matrix(o.kind, peels, masters, topos)
	if o.only != "" && o.from == "" {
		want := strings.Split(o.only, ",")
		cells = slices.DeleteFunc(cells, func(c cell) bool { return !slices.Contains(want, c.name()) })
		if len(cells) == 0 {
			return nil, fmt.Errorf("-only %q matches no cell (see -n)", o.only)
		}
	}
	return cells, nil
}

// runCells runs the cells one after the other until ctx ends.
func runCells(ctx context.Context, cells []cell, o options, stderr io.Writer) []result {
	start := time.Now()
	var results []result
	for i, c := range cells {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "[%6.0fs] cell %d/%d %s: %s\n", time.Since(start).Seconds(), i+1, len(cells), c.name(), strings.Join(c.Scenarios, ","))
		res := runCell(ctx, c, o.cpuprofile, stderr)
		results = append(results, res)
		if res.err != nil {
			fmt.Fprintf(stderr, "         %s: %v\n", c.name(), res.err)
			continue
		}
		fmt.Fprintf(stderr, "         %s\n", res.oneLine())
		if o.reports != "" {
			if err := res.rep.WriteFiles(filepath.Join(o.reports, c.name())); err != nil {
				fmt.Fprintf(stderr, "         report: %v\n", err)
			}
		}
	}
	return results
}

// runCell runs one cell; a set-up failure (a master not ready, a topology
// not formed) is said and the cell tried once more.
func runCell(ctx context.Context, c cell, cpuprofile string, stderr io.Writer) result {
	cfg := c.config()
	if cpuprofile != "" {
		cfg.CPUProfileDir = filepath.Join(cpuprofile, c.name())
	}
	t := time.Now()
	rep, err := loadgen.Run(ctx, cfg)
	retried := ""
	if err != nil && rep == nil && ctx.Err() == nil {
		retried = err.Error()
		fmt.Fprintf(stderr, "         %s: %v; retrying once\n", c.name(), err)
		t = time.Now()
		rep, err = loadgen.Run(ctx, cfg)
	}
	return result{cell: c, rep: rep, err: err, wall: time.Since(t), retried: retried}
}

// rewrite writes the page to path, keeping the sections other commands
// wrote there.
func rewrite(path string, p page) error {
	keep := keptSections(path)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	p.write(f)
	io.WriteString(f, keep)
	return f.Close()
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/zester-io/zester") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the zester module")
		}
		dir = parent
	}
}
