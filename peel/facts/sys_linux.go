//go:build linux

package facts

import (
	"golang.org/x/sys/unix"
)

type unameInfo struct {
	sysname, release, version, machine string
}

func uname() (unameInfo, bool) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return unameInfo{}, false
	}
	return unameInfo{
		sysname: unix.ByteSliceToString(u.Sysname[:]),
		release: unix.ByteSliceToString(u.Release[:]),
		version: unix.ByteSliceToString(u.Version[:]),
		machine: unix.ByteSliceToString(u.Machine[:]),
	}, true
}

func statfs(path string) (fsStats, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fsStats{}, false
	}
	// Block counts are in units of the fragment size (f_frsize), as df(1)
	// assumes; older kernels leave it 0 and f_bsize applies.
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return fsStats{
		size:       st.Blocks * bs,
		free:       st.Bfree * bs,
		avail:      st.Bavail * bs,
		inodes:     st.Files,
		inodesFree: st.Ffree,
	}, true
}

func sysinfo() (*unix.Sysinfo_t, bool) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil, false
	}
	return &si, true
}

func sysinfoMemory() (Memory, bool) {
	si, ok := sysinfo()
	if !ok {
		return Memory{}, false
	}
	unit := uint64(si.Unit)
	if unit == 0 {
		unit = 1
	}
	return Memory{
		TotalBytes:     uint64(si.Totalram) * unit,
		AvailableBytes: (uint64(si.Freeram) + uint64(si.Bufferram)) * unit,
		FreeBytes:      uint64(si.Freeram) * unit,
		SwapTotalBytes: uint64(si.Totalswap) * unit,
		SwapFreeBytes:  uint64(si.Freeswap) * unit,
	}, true
}

func sysinfoUptime() (int64, bool) {
	si, ok := sysinfo()
	if !ok {
		return 0, false
	}
	return int64(si.Uptime), true
}
