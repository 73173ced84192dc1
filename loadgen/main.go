package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // --pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/zester-io/zester/internal/simfleet"
)

const usage = `zester-loadgen: simulate a Zester fleet against real NATS and real masters, and measure.

Usage:
  zester-loadgen [flags]

With no flags it runs the README's demo: %s simulated peels multiplexed over
%s connections, an in-process single server and one master (three during
masterkill), every scenario; about 1–2 minutes and 2 GiB of RSS on a 2-core machine.

Scenarios (--scenarios, comma list, default all):
  factstorm   every peel stores its facts at once; compression vs JSON
  baseline    raw NATS on the same topology: core fan-out, JetStream publish
              rate, and the ping equivalent (always run when ping is)
  ping        test.ping to '*'; every return must be stored exactly once
  batch       a rolling batch of 10%%: by the master if it honours
              RunRequest.Batch; when it refuses, client-side waves of list
              targets as 'zester run --batch' does; 'not yet supported' when
              the master accepts it but runs every peel at once
  masterkill  3 masters, kill one mid-job: failover time, lost/duplicate returns
  serverkill  stop the job-returns stream leader mid-job (--topology cluster)
  reconnect   restart the server the peels use; time until all are back
  enrollment  every peel enrolls at once under auto-accept (own PKI, operator-
              mode server in a child process, master with the PKI), then up
              to --enroll-conns of them connect with their own credentials;
              beside bare request/replies and connections on the same server

Latency (--latency, --kill-latency): 0 | 250ms | uniform:100ms-2s | lognormal:50ms,0.8[,max=5s]

Flags:
`

// Main is the zester-loadgen command. It returns the exit code: 0 when every
// scenario passed (skips included), 1 when one failed, 2 for usage errors.
func Main(args []string, stdout, stderr io.Writer) int {
	if code, ok := ServeChild(); ok {
		return code
	}
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("zester-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, fmtInt(DefaultPeels), fmtInt(int64(simfleet.DefaultConns(DefaultPeels))))
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.Peels, "peels", cfg.Peels, "number of simulated peels")
	fs.IntVar(&cfg.Conns, "conns", 0, "connections the peels share in multiplexed mode (default peels/100, at most 1000)")
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "multiplexed (peels share connections) or perpeel (one connection per peel, bounded by the open-file limit)")
	fs.StringVar(&cfg.Topology, "topology", cfg.Topology, "in-process NATS: single, cluster (3 servers, R3), leaf (hub + leaf node) or supercluster (2×3 servers)")
	fs.IntVar(&cfg.Masters, "masters", cfg.Masters, "in-process masters")
	scen := fs.String("scenarios", "all", "comma list of scenarios, or all")
	lat := fs.String("latency", cfg.Latency.String(), "answer latency of ping and baselines")
	klat := fs.String("kill-latency", cfg.KillLatency.String(), "answer latency during masterkill and serverkill (the job must be in flight)")
	fs.Float64Var(&cfg.FailRate, "fail-rate", 0, "share of returns that report failure (0 to 1)")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "partitions of the fleet (in-process masters)")
	fs.StringVar(&cfg.NATS, "nats", "", "external NATS URL(s), comma separated, with masters already running there")
	fs.StringVar(&cfg.Target, "target", cfg.Target, "glob target of the pings")
	fs.BoolVar(&cfg.ServerProcess, "server-process", false, "run the single server as a nats-server child process (one open file per connection here: --mode perpeel reaches the whole open-file limit)")
	fs.StringVar(&cfg.ServerBin, "nats-server-bin", "", "nats-server binary for --server-process (default: built once from go.mod's version, needs the Go toolchain and the module)")
	fs.BoolVar(&cfg.Secure, "secure", false, "the default trust: PKI, operator-mode server, signed dispatches checked by every simulated connection, signed API calls (--topology single)")
	fs.DurationVar(&cfg.BeatInterval, "beat-interval", cfg.BeatInterval, "presence beat interval of every simulated peel (the peel's beat_interval): the fleet beats peels/(0.9×interval) times a second throughout")
	fs.DurationVar(&cfg.JobTimeout, "job-timeout", cfg.JobTimeout, "timeout of each ping job")
	fs.StringVar(&cfg.Out, "out", "", "directory for report.json and report.md")
	fs.BoolVar(&cfg.JSON, "json", false, "print the JSON report on stdout instead of the table")
	fs.StringVar(&cfg.CPUProfileDir, "cpuprofile", "", "directory for one CPU profile per scenario (cpu-<scenario>.pprof)")
	fs.IntVar(&cfg.MemLimitGiB, "mem-limit-gib", 0, "soft memory limit of the Go runtime during the run, GiB (default 10, unless GOMEMLIMIT is set; -1: none)")
	fs.StringVar(&cfg.MemProfileDir, "memprofile", "", "directory for one heap profile per scenario, taken at its end (heap-<scenario>.pprof)")
	fs.StringVar(&cfg.StoreDir, "store-dir", "", "parent directory of the in-process JetStream stores (default: the system temp dir)")
	fs.BoolVar(&cfg.KeepStore, "keep-store", false, "keep the JetStream stores after the run")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "level of master log lines on stderr: debug, info, warn, error")
	fs.StringVar(&cfg.EnrollServer, "enroll-server", cfg.EnrollServer, "where the enrollment storm's operator-mode server runs: child (a process of its own) or inproc")
	fs.IntVar(&cfg.EnrollConns, "enroll-conns", cfg.EnrollConns, "peels of the enrollment storm that connect with their own credentials (one connection each)")
	pprofAddr := fs.String("pprof", "", "address (127.0.0.1:PORT) to serve net/http/pprof on during the run: goroutine dumps and profiles of a run that lags")
	verbose := fs.Bool("verbose", false, "also log the nats-servers (at --log-level)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zester-loadgen: unexpected argument %q (flags only)\n", fs.Arg(0))
		return 2
	}
	var err error
	if cfg.Scenarios, err = ParseScenarios(*scen); err != nil {
		fmt.Fprintf(stderr, "zester-loadgen: --scenarios: %v\n", err)
		return 2
	}
	if cfg.Latency, err = simfleet.ParseDist(*lat); err != nil {
		fmt.Fprintf(stderr, "zester-loadgen: --latency: %v\n", err)
		return 2
	}
	if cfg.KillLatency, err = simfleet.ParseDist(*klat); err != nil {
		fmt.Fprintf(stderr, "zester-loadgen: --kill-latency: %v\n", err)
		return 2
	}
	cfg.ServerLog = *verbose
	cfg.Log = stderr
	if !*quiet {
		cfg.Progress = stderr
		cfg.ProgressTTY = isTerminal(stderr)
	}
	cfg.Command = "zester-loadgen"
	if len(args) > 0 {
		cfg.Command += " " + strings.Join(args, " ")
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "zester-loadgen: %v\n", err)
		return 2
	}

	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			fmt.Fprintf(stderr, "zester-loadgen: --pprof: %v\n", err)
			return 2
		}
		srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil && rep == nil {
		fmt.Fprintf(stderr, "zester-loadgen: %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "zester-loadgen: interrupted: %v\n", err)
	}
	if cfg.JSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		rep.WriteTable(stdout)
	}
	if cfg.Out != "" {
		if werr := rep.WriteFiles(cfg.Out); werr != nil {
			fmt.Fprintf(stderr, "zester-loadgen: writing the report: %v\n", werr)
			return 1
		}
		if !cfg.JSON {
			fmt.Fprintf(stdout, "report: %s/report.json, %s/report.md\n", cfg.Out, cfg.Out)
		}
	}
	if err != nil || rep.Failed {
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
