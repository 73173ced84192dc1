package suite

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/zester-io/zester/loadgen"
)

// The matrix: which cells (fleet size × masters × topology, with their
// scenarios) a run measures.

type cell struct {
	Peels     int
	Masters   int
	Topology  string
	Mode      string // "" multiplexed, or perpeel
	Scenarios []string
	Headline  bool
}

func (c cell) name() string {
	n := strconv.Itoa(c.Peels)
	if c.Peels%1000 == 0 {
		n = strconv.Itoa(c.Peels/1000) + "k"
	}
	s := fmt.Sprintf("%s-%s-%dm", c.Topology, n, c.Masters)
	if c.Mode != "" {
		s += "-" + c.Mode
	}
	return s
}

// where is the topology column of the tables.
func (c cell) where() string {
	if c.Mode != "" {
		return c.Topology + ", " + c.Mode
	}
	return c.Topology
}

// config is the load generator's configuration of the cell; Command is
// the zester-loadgen command line that reproduces it.
func (c cell) config() loadgen.Config {
	cfg := loadgen.DefaultConfig()
	cfg.Peels, cfg.Masters, cfg.Topology, cfg.Scenarios = c.Peels, c.Masters, c.Topology, c.Scenarios
	cfg.Command = fmt.Sprintf("zester-loadgen --peels %d --masters %d --topology %s --scenarios %s", c.Peels, c.Masters, c.Topology, strings.Join(c.Scenarios, ","))
	if c.Mode != "" {
		cfg.Mode = c.Mode
		cfg.Command += " --mode " + c.Mode
	}
	if !c.Headline {
		cfg.CompressionSamples = -1
	}
	return cfg
}

func matrix(kind string, peels []int, masters []int, topos []string) []cell {
	var out []cell
	for _, p := range peels {
		for _, t := range topos {
			for _, m := range masters {
				c := cell{Peels: p, Masters: m, Topology: t, Scenarios: []string{loadgen.ScFactstorm, loadgen.ScPing}}
				if m >= 3 {
					c.Scenarios = append(c.Scenarios, loadgen.ScMasterkill)
					if t == "cluster" {
						c.Scenarios = append(c.Scenarios, loadgen.ScServerkill)
					}
				}
				if m == 1 && kind == "full" {
					c.Scenarios = append(c.Scenarios, loadgen.ScReconnect)
				}
				// The largest single-server, one-master cell is the
				// README's demo at full size: every scenario.
				if kind == "full" && p == slices.Max(peels) && t == "single" && m == 1 {
					c.Scenarios, c.Headline = loadgen.AllScenarios, true
				}
				out = append(out, c)
			}
		}
	}
	if kind == "full" {
		// One connection per peel, as many as the open-file limit allows
		// with the server in the same process (2 files a connection).
		out = append(out, cell{Peels: 9500, Masters: 1, Topology: "single", Mode: loadgen.ModePerPeel,
			Scenarios: []string{loadgen.ScFactstorm, loadgen.ScPing, loadgen.ScReconnect}})
	}
	return out
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		mult := 1
		if strings.HasSuffix(f, "k") {
			f, mult = strings.TrimSuffix(f, "k"), 1000
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, n*mult)
	}
	return out, nil
}
