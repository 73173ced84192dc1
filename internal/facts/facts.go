// Package facts is the schema of the fact document (Salt's grains): what a
// peel collects (peel/facts) and publishes in the facts bucket, what the
// masters index and targets match, and what the load generator simulates.
// It sits below both daemons so that each side, and their tests, share the
// type without importing the other.
package facts

import (
	"encoding/json"
	"errors"
	"time"
)

// SchemaVersion is the version of the JSON layout of Facts. It is bumped
// whenever a key is renamed, removed or changes type; adding keys does not
// bump it.
const SchemaVersion = 1

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
