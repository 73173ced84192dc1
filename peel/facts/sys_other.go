//go:build !linux

package facts

// The agent targets Linux; on other systems only the portable sources
// (hostname, network interfaces, runtime) yield facts.

type unameInfo struct {
	sysname, release, version, machine string
}

func uname() (unameInfo, bool) { return unameInfo{}, false }

func statfs(string) (fsStats, bool) { return fsStats{}, false }

func sysinfoMemory() (Memory, bool) { return Memory{}, false }

func sysinfoUptime() (int64, bool) { return 0, false }
