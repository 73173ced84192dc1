package facts

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// SchemaVersion is the version of the JSON layout of Facts. It is bumped
// whenever a key is renamed, removed or changes type; adding keys does not
// bump it.
const SchemaVersion = 1

// Default timeouts for the potentially slow parts of collection.
const (
	// DefaultFQDNTimeout bounds the resolver lookup used to find the fqdn.
	DefaultFQDNTimeout = 200 * time.Millisecond
	// DefaultStatfsTimeout bounds the wait for statfs(2) on all mount
	// points (a hung network filesystem must not stall collection).
	DefaultStatfsTimeout = 50 * time.Millisecond
)

// Facts is the complete set of facts about a host. Its JSON form (see Map)
// is what targeting expressions are evaluated against.
type Facts struct {
	OS             OS               `json:"os"`
	Kernel         Kernel           `json:"kernel"`
	CPU            CPU              `json:"cpu"`
	Memory         Memory           `json:"memory"`
	Disks          map[string]Disk  `json:"disks"`  // keyed by block device name, e.g. "sda", "nvme0n1"
	Mounts         map[string]Mount `json:"mounts"` // keyed by mount point, e.g. "/", "/var"
	Network        Network          `json:"network"`
	Host           Host             `json:"host"`
	Virtualization Virtualization   `json:"virtualization"`
	CollectedAt    time.Time        `json:"collected_at"` // UTC
	Schema         int              `json:"schema"`
}

// OS describes the operating system release (from os-release) and the
// machine architecture.
type OS struct {
	ID         string   `json:"id"`          // e.g. "debian", "ubuntu", "rhel"
	Name       string   `json:"name"`        // e.g. "Debian GNU/Linux"
	Version    string   `json:"version"`     // e.g. "12 (bookworm)"
	VersionID  string   `json:"version_id"`  // e.g. "12"
	PrettyName string   `json:"pretty_name"` // e.g. "Debian GNU/Linux 12 (bookworm)"
	IDLike     []string `json:"id_like"`     // e.g. ["rhel", "fedora"]; empty, never null
	Codename   string   `json:"codename"`    // VERSION_CODENAME, e.g. "bookworm"
	Arch       string   `json:"arch"`        // uname machine, e.g. "x86_64", "aarch64"
	GoArch     string   `json:"goarch"`      // runtime.GOARCH, e.g. "amd64", "arm64"
}

// Kernel describes the running kernel as reported by uname(2).
type Kernel struct {
	Name    string `json:"name"`    // e.g. "Linux"
	Release string `json:"release"` // e.g. "6.1.0-18-amd64"
	Version string `json:"version"` // e.g. "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
}

// CPU describes the processors.
type CPU struct {
	Model   string   `json:"model"`   // e.g. "AMD EPYC 7B13"
	Vendor  string   `json:"vendor"`  // e.g. "GenuineIntel", "AuthenticAMD", "ARM"
	Count   int      `json:"count"`   // logical processors (online)
	Cores   int      `json:"cores"`   // physical cores; 0 when /proc/cpuinfo does not say
	Sockets int      `json:"sockets"` // physical packages; 0 when /proc/cpuinfo does not say
	Flags   []string `json:"flags"`   // feature flags of the first processor; empty, never null
}

// Memory describes RAM and swap, in bytes.
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
	FreeBytes      uint64 `json:"free_bytes"`
	SwapTotalBytes uint64 `json:"swap_total_bytes"`
	SwapFreeBytes  uint64 `json:"swap_free_bytes"`
}

// Disk describes a block device from /sys/block.
type Disk struct {
	SizeBytes  uint64 `json:"size_bytes"`
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable"`
	ReadOnly   bool   `json:"read_only"`
	Virtual    bool   `json:"virtual"` // loop, dm-*, md*, zram*, ... (lives under /sys/devices/virtual)
	Model      string `json:"model"`
	Vendor     string `json:"vendor"`
	Serial     string `json:"serial"`
}

// Mount describes a mounted filesystem. Sizes come from statfs(2) and are
// zero when statfs failed or timed out.
type Mount struct {
	Device         string   `json:"device"`
	MountPoint     string   `json:"mount_point"`
	FSType         string   `json:"fstype"`
	Options        []string `json:"options"`
	ReadOnly       bool     `json:"read_only"`
	SizeBytes      uint64   `json:"size_bytes"`
	FreeBytes      uint64   `json:"free_bytes"`      // free blocks, including those reserved for root
	AvailableBytes uint64   `json:"available_bytes"` // free blocks available to unprivileged users
	UsedBytes      uint64   `json:"used_bytes"`      // size - free
	InodesTotal    uint64   `json:"inodes_total"`
	InodesFree     uint64   `json:"inodes_free"`
}

// Network describes the network interfaces and their addresses.
type Network struct {
	Interfaces       map[string]Interface `json:"interfaces"`        // keyed by interface name
	Addresses        []string             `json:"addresses"`         // every address of every interface, without prefix length
	DefaultInterface string               `json:"default_interface"` // interface of the IPv4 default route
	DefaultGateway   string               `json:"default_gateway"`   // IPv4 default gateway
}

// Interface describes one network interface.
type Interface struct {
	Index    int      `json:"index"`
	MAC      string   `json:"mac"`
	MTU      int      `json:"mtu"`
	Up       bool     `json:"up"`      // administratively up
	Running  bool     `json:"running"` // operationally up
	Loopback bool     `json:"loopback"`
	Flags    []string `json:"flags"`
	IPv4     []string `json:"ipv4"` // CIDR form, e.g. "10.0.0.5/24"; empty, never null
	IPv6     []string `json:"ipv6"` // CIDR form, e.g. "fe80::1/64"; empty, never null
}

// Host describes the identity and lifetime of the host.
type Host struct {
	Hostname      string `json:"hostname"`
	FQDN          string `json:"fqdn"` // best effort, falls back to hostname
	MachineID     string `json:"machine_id"`
	BootTime      string `json:"boot_time"` // RFC 3339, UTC; empty when unknown
	UptimeSeconds int64  `json:"uptime_seconds"`
}

// Virtualization describes whether the host is a guest of a hypervisor or
// runs inside a container.
type Virtualization struct {
	Role       string `json:"role"`       // "guest" or "host"
	Type       string `json:"type"`       // the innermost technology: the container type if any, else the hypervisor, else "none"
	Container  string `json:"container"`  // e.g. "docker", "podman", "lxc", "kubernetes", "systemd-nspawn"; "none"
	Hypervisor string `json:"hypervisor"` // e.g. "kvm", "qemu", "vmware", "xen", "microsoft", "amazon"; "unknown" when only the cpu flag says so; "none"
}

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

// JSON is the document a peel publishes: the struct's fields in their
// declared order, which is the order of factcodec's dictionary.
func (f *Facts) JSON() ([]byte, error) { return json.Marshal(f) }

// Map returns the JSON form of the facts as a generic map, the form the
// targeting language walks with "os:id"-style key paths. Numbers are
// float64 and timestamps RFC 3339 strings, exactly as a consumer decoding
// the published JSON with encoding/json would see them.
func (f *Facts) Map() (map[string]any, error) {
	if f == nil {
		return nil, errors.New("facts: Map called on nil *Facts")
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
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
