package facts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	schema "github.com/zester-io/zester/internal/facts"
)

// The document's types live in internal/facts, below both daemons; these
// names keep the collector's code and its callers unchanged.
type (
	Facts          = schema.Facts
	OS             = schema.OS
	Kernel         = schema.Kernel
	CPU            = schema.CPU
	Memory         = schema.Memory
	Disk           = schema.Disk
	Mount          = schema.Mount
	Network        = schema.Network
	Interface      = schema.Interface
	Host           = schema.Host
	Virtualization = schema.Virtualization
)

// SchemaVersion is internal/facts' SchemaVersion.
const SchemaVersion = schema.SchemaVersion

// Default timeouts for the potentially slow parts of collection.
const (
	// DefaultFQDNTimeout bounds the resolver lookup used to find the fqdn.
	DefaultFQDNTimeout = 200 * time.Millisecond
	// DefaultStatfsTimeout bounds the wait for statfs(2) on all mount
	// points (a hung network filesystem must not stall collection).
	DefaultStatfsTimeout = 50 * time.Millisecond
)

// Options tunes collection. The zero value is what Collect uses.
type Options struct {
	// IncludeTmpfs also reports tmpfs and ramfs mounts, which are skipped by
	// default together with the other pseudo filesystems.
	IncludeTmpfs bool
	// FQDNTimeout bounds the resolver lookup of the fqdn. Zero means
	// DefaultFQDNTimeout; a negative value disables the resolver lookup
	// (only the hostname and /etc/hosts are consulted).
	FQDNTimeout time.Duration
	// StatfsTimeout bounds the wait for statfs(2) results. Zero means
	// DefaultStatfsTimeout.
	StatfsTimeout time.Duration
}

// Collect gathers the facts of the host it runs on with default Options.
//
// Collection is best effort: a missing or unreadable source yields empty
// fields, not an error. An error is returned only when ctx is done or when
// not a single source could be read.
func Collect(ctx context.Context) (*Facts, error) {
	return CollectWith(ctx, Options{})
}

// CollectWith is Collect with explicit options.
func CollectWith(ctx context.Context, opts Options) (*Facts, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.FQDNTimeout == 0 {
		opts.FQDNTimeout = DefaultFQDNTimeout
	}
	if opts.StatfsTimeout <= 0 {
		opts.StatfsTimeout = DefaultStatfsTimeout
	}
	c := collector{root: "/", opts: opts}
	f := c.collect(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.sourcesRead() == 0 {
		return nil, errors.New("facts: no fact source could be read")
	}
	return f, nil
}

// collector carries the filesystem root the file based sources are read
// from ("/" in production, a fixture directory in tests) and counts how
// many sources were readable.
type collector struct {
	root string
	opts Options

	mu   sync.Mutex
	read int
}

func (c *collector) path(p string) string {
	if c.root == "/" || c.root == "" {
		return p
	}
	return filepath.Join(c.root, p)
}

func (c *collector) ok() {
	c.mu.Lock()
	c.read++
	c.mu.Unlock()
}

func (c *collector) sourcesRead() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read
}

// open opens a file below the collector root and records a readable source.
func (c *collector) open(p string) (*os.File, error) {
	fh, err := os.Open(c.path(p))
	if err == nil {
		c.ok()
	}
	return fh, err
}

func (c *collector) collect(ctx context.Context) *Facts {
	now := time.Now().UTC()
	f := &Facts{
		Disks:       map[string]Disk{},
		Mounts:      map[string]Mount{},
		CollectedAt: now,
		Schema:      SchemaVersion,
	}

	// Hostname first: the fqdn lookup is the slowest part, so it runs in
	// the background while everything else is collected.
	hostname := c.hostname()
	f.Host.Hostname = hostname
	fqdnc := make(chan string, 1)
	go func() { fqdnc <- c.fqdn(ctx, hostname) }()

	f.OS = c.osRelease()
	f.OS.GoArch = runtime.GOARCH
	if c.root == "/" {
		if u, ok := uname(); ok {
			c.ok()
			f.Kernel = Kernel{Name: u.sysname, Release: u.release, Version: u.version}
			f.OS.Arch = u.machine
		}
	} else {
		f.Kernel.Release = c.readTrim("/proc/sys/kernel/osrelease")
	}

	f.CPU = c.cpu()
	f.Memory = c.memory()
	f.Disks = c.disks()
	f.Mounts = c.mounts(ctx)
	f.Network = c.network()

	f.Host.MachineID = c.machineID()
	boot, uptime := c.bootAndUptime(now)
	if !boot.IsZero() {
		f.Host.BootTime = boot.UTC().Format(time.RFC3339)
	}
	f.Host.UptimeSeconds = uptime

	f.Virtualization = c.virtualization(f.CPU.Flags)

	f.Host.FQDN = <-fqdnc
	return f
}

// hostname is os.Hostname on the real root; below a fixture root it is
// read from proc/sys/kernel/hostname.
func (c *collector) hostname() string {
	if c.root != "/" {
		return c.readTrim("/proc/sys/kernel/hostname")
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	c.ok()
	return h
}

// readTrim reads a small file below the collector root and returns its
// content with surrounding whitespace removed, or "" when unreadable.
func (c *collector) readTrim(p string) string {
	b, err := os.ReadFile(c.path(p))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (c *collector) exists(p string) bool {
	_, err := os.Lstat(c.path(p))
	return err == nil
}

// nonNil turns a nil slice into an empty one so it encodes as [] not null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
