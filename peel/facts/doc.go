// Package facts collects descriptive facts about the host zester-peel runs
// on: the operating system release, kernel, CPU, memory, block devices,
// mounted filesystems, network interfaces, host identity and whether the
// host is a virtual machine or container guest.
//
// The facts are published by the agent and used by the master's targeting
// language, which addresses them by colon-separated key paths over the JSON
// form returned by [Facts.Map], for example "os:id", "kernel:release",
// "network:interfaces:eth0:ipv4" or "virtualization:type". Those key paths
// are part of the wire contract: renaming a JSON field is a breaking change
// and must bump [SchemaVersion].
//
// # Sources
//
// Everything is read directly from the kernel and the filesystem:
//
//   - os:             /etc/os-release (falling back to /usr/lib/os-release), uname(2)
//   - kernel:         uname(2)
//   - cpu:            /proc/cpuinfo, /sys/devices/system/cpu/online, runtime.NumCPU
//   - memory:         /proc/meminfo (sysinfo(2) as a fallback)
//   - disks:          /sys/block/*
//   - mounts:         /proc/self/mounts, statfs(2) per mount point
//   - network:        net.Interfaces, an rtnetlink address dump, /proc/net/route
//   - host:           os.Hostname, /etc/hosts and the resolver (fqdn),
//     /etc/machine-id, /proc/stat (btime), /proc/uptime
//   - virtualization: /.dockerenv, /run/.containerenv, /run/systemd/container,
//     /proc/1/environ, /proc/1/cgroup, /sys/class/dmi/id/*, /sys/hypervisor,
//     the cpuinfo "hypervisor" flag and the available clocksources
//
// # Why no shelling out
//
// The collector never executes external programs (lsb_release, lscpu, ip,
// df, dmidecode, systemd-detect-virt, ...). The agent runs on every host of
// the fleet, often with a minimal userland, and facts are refreshed
// periodically: forking tools would make collection slow, dependent on
// which packages happen to be installed and on their localised, version-
// specific output formats, and would widen the attack surface of a process
// that typically runs as root. Reading /proc, /sys and /etc and issuing a
// handful of system calls is fast (Collect normally completes in a few
// milliseconds), has no external dependencies and behaves identically on
// every distribution.
//
// # Best effort
//
// Collection is best effort: a source that is missing or unreadable (for
// example /sys/class/dmi inside a container, or /proc/1/environ without
// privileges) leaves the corresponding fields at their zero value instead of
// failing. [Collect] only returns an error when the context is done or when
// no source at all could be read. The only potentially slow operations, the
// fqdn lookup through the resolver and statfs(2) on network filesystems,
// are bounded by short timeouts.
//
// Every file-format parser (os-release, meminfo, cpuinfo, mounts, /proc/stat,
// hosts, /proc/net/route) is a separate function taking an io.Reader, and
// the sysfs/procfs based detectors take a root directory, so they are tested
// against fixtures in testdata/.
package facts
