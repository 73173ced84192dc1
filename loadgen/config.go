package loadgen

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/simfleet"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// Scenario names, in the order they run.
const (
	ScFactstorm  = "factstorm"
	ScBaseline   = "baseline"
	ScPing       = "ping"
	ScBatch      = "batch"
	ScMasterkill = "masterkill"
	ScServerkill = "serverkill"
	ScReconnect  = "reconnect"
	ScEnrollment = "enrollment"
)

// AllScenarios is the default: every scenario, in run order.
var AllScenarios = []string{ScFactstorm, ScBaseline, ScPing, ScBatch, ScMasterkill, ScServerkill, ScReconnect, ScEnrollment}

// Modes of connecting simulated peels.
const (
	ModeMultiplexed = "multiplexed"
	ModePerPeel     = "perpeel"
)

// DefaultPeels is the size of the default run (the README's demo): every
// scenario at 100,000 peels takes about 65–80 s on a 2-core machine (2 GiB
// peak RSS for servers, masters and fleet together).
const DefaultPeels = 100_000

// Config is one load-generator run.
type Config struct {
	Peels int
	// Conns is the number of shared connections (multiplexed mode); 0 means
	// simfleet.DefaultConns(Peels).
	Conns int
	Mode  string
	// Topology is single, cluster, leaf or supercluster (in-process).
	Topology string
	// Masters is the number of in-process masters.
	Masters int
	// Scenarios to run (AllScenarios when empty).
	Scenarios []string
	// Latency is the answer latency of ping and the baselines.
	Latency simfleet.Dist
	// KillLatency is the answer latency during masterkill and serverkill,
	// long enough for the job to be in flight when the fault strikes.
	KillLatency simfleet.Dist
	// FailRate is the share of returns reporting a failure.
	FailRate float64
	// BeatInterval is every simulated peel's presence beat interval (the
	// real peel's beat_interval, default 10 s). The fleet sends
	// peels / (0.9 × interval) beats a second whatever else it does: at
	// 1,000,000 peels and 10 s about 111,000 a second, which the masters
	// and the server of one 2-core machine cannot take besides a storm.
	BeatInterval time.Duration
	// Partitions of the fleet (in-process masters; external: asked).
	Partitions int
	// NATS, when set, is an external deployment (URLs, comma separated)
	// with its own masters.
	NATS string
	// Target is the ping's glob target.
	Target string
	// JobTimeout is the ping jobs' timeout.
	JobTimeout time.Duration
	// Out is a directory for report.json and report.md ("" writes none).
	Out string
	// JSON prints the JSON report on stdout instead of the table.
	JSON bool
	// CPUProfileDir, when set, gets cpu-<scenario>.pprof for every scenario.
	CPUProfileDir string
	// MemLimitGiB is the Go runtime's soft memory limit during the run
	// (debug.SetMemoryLimit), so that the collector works harder instead of
	// letting the heap double past the live set: at 1,000,000 peels the
	// live heap is ~4–5 GiB and GOGC=100 alone would let RSS pass 10 GiB.
	// 0 is DefaultMemLimitGiB; negative leaves the runtime's (GOMEMLIMIT).
	MemLimitGiB int
	// MemProfileDir, when set, gets heap-<scenario>.pprof at the end of
	// every scenario (what is live then, after a GC).
	MemProfileDir string
	// StoreDir is where the in-process JetStream stores go (temp dir).
	StoreDir  string
	KeepStore bool
	// ServerLog routes nats-server logs into the log.
	ServerLog bool
	// LogLevel of masters (and servers with ServerLog): debug, info, warn, error.
	LogLevel string
	// Progress receives progress lines (nil: none); ProgressTTY rewrites
	// one line in place.
	Progress    io.Writer
	ProgressTTY bool
	// CompressionSamples is how many documents the factstorm's dictionary
	// comparison uses (0: 600; negative: skip the comparison).
	CompressionSamples int
	// Log receives master (and server) log lines; nil discards them.
	Log io.Writer
	// Command is the command line, for the report.
	Command string
	// EnrollServer is where the enrollment storm's operator-mode server
	// runs: EnrollServerChild (a child process, so one connection per peel
	// fits the open-file limit) or EnrollServerInproc.
	EnrollServer string
	// EnrollConns bounds the peels that connect with their own credentials
	// in the enrollment storm (one connection each).
	EnrollConns int
	// ServerProcess runs the single JetStream server in a child process
	// (serverproc.go), so that each fleet connection costs this process one
	// open file; ServerBin is its nats-server binary ("" builds go.mod's).
	ServerProcess bool
	ServerBin     string
	// Secure runs with the deployment's default trust (secure.go): a PKI,
	// the server in operator mode, signed dispatches verified by the
	// simulated connections, signed API calls.
	Secure bool
}

// DefaultMemLimitGiB is the run's soft memory limit unless GOMEMLIMIT or
// --mem-limit-gib says otherwise: under the 12 GiB a 1,000,000-peel run
// must fit in on a 24 GiB machine.
const DefaultMemLimitGiB = 10

// Where the enrollment storm's server runs (enroll.go).
const (
	EnrollServerChild  = "child"
	EnrollServerInproc = "inproc"
)

// DefaultConfig is the default run.
func DefaultConfig() Config {
	return Config{
		Peels:       DefaultPeels,
		Mode:        ModeMultiplexed,
		Topology:    topology.KindSingle,
		Masters:     1,
		Latency:     simfleet.Fixed(0),
		KillLatency: simfleet.Uniform(1*time.Second, 3*time.Second),
		Partitions:  shard.DefaultPartitions,
		Target:      "*",
		JobTimeout:  60 * time.Second,
		LogLevel:    "error",

		BeatInterval: 10 * time.Second,

		EnrollServer: EnrollServerChild,
		EnrollConns:  maxOwnConns,
	}
}

func (c *Config) scenarios() []string {
	if len(c.Scenarios) == 0 {
		return AllScenarios
	}
	return c.Scenarios
}

func (c *Config) has(s string) bool { return slices.Contains(c.scenarios(), s) }

// conns is the effective connection count.
func (c *Config) conns() int {
	if c.Mode == ModePerPeel {
		return c.Peels
	}
	if c.Conns > 0 {
		return min(c.Conns, c.Peels)
	}
	return simfleet.DefaultConns(c.Peels)
}

// ParseScenarios reads a comma list; "all" is every scenario.
func ParseScenarios(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" || s == "all" {
		return AllScenarios, nil
	}
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if p == "all" {
			for _, a := range AllScenarios {
				seen[a] = true
			}
			continue
		}
		if !slices.Contains(AllScenarios, p) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s, all)", p, strings.Join(AllScenarios, ", "))
		}
		seen[p] = true
	}
	var out []string
	for _, a := range AllScenarios {
		if seen[a] {
			out = append(out, a)
		}
	}
	return out, nil
}

// fdReserve is what the process needs besides the fleet's sockets: JetStream
// store files, listeners, masters, the control connection.
const fdReserve = 600

// Validate checks the configuration, including whether the fleet's
// connections fit the open-file limit.
func (c *Config) Validate() error {
	var errs []error
	if c.Peels < 1 || c.Peels > 1_000_000 {
		errs = append(errs, fmt.Errorf("--peels %d: want 1 to 1,000,000", c.Peels))
	}
	if c.Mode != ModeMultiplexed && c.Mode != ModePerPeel {
		errs = append(errs, fmt.Errorf("--mode %q: want %s or %s", c.Mode, ModeMultiplexed, ModePerPeel))
	}
	if c.Conns < 0 {
		errs = append(errs, fmt.Errorf("--conns %d: must not be negative", c.Conns))
	}
	if c.NATS == "" {
		switch c.Topology {
		case topology.KindSingle, topology.KindCluster, topology.KindLeaf, topology.KindSuperCluster:
		default:
			errs = append(errs, fmt.Errorf("--topology %q: want single, cluster, leaf or supercluster", c.Topology))
		}
		if c.Masters < 1 || c.Masters > 16 {
			errs = append(errs, fmt.Errorf("--masters %d: want 1 to 16", c.Masters))
		}
	}
	if c.Partitions < 1 || c.Partitions > 65536 {
		errs = append(errs, fmt.Errorf("--partitions %d: want 1 to 65536", c.Partitions))
	}
	if c.ServerProcess && (c.NATS != "" || c.Secure || c.Topology != topology.KindSingle) {
		errs = append(errs, errServerProcessTopology)
	}
	if c.Secure && (c.NATS != "" || c.Topology != topology.KindSingle) {
		errs = append(errs, errSecureTopology)
	}
	if c.FailRate < 0 || c.FailRate > 1 {
		errs = append(errs, fmt.Errorf("--fail-rate %g: want 0 to 1", c.FailRate))
	}
	if c.BeatInterval < time.Second {
		errs = append(errs, fmt.Errorf("--beat-interval %s: at least 1s", c.BeatInterval))
	}
	if c.JobTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--job-timeout %s: at least 1s", c.JobTimeout))
	}
	if c.Target == "" {
		errs = append(errs, errors.New("--target: empty"))
	}
	if c.EnrollServer != EnrollServerChild && c.EnrollServer != EnrollServerInproc {
		errs = append(errs, fmt.Errorf("--enroll-server %q: want %s or %s", c.EnrollServer, EnrollServerChild, EnrollServerInproc))
	}
	if c.EnrollConns < 0 || c.EnrollConns > maxOwnConns {
		errs = append(errs, fmt.Errorf("--enroll-conns %d: want 0 to %d", c.EnrollConns, maxOwnConns))
	}
	if err := c.checkFiles(noFileLimit()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkFiles refuses a fleet whose sockets do not fit the open-file limit:
// every connection is a socket in this process, and a second one (the
// server's end) when the server runs in this process too.
func (c *Config) checkFiles(limit uint64) error {
	if limit == 0 {
		return nil
	}
	per := 2
	where := "the server runs in this process, so each connection costs 2 (client and server end)"
	if c.NATS != "" || c.ServerProcess {
		per, where = 1, "the server runs in another process, so each connection costs 1"
	}
	conns := c.conns()
	need := uint64(conns*per + fdReserve)
	if need <= limit {
		return nil
	}
	fit := (int(limit) - fdReserve) / per
	mode := "--mode " + c.Mode
	if c.Mode == ModeMultiplexed {
		mode = fmt.Sprintf("--conns %d", conns)
	}
	return fmt.Errorf("%s with %d peels needs %d connections, about %d open files (%s, plus %d in reserve), "+
		"but this process may open at most %d (RLIMIT_NOFILE): at most %d connections fit. "+
		"Use --mode %s (peels share connections), fewer peels, or an external server with --nats",
		mode, c.Peels, conns, need, where, fdReserve, limit, max(fit, 0), ModeMultiplexed)
}
