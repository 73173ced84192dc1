package master

import (
	"slices"
	"time"

	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/shard"
)

// DefaultConfigPath is where zester-master looks for its configuration.
const DefaultConfigPath = "/etc/zester/master.yaml"

// Config is zester-master's configuration (master.yaml). docs/configuration.md
// describes every key.
type Config struct {
	// Daemon is id (default: the host name), log_level and http.
	config.Daemon `yaml:",inline"`
	// NATS says where JetStream is.
	NATS NATSConfig `yaml:"nats"`
	// StatesDir holds .sls files and top.sls.
	StatesDir string `yaml:"states_dir"`
	// SettingsDir holds .zy settings templates.
	SettingsDir string `yaml:"settings_dir"`
	// Partitions is the fixed number of partitions of the fleet.
	Partitions int `yaml:"partitions"`
	// Heartbeat is how often this master writes master-heartbeat.
	Heartbeat config.Duration `yaml:"heartbeat"`
	// DeadAfter is how long without a heartbeat makes a master dead.
	DeadAfter config.Duration `yaml:"dead_after"`
	// Nodegroups are named compound targets (N@name).
	Nodegroups map[string]string `yaml:"nodegroups"`
	// Jobs tunes job handling.
	Jobs JobsConfig `yaml:"jobs"`
	// Retention, when set, is applied to the job streams on startup.
	Retention RetentionConfig `yaml:"retention"`
	// Enroll tunes peel enrollment (enroll.go).
	Enroll EnrollConfig `yaml:"enroll"`
	// PKIDir is the PKI (zester pki init); an embedded master creates it on
	// its first start.
	PKIDir string `yaml:"pki_dir"`
	// Insecure runs without a PKI: open NATS, unsigned dispatches,
	// unauthenticated API. A warning at every start.
	Insecure bool `yaml:"insecure"`
	// TLS is the embedded server's certificate, or the CA (and client
	// certificate) of external servers.
	TLS TLSConfig `yaml:"tls"`
	// Presence tunes peel liveness (beats).
	Presence PresenceConfig `yaml:"presence"`
	// Index tunes the fact index.
	Index IndexConfig `yaml:"index"`
}

// IndexConfig is the index: section.
type IndexConfig struct {
	// FactPaths are the fact paths (a G@ target's key path, os:id) whose
	// values the master extracts as each peel's facts arrive, so that
	// the first job targeting them after a start or a failover does not
	// scan every document. Other paths are extracted from the first job
	// on them.
	FactPaths []string `yaml:"fact_paths"`
}

// DefaultIndexFactPaths is index.fact_paths by default: the OS, its
// release, the kernel and the virtualization, values a fleet shares
// (~110 B of heap an owned peel for the four). Not network:addresses (what
// S@ matches), os:codename or os:id_like: with them an owned peel took
// 1,150 B, past the 1 KiB a master may spend on a peel not in a job; list
// them in master.yaml when your operators target them often.
var DefaultIndexFactPaths = []string{"os:id", "os:version_id", "kernel:release", "virtualization:type"}

// PresenceConfig is the presence: section.
type PresenceConfig struct {
	// OfflineAfter is how long without a beat makes a peel offline: three
	// of the peels' default beat_interval. A peel that announces a longer
	// interval gets three of its own.
	OfflineAfter config.Duration `yaml:"offline_after"`
	// TakeoverGrace is how long a master that gains a partition (at start,
	// or from a master that left) listens to the beats it asked for before
	// it resolves a job there: its peels answer within half of it.
	TakeoverGrace config.Duration `yaml:"takeover_grace"`
}

// TLSConfig is the tls: section: the files (config.TLS) and, for the
// embedded server, whether it requires client certificates.
type TLSConfig struct {
	config.TLS `yaml:",inline"`
	// VerifyClients makes the embedded server require a client
	// certificate signed by tls.ca.
	VerifyClients bool `yaml:"verify_clients"`
}

// NATSConfig is the nats: section.
type NATSConfig struct {
	// URL lists the NATS servers; empty starts an embedded server.
	URL config.URLs `yaml:"url"`
	// Creds is a NATS credentials file.
	Creds string `yaml:"creds"`
	// Replicas of every bucket and stream (3 in a cluster).
	Replicas int `yaml:"replicas"`
	// Placement is the cluster where buckets live (superclusters).
	Placement string `yaml:"placement"`
	// Embedded configures the in-process server used when URL is empty.
	Embedded EmbeddedConfig `yaml:"embedded"`
}

// EmbeddedConfig is the nats.embedded: section.
type EmbeddedConfig struct {
	Listen   string `yaml:"listen"`
	Monitor  string `yaml:"monitor"`
	StoreDir string `yaml:"store_dir"`
}

// JobsConfig is the jobs: section.
type JobsConfig struct {
	DefaultTimeout config.Duration `yaml:"default_timeout"`
	MaxTimeout     config.Duration `yaml:"max_timeout"`
	MaxArgs        config.ByteSize `yaml:"max_args"`
}

// RetentionConfig is the retention: section. An unset value leaves the
// stream as it is, so an operator's `nats stream edit` survives a restart.
type RetentionConfig struct {
	Jobs              config.Duration `yaml:"jobs"`
	JobReturns        config.Duration `yaml:"job_returns"`
	JobEvents         config.Duration `yaml:"job_events"`
	JobEventsMaxBytes config.ByteSize `yaml:"job_events_max_bytes"`
}

// DefaultConfig returns the defaults of the seed document.
func DefaultConfig() Config {
	return Config{
		Daemon:      config.DefaultDaemon("127.0.0.1:9100"),
		StatesDir:   "/srv/zester/states",
		SettingsDir: "/srv/zester/settings",
		Partitions:  shard.DefaultPartitions,
		PKIDir:      pki.DefaultDir,
		TLS:         TLSConfig{TLS: config.TLS{Dir: config.DefaultTLSDir}},
		Heartbeat:   config.Dur(time.Second),
		DeadAfter:   config.Dur(3 * time.Second),
		NATS: NATSConfig{
			Replicas: 1,
			Embedded: EmbeddedConfig{
				Listen:   "127.0.0.1:4222",
				Monitor:  "127.0.0.1:8222",
				StoreDir: "/var/lib/zester/nats",
			},
		},
		Jobs: JobsConfig{
			DefaultTimeout: config.Dur(30 * time.Second),
			MaxTimeout:     config.Dur(24 * time.Hour),
			MaxArgs:        config.Bytes(512 << 10),
		},
		Enroll: defaultEnrollConfig(),
		Presence: PresenceConfig{
			OfflineAfter:  config.Dur(30 * time.Second),
			TakeoverGrace: config.Dur(2 * time.Second),
		},
		Index: IndexConfig{FactPaths: slices.Clone(DefaultIndexFactPaths)},
	}
}

// LoadConfig reads the file at path over the defaults and validates the
// result. The default path may be missing; an explicit one may not.
func LoadConfig(path string, explicit bool) (Config, error) {
	return config.LoadValid(path, explicit, DefaultConfig())
}

// ParseConfig reads YAML text over the defaults and validates it.
func ParseConfig(data []byte) (Config, error) {
	return config.ParseValid("master.yaml", data, DefaultConfig())
}

// Validate checks every key and names the first bad one.
func (c *Config) Validate() error {
	if err := config.Check(map[string]interface{ Err() error }{
		"heartbeat": c.Heartbeat, "dead_after": c.DeadAfter,
		"jobs.default_timeout": c.Jobs.DefaultTimeout, "jobs.max_timeout": c.Jobs.MaxTimeout, "jobs.max_args": c.Jobs.MaxArgs,
		"retention.jobs": c.Retention.Jobs, "retention.job_returns": c.Retention.JobReturns,
		"retention.job_events": c.Retention.JobEvents, "retention.job_events_max_bytes": c.Retention.JobEventsMaxBytes,
		"enroll.creds_expiry": c.Enroll.CredsExpiry, "enroll.challenge_ttl": c.Enroll.ChallengeTTL,
		"presence.offline_after": c.Presence.OfflineAfter, "presence.takeover_grace": c.Presence.TakeoverGrace,
	}); err != nil {
		return err
	}
	var errs config.Problems
	bad := errs.Bad
	errs.Common(c.Daemon)
	if len(c.NATS.URL) == 0 {
		errs.HostPort("nats.embedded.listen", c.NATS.Embedded.Listen, false)
		errs.HostPort("nats.embedded.monitor", c.NATS.Embedded.Monitor, true)
		if c.NATS.Embedded.StoreDir == "" {
			bad("nats.embedded.store_dir", "empty")
		}
	}
	errs.IntRange("nats.replicas", c.NATS.Replicas, 1, 5)
	errs.IntRange("partitions", c.Partitions, 1, 65536)
	errs.DurRange("heartbeat", c.Heartbeat.D(), 100*time.Millisecond, 10*time.Second)
	if c.DeadAfter.D() < 2*c.Heartbeat.D() || c.DeadAfter.D() >= 15*time.Second {
		bad("dead_after", "%s: want at least two heartbeats (%s) and under the bucket's 15s TTL", c.DeadAfter.D(), 2*c.Heartbeat.D())
	}
	if c.Jobs.DefaultTimeout.D() <= 0 {
		bad("jobs.default_timeout", "must be positive")
	}
	if c.Jobs.MaxTimeout.D() < c.Jobs.DefaultTimeout.D() {
		bad("jobs.max_timeout", "%s is below jobs.default_timeout", c.Jobs.MaxTimeout.D())
	}
	if n := c.Jobs.MaxArgs.N(); n <= 0 || n > 8<<20 {
		bad("jobs.max_args", "%d: want 1 byte to 8 MiB", n)
	}
	c.Enroll.validate(bad, c.Nodegroups)
	for i, p := range c.Index.FactPaths {
		if _, err := parseFactPath(p); err != nil {
			bad("index.fact_paths", "fact_paths[%d]: %v", i, err)
		}
	}
	if !c.Insecure && c.PKIDir == "" {
		bad("pki_dir", "empty (set insecure: true to run without a PKI, in a lab)")
	}
	errs.Add(c.TLS.Validate("tls"))
	if c.TLS.VerifyClients && c.TLS.CA == "" {
		bad("tls.verify_clients", "needs tls.ca (the CA that signs client certificates)")
	}
	if c.TLS.Enabled() && len(c.NATS.URL) == 0 && c.TLS.Cert == "" {
		bad("tls.cert", "empty: the embedded server needs a certificate and key to serve TLS")
	}
	errs.DurRange("presence.offline_after", c.Presence.OfflineAfter.D(), 100*time.Millisecond, time.Hour)
	errs.DurRange("presence.takeover_grace", c.Presence.TakeoverGrace.D(), 0, time.Minute)
	for name, expr := range c.Nodegroups {
		if _, err := target.Parse(target.KindCompound, expr, target.Options{Nodegroups: c.Nodegroups}); err != nil {
			bad("nodegroups."+name, "%v", err)
		}
	}
	return errs.Err()
}
