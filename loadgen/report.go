package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
)

// Seconds is a duration written as a number of seconds in JSON.
type Seconds float64

// Sec converts a duration.
func Sec(d time.Duration) Seconds { return Seconds(d.Seconds()) }

// D converts back.
func (s Seconds) D() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

func (s Seconds) String() string { return fmtDur(s.D()) }

// Report is the outcome of one run.
type Report struct {
	Started  time.Time `json:"started"`
	Command  string    `json:"command"`
	Machine  Machine   `json:"machine"`
	Versions Versions  `json:"versions"`
	Setup    Setup     `json:"setup"`
	Fleet    FleetInfo `json:"fleet"`
	// Scenarios in run order.
	Scenarios []*Scenario `json:"scenarios"`
	Targets   []Target    `json:"targets"`
	Process   Resources   `json:"process"`
	Wall      Seconds     `json:"wall_s"`
	Failed    bool        `json:"failed"`
}

// Setup is the run's parameters.
type Setup struct {
	Peels       int    `json:"peels"`
	Conns       int    `json:"conns"`
	Mode        string `json:"mode"`
	Topology    string `json:"topology"`
	Servers     int    `json:"servers"`
	Replicas    int    `json:"replicas"`
	Masters     int    `json:"masters"`
	Partitions  int    `json:"partitions"`
	Latency     string `json:"latency"`
	KillLatency string `json:"kill_latency"`
	// BeatInterval is every simulated peel's beat interval.
	BeatInterval string  `json:"beat_interval"`
	FailRate     float64 `json:"fail_rate"`
	Target       string  `json:"target"`
	NATS         string  `json:"nats,omitempty"`
	// Secure: PKI, operator mode, signed dispatches (--secure).
	Secure bool `json:"secure,omitempty"`
	// ServerProcess: the server ran in a child process (--server-process);
	// the process figures then leave it out (Resources.ServerPeakRSS).
	ServerProcess bool `json:"server_process,omitempty"`
}

// FleetInfo is what the simulated fleet cost.
type FleetInfo struct {
	ConnectTime Seconds `json:"connect_s"`
	// HeapBytes is the Go heap and stack growth from creating and connecting
	// the fleet (the fleet's own memory, before any traffic).
	HeapBytes    int64   `json:"heap_bytes"`
	BytesPerPeel float64 `json:"bytes_per_peel"`
	OpenFiles    int     `json:"open_files"`
	Subs         int     `json:"subscriptions"`
	// Verified and Refused count the simulated connections' signature
	// checks (secure runs): one per message per connection, not per peel.
	Verified int64 `json:"signatures_verified,omitempty"`
	Refused  int64 `json:"signatures_refused,omitempty"`
	// AsyncErrors counts what nats.go reported on the fleet's connections
	// after they connected (slow consumer, a write reset).
	AsyncErrors int64 `json:"async_errors,omitempty"`
}

// Resources is what a scenario (or the whole run) used.
type Resources struct {
	CPU     Seconds `json:"cpu_s"`
	UserCPU Seconds `json:"user_cpu_s"`
	SysCPU  Seconds `json:"sys_cpu_s"`
	PeakRSS int64   `json:"peak_rss_bytes"`
	// ServerPeakRSS is the child server's peak RSS (--server-process).
	ServerPeakRSS int64 `json:"server_peak_rss_bytes,omitempty"`
	// Bytes the fleet's connections sent and received.
	FleetOut uint64 `json:"fleet_out_bytes"`
	FleetIn  uint64 `json:"fleet_in_bytes"`
	// Bytes in and out of the in-process servers (clients, routes, leafs).
	ServerIn  uint64 `json:"server_in_bytes,omitempty"`
	ServerOut uint64 `json:"server_out_bytes,omitempty"`
	Profile   string `json:"cpu_profile,omitempty"`
}

// Scenario statuses.
const (
	StatusOK          = "ok"
	StatusFailed      = "FAILED"
	StatusSkipped     = "skipped"
	StatusUnsupported = "not yet supported"
)

// Scenario is the outcome of one scenario.
type Scenario struct {
	Name    string   `json:"name"`
	Status  string   `json:"status"`
	Summary string   `json:"summary"`
	Notes   []string `json:"notes,omitempty"`
	Wall    Seconds  `json:"wall_s"`

	Facts     *FactsResult     `json:"facts,omitempty"`
	Baseline  *BaselineResult  `json:"baseline,omitempty"`
	Ping      *PingResult      `json:"ping,omitempty"`
	Batch     *BatchResult     `json:"batch,omitempty"`
	Failover  *FailoverResult  `json:"failover,omitempty"`
	Reconnect *ReconnectResult `json:"reconnect,omitempty"`
	Enroll    *EnrollResult    `json:"enroll,omitempty"`

	Res Resources `json:"resources"`
}

func (s *Scenario) note(format string, a ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, a...))
}

func (s *Scenario) fail(format string, a ...any) {
	s.Status = StatusFailed
	s.note(format, a...)
}

// FactsResult is the factstorm.
type FactsResult struct {
	Peels       int                `json:"peels"`
	StoreTime   Seconds            `json:"store_s"` // first publish → every fact acknowledged
	Rate        float64            `json:"facts_per_s"`
	IndexTime   Seconds            `json:"index_s,omitempty"` // first publish → every master indexed every peel
	JSONAvg     float64            `json:"json_bytes_avg"`
	StoredAvg   float64            `json:"stored_bytes_avg"`
	Ratio       float64            `json:"ratio"`
	Encoder     string             `json:"encoder"`
	EncodeTime  Seconds            `json:"encode_s"`
	EncodeUS    float64            `json:"encode_us_per_doc"`
	BytesStored int64              `json:"bytes_stored"`
	Compression *CompressionReport `json:"compression,omitempty"`
}

// BaselineResult is raw NATS on the same topology.
type BaselineResult struct {
	N int `json:"n"`
	// (a) one core broadcast to every connection, every peel answers 200 B
	// with a core publish to the collectors (one queue group of Collectors
	// connections, enough that the burst fits their pending limits).
	FanoutTime Seconds `json:"fanout_s"`
	Collectors int     `json:"collectors,omitempty"`
	// (b) PublishAsync of N return-shaped messages with unique subjects from
	// one connection, window 4096.
	PublishTime Seconds `json:"publish_s"`
	PublishRate float64 `json:"publish_per_s"`
	// (c) the ping equivalent: one broadcast, every peel stores a
	// return-shaped message (same headers and body size) with PublishAsync,
	// one consumer reads them (headers only): broadcast → all consumed.
	PingEquivTime   Seconds   `json:"ping_equiv_s"` // best of PingEquivRuns
	PingEquivRuns   []Seconds `json:"ping_equiv_runs_s"`
	PingEquivStored Seconds   `json:"ping_equiv_stored_s"`
	PingEquivP50    Seconds   `json:"ping_equiv_p50_s"`
	PingEquivP99    Seconds   `json:"ping_equiv_p99_s"`
}

// PingResult is one job to the fleet.
type PingResult struct {
	JID      string `json:"jid"`
	Latency  string `json:"latency"`
	Peels    int    `json:"peels"`
	Status   string `json:"status"`
	Expected int    `json:"expected"`
	Returned int    `json:"returned"`
	Failed   int    `json:"failed"`
	Missing  int    `json:"missing"`

	StoredKeys   int   `json:"stored_keys"` // distinct keys in job-returns for the jid
	StoredMsgs   int   `json:"stored_msgs"`
	Lost         int   `json:"lost"`         // expected − stored keys
	Duplicates   int64 `json:"duplicates"`   // returns stored more than once
	DupRefused   int64 `json:"dup_refused"`  // retries refused because already stored
	DupDispatch  int64 `json:"dup_dispatch"` // dispatches received twice by a peel
	Retries      int64 `json:"retries"`
	FailedSent   int64 `json:"failed_sent"` // returns sent with success=false
	PeakInflight int64 `json:"peak_inflight"`

	FirstDispatch Seconds  `json:"first_dispatch_s"` // submit → first dispatch at a peel
	AllStored     Seconds  `json:"all_stored_s"`     // submit → last return stored
	Final         Seconds  `json:"final_s"`          // submit → job record final
	Time          Seconds  `json:"time_s"`           // max(AllStored, Final): the headline
	P50           Seconds  `json:"p50_s"`
	P90           Seconds  `json:"p90_s"`
	P99           Seconds  `json:"p99_s"`
	Max           Seconds  `json:"max_s"`
	Throughput    float64  `json:"returns_per_s"`
	Ratio         float64  `json:"ratio_to_baseline,omitempty"` // Time / baseline ping-equivalent
	Verified      bool     `json:"verified"`
	Problems      []string `json:"problems,omitempty"`
}

// BatchResult is the rolling-batch probe.
type BatchResult struct {
	Batch         string      `json:"batch"`
	Size          int         `json:"size"`
	Mode          string      `json:"mode,omitempty"` // master, client
	MasterRefused string      `json:"master_refused,omitempty"`
	Waves         int         `json:"waves,omitempty"`
	Total         Seconds     `json:"total_s,omitempty"`
	PeakInflight  int64       `json:"peak_inflight"`
	Ping          *PingResult `json:"ping,omitempty"`
}

// FailoverResult is masterkill or serverkill.
type FailoverResult struct {
	Victim       string      `json:"victim"`
	Why          string      `json:"why"`
	FaultAt      Seconds     `json:"fault_at_s"`            // after submit
	Failover     Seconds     `json:"failover_s"`            // masterkill: kill → survivors own every partition
	ShutdownTime Seconds     `json:"shutdown_s,omitempty"`  // serverkill: how long the stop took
	WriteGap     Seconds     `json:"write_gap_s,omitempty"` // serverkill: stop → next successful KV write
	DoneAfter    Seconds     `json:"done_after_fault_s"`    // fault → job record final with every return
	Masters      int         `json:"masters"`
	Ping         *PingResult `json:"ping"`
}

// ReconnectResult is the server restart.
type ReconnectResult struct {
	Server         string  `json:"server"`
	Conns          int     `json:"conns"`
	PeelsMoved     int     `json:"peels_reconnected"`
	RestartTime    Seconds `json:"restart_s"`     // stop + start of the server
	AllReconnected Seconds `json:"reconnected_s"` // restart begun → every connection back
	PingDone       Seconds `json:"ping_done_s"`   // restart begun → ping final with every return
	// FactsRepublished is restart begun → every reconnected peel's facts
	// stored again (each spread over its connection's Spreader window);
	// Refusals counts the stores the server refused (429) meanwhile.
	FactsRepublished Seconds     `json:"facts_republished_s"`
	Refusals         int64       `json:"refusals"`
	Ping             *PingResult `json:"ping"`
}

// Target is one of the performance targets and whether this run met it.
type Target struct {
	What     string `json:"what"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	Note     string `json:"note,omitempty"`
}

// MetText is the "met" column of a target: "yes", or no when it was missed,
// with the note in parentheses.
func (t Target) MetText(no string) string {
	met := "yes"
	if !t.Met {
		met = no
	}
	if t.Note != "" {
		met += " (" + t.Note + ")"
	}
	return met
}

// ---- rendering ----

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 100*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

func fmtBytes(b int64) string { return humanize.IBytes(uint64(max(b, 0))) }

func fmtInt(n int64) string { return humanize.Comma(n) }

func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk/s", r/1e3)
	default:
		return fmt.Sprintf("%.0f/s", r)
	}
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Title is a one-line description of the run.
func (r *Report) Title() string {
	s := r.Setup
	where := fmt.Sprintf("topology %s (%d server(s), R%d), %d master(s)", s.Topology, s.Servers, s.Replicas, s.Masters)
	if s.NATS != "" {
		where = "external NATS " + s.NATS
	}
	return fmt.Sprintf("%s simulated peels over %s connections (%s), %s, %d partitions",
		fmtInt(int64(s.Peels)), fmtInt(int64(s.Conns)), s.Mode, where, s.Partitions)
}

// MachineLine describes the machine and versions.
func (r *Report) MachineLine() string {
	m := r.Machine
	return fmt.Sprintf("%d × %s, %s RAM, %s; %s, nats-server %s, nats.go %s", m.CPUs, m.CPUModel, fmtBytes(m.MemBytes), m.OS, r.Versions.Go, r.Versions.NATSServer, r.Versions.NATSClient)
}

// WriteTable prints the human report.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\nzester-loadgen — %s\n", r.Title())
	fmt.Fprintf(w, "machine: %s\n\n", r.MachineLine())
	rows := [][]string{{"scenario", "status", "time", "result"}}
	for _, s := range r.Scenarios {
		rows = append(rows, []string{s.Name, s.Status, s.Wall.String(), s.Summary})
		for _, n := range s.Notes {
			rows = append(rows, []string{"", "", "", "  · " + n})
		}
	}
	writeAligned(w, rows)
	fmt.Fprintln(w)
	if len(r.Targets) > 0 {
		rows = [][]string{{"target", "goal", "measured", "met"}}
		for _, t := range r.Targets {
			rows = append(rows, []string{t.What, t.Goal, t.Measured, t.MetText("NO")})
		}
		writeAligned(w, rows)
		fmt.Fprintln(w)
	}
	p := r.Process
	fmt.Fprintf(w, "fleet: %s heap for %s peels (%.0f B/peel), %s connections, %d open files; connect %s\n",
		fmtBytes(r.Fleet.HeapBytes), fmtInt(int64(r.Setup.Peels)), r.Fleet.BytesPerPeel, fmtInt(int64(r.Setup.Conns)), r.Fleet.OpenFiles, r.Fleet.ConnectTime)
	if r.Fleet.AsyncErrors > 0 {
		fmt.Fprintf(w, "fleet connections: %s asynchronous errors reported by nats.go (slow consumer, write resets)\n", fmtInt(r.Fleet.AsyncErrors))
	}
	if r.Setup.Secure {
		fmt.Fprintf(w, "secure: operator mode, signed dispatches and API calls; the fleet verified %s signatures (one per message per connection; a real peel verifies each dispatch to it once, on its own core), refused %d\n",
			fmtInt(r.Fleet.Verified), r.Fleet.Refused)
	}
	if r.Setup.ServerProcess {
		fmt.Fprintf(w, "process (masters + fleet; the server in a child process, peak RSS %s): peak RSS %s, CPU %s (user %s, sys %s) over %s wall\n",
			fmtBytes(p.ServerPeakRSS), fmtBytes(p.PeakRSS), p.CPU, p.UserCPU, p.SysCPU, r.Wall)
	} else {
		fmt.Fprintf(w, "process (servers + masters + fleet): peak RSS %s, CPU %s (user %s, sys %s) over %s wall\n",
			fmtBytes(p.PeakRSS), p.CPU, p.UserCPU, p.SysCPU, r.Wall)
	}
	fmt.Fprintf(w, "fleet wire: out %s, in %s", fmtBytes(int64(p.FleetOut)), fmtBytes(int64(p.FleetIn)))
	if p.ServerIn > 0 {
		fmt.Fprintf(w, "; servers: in %s, out %s", fmtBytes(int64(p.ServerIn)), fmtBytes(int64(p.ServerOut)))
	}
	fmt.Fprintln(w)
}

// writeAligned prints rows as columns two spaces apart, the first row a
// header underlined across the table.
func writeAligned(w io.Writer, rows [][]string) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		if i == 0 {
			// The last column starts where the header's last cell does.
			last := rows[0][len(rows[0])-1]
			fmt.Fprintln(w, strings.Repeat("─", utf8.RuneCountInString(line)-utf8.RuneCountInString(last)+22))
		}
	}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// WriteMarkdown writes the report as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# zester-loadgen report\n\n")
	fmt.Fprintf(w, "- run: %s\n- machine: %s\n- started: %s, wall %s\n", r.Title(), r.MachineLine(), r.Started.UTC().Format(time.RFC3339), r.Wall)
	fmt.Fprintf(w, "- command: `%s`\n", r.Command)
	fmt.Fprintf(w, "- latency: %s; kill latency: %s; fail rate %g; beat interval %s\n\n", r.Setup.Latency, r.Setup.KillLatency, r.Setup.FailRate, r.Setup.BeatInterval)
	fmt.Fprintf(w, "| scenario | status | wall | result |\n|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		res := s.Summary
		for _, n := range s.Notes {
			res += "<br>· " + n
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.Name, s.Status, s.Wall, mdEscape(res))
	}
	if len(r.Targets) > 0 {
		fmt.Fprintf(w, "\n## Targets\n\n| target | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range r.Targets {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.What, t.Goal, mdEscape(t.Measured), mdEscape(t.MetText("**no**")))
		}
	}
	fmt.Fprintf(w, "\n## Resources\n\n| scenario | CPU | peak RSS | fleet out | fleet in | servers in | servers out |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		if s.Status == StatusSkipped {
			continue
		}
		x := s.Res
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", s.Name, x.CPU, fmtBytes(x.PeakRSS), fmtBytes(int64(x.FleetOut)), fmtBytes(int64(x.FleetIn)), fmtBytes(int64(x.ServerIn)), fmtBytes(int64(x.ServerOut)))
	}
	p := r.Process
	fmt.Fprintf(w, "| **whole run** | %s | %s | %s | %s | %s | %s |\n", p.CPU, fmtBytes(p.PeakRSS), fmtBytes(int64(p.FleetOut)), fmtBytes(int64(p.FleetIn)), fmtBytes(int64(p.ServerIn)), fmtBytes(int64(p.ServerOut)))
	fmt.Fprintf(w, "\nFleet: %s of heap and stacks for %s peels (%.0f B/peel) over %s connections; %d open files.\n",
		fmtBytes(r.Fleet.HeapBytes), fmtInt(int64(r.Setup.Peels)), r.Fleet.BytesPerPeel, fmtInt(int64(r.Setup.Conns)), r.Fleet.OpenFiles)
	fmt.Fprintf(w, "CPU and RSS are of the whole process: nats-server(s), masters and the simulated fleet share it.\n")
	if r.Setup.Secure {
		fmt.Fprintf(w, "Secure run: the server in operator mode, the masters signed every dispatch and control message, every simulated connection verified each one it received (%s verifications, %d refused; one per message per connection, while a real fleet verifies once per peel and dispatch, each peel on its own core).\n",
			fmtInt(r.Fleet.Verified), r.Fleet.Refused)
	}
}

// WriteFiles writes report.json and report.md into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return err
	}
	r.WriteMarkdown(f)
	return f.Close()
}

// Find returns the scenario named name, or nil.
func (r *Report) Find(name string) *Scenario {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return nil
}
