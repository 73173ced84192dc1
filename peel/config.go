package peel

import (
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/peel/state"
	"github.com/zester-io/zester/shard"
)

// DefaultConfigPath is where zester-peel looks for its configuration.
const DefaultConfigPath = "/etc/zester/peel.yaml"

// Config is zester-peel's configuration (peel.yaml).
type Config struct {
	// Daemon is id (default: the host name), log_level and http.
	config.Daemon `yaml:",inline"`
	NATS          NATSConfig `yaml:"nats"`
	// FactsInterval is how often facts are collected and published.
	FactsInterval config.Duration `yaml:"facts_interval"`
	// BeatInterval is the longest time between two presence beats (core
	// NATS, never stored); beats are jittered below it. The masters call a
	// peel offline after presence.offline_after without a beat (3 intervals
	// by default).
	BeatInterval config.Duration `yaml:"beat_interval"`
	// DataDir holds the peel's state: the spool of undelivered returns.
	DataDir string `yaml:"data_dir"`
	// Partitions must match the masters'; the peel asks a master for the
	// real value at connect and uses this only until one answers.
	Partitions int `yaml:"partitions"`
	// MaxConcurrentJobs bounds jobs running at once.
	MaxConcurrentJobs int `yaml:"max_concurrent_jobs"`
	// MaxOutput caps captured output per stream and file.read.
	MaxOutput config.ByteSize `yaml:"max_output"`
	// SpoolMax bounds returns held on disk while cut off.
	SpoolMax int `yaml:"spool_max"`
	// EnrollCreds is a copy of the PKI's enroll.creds: with it the peel
	// makes its keys in data_dir, enrolls, and connects with the
	// credentials the masters issue it (enroll.go, creds.go).
	EnrollCreds string `yaml:"enroll_creds"`
	// EnrollToken is an enrollment token (zester enroll token create) that
	// admits the peel without an operator's decision.
	EnrollToken string `yaml:"enroll_token"`
	// Insecure accepts dispatches and control messages no master signed
	// (a lab without a PKI). A warning at every start.
	Insecure bool `yaml:"insecure"`
	// TLS is the CA of the NATS servers and the peel's client certificate.
	TLS config.TLS `yaml:"tls"`
	// Schedule runs functions periodically (schedule.go, docs/schedule.md).
	Schedule Schedule `yaml:"schedule"`
	// StatesDir is the local state tree of state.apply and state.highstate
	// (docs/states.md).
	StatesDir string `yaml:"states_dir"`
	// StatesSource is where state runs read the tree: "local" (states_dir
	// only), "master" (the masters' tree through the state-tree bucket,
	// docs/states.md) or "auto", the default: states_dir when it exists,
	// else the masters' tree.
	StatesSource string `yaml:"states_source"`
	// Basket names the entries the peel publishes in the basket bucket
	// (Salt's mine): entry name → function (basket.go).
	Basket map[string]BasketSpec `yaml:"basket"`
	// BasketInterval is how often the basket functions run (jittered
	// below it); an entry is written only when its value changed or the
	// store lost it.
	BasketInterval config.Duration `yaml:"basket_interval"`
	// BasketMaxValue caps one entry's value (its JSON).
	BasketMaxValue config.ByteSize `yaml:"basket_max_value"`
}

// NATSConfig is the nats: section.
type NATSConfig struct {
	// URL lists the servers (the nearest leaf nodes first).
	URL   config.URLs `yaml:"url"`
	Creds string      `yaml:"creds"`
	// ReconnectMaxDelay caps the backoff between connection attempts
	// (exponential with full jitter, reset once connected).
	ReconnectMaxDelay config.Duration `yaml:"reconnect_max_delay"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Daemon:            config.DefaultDaemon("127.0.0.1:9101"),
		NATS:              NATSConfig{URL: config.URLs{"nats://127.0.0.1:4222"}, ReconnectMaxDelay: config.Dur(30 * time.Second)},
		FactsInterval:     config.Dur(5 * time.Minute),
		BeatInterval:      config.Dur(10 * time.Second),
		DataDir:           "/var/lib/zester/peel",
		Partitions:        shard.DefaultPartitions,
		MaxConcurrentJobs: 8,
		MaxOutput:         config.Bytes(256 << 10),
		SpoolMax:          10000,
		TLS:               config.TLS{Dir: config.DefaultTLSDir},
		StatesDir:         "/srv/zester/states",
		StatesSource:      state.SourceAuto,
		BasketInterval:    config.Dur(5 * time.Minute),
		BasketMaxValue:    config.Bytes(64 << 10),
	}
}

// LoadConfig reads path over the defaults and validates.
func LoadConfig(path string, explicit bool) (Config, error) {
	return config.LoadValid(path, explicit, DefaultConfig())
}

// ParseConfig reads YAML text over the defaults and validates.
func ParseConfig(data []byte) (Config, error) {
	return config.ParseValid("peel.yaml", data, DefaultConfig())
}

// Validate names the first bad key.
func (c *Config) Validate() error {
	if err := config.Check(map[string]interface{ Err() error }{
		"facts_interval": c.FactsInterval, "max_output": c.MaxOutput, "beat_interval": c.BeatInterval,
		"nats.reconnect_max_delay": c.NATS.ReconnectMaxDelay,
	}); err != nil {
		return err
	}
	var errs config.Problems
	bad := errs.Bad
	errs.Common(c.Daemon)
	if len(c.NATS.URL) == 0 {
		bad("nats.url", "empty")
	}
	errs.DurRange("nats.reconnect_max_delay", c.NATS.ReconnectMaxDelay.D(), time.Second, 10*time.Minute)
	if c.FactsInterval.D() < time.Second {
		bad("facts_interval", "%s: want at least 1s", c.FactsInterval.D())
	}
	errs.DurRange("beat_interval", c.BeatInterval.D(), 100*time.Millisecond, 10*time.Minute)
	if c.DataDir == "" {
		bad("data_dir", "empty")
	}
	switch c.StatesSource {
	case "", state.SourceAuto, state.SourceLocal, state.SourceMaster:
	default:
		bad("states_source", "%q: want auto, local or master", c.StatesSource)
	}
	errs.IntRange("partitions", c.Partitions, 1, 65536)
	errs.IntRange("max_concurrent_jobs", c.MaxConcurrentJobs, 1, 1024)
	if n := c.MaxOutput.N(); n < 1024 || n > 8<<20 {
		bad("max_output", "%d: want 1 KiB to 8 MiB", n)
	}
	if c.SpoolMax < 0 {
		bad("spool_max", "negative")
	}
	c.validateEnroll(bad)
	c.validateBasket(bad)
	errs.Add(c.Schedule.validate(nil))
	errs.Add(c.TLS.Validate("tls"))
	return errs.Err()
}
