// Package factgen generates fact documents for simulated peels: the layout
// of peel/facts (the struct the real agent publishes), with values drawn
// from a PRNG seeded by the peel's index. The load generator's fleet
// publishes them, and the fact codec's tests measure on them; it lives apart
// from both so that neither pulls in the other.
package factgen

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/zester-io/zester/internal/facts"
)

// The generator draws every value from a PRNG seeded by the peel's index, so
// a peel's facts are the same every time they are generated (nothing is kept
// in memory between publishes) and differ from peel to peel the way a real
// fleet's do: OS family and release, kernel package version, CPU model,
// memory, disks with serials, mounts, interfaces with MACs and addresses,
// machine id, uptime.

type osRelease struct {
	id, name, versionID, version, codename string
	idLike                                 []string
	weight                                 int
	kernel                                 func(r *rand.Rand, arch string) (release, version string)
}

var osReleases = []osRelease{
	{"debian", "Debian GNU/Linux", "12", "12 (bookworm)", "bookworm", nil, 38, func(r *rand.Rand, arch string) (string, string) {
		abi := 13 + r.IntN(15)
		suffix := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[arch]
		patch := 64 + abi*4 + r.IntN(3)
		return fmt.Sprintf("6.1.0-%d-%s", abi, suffix), fmt.Sprintf("#1 SMP PREEMPT_DYNAMIC Debian 6.1.%d-1 (2024-%02d-%02d)", patch, 1+r.IntN(12), 1+r.IntN(28))
	}},
	{"debian", "Debian GNU/Linux", "11", "11 (bullseye)", "bullseye", nil, 7, func(r *rand.Rand, arch string) (string, string) {
		abi := 21 + r.IntN(8)
		suffix := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[arch]
		return fmt.Sprintf("5.10.0-%d-%s", abi, suffix), fmt.Sprintf("#1 SMP Debian 5.10.%d-1 (2024-%02d-%02d)", 180+abi*3, 1+r.IntN(12), 1+r.IntN(28))
	}},
	{"ubuntu", "Ubuntu", "22.04", "22.04.4 LTS (Jammy Jellyfish)", "jammy", []string{"debian"}, 25, func(r *rand.Rand, arch string) (string, string) {
		abi := 88 + r.IntN(30)
		flavor := "generic"
		if r.IntN(3) == 0 {
			flavor = "aws"
		}
		return fmt.Sprintf("5.15.0-%d-%s", abi, flavor), fmt.Sprintf("#%d-Ubuntu SMP %s %s %d %02d:%02d:%02d UTC 2024", abi+10, day(r), month(r), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	}},
	{"ubuntu", "Ubuntu", "24.04", "24.04.1 LTS (Noble Numbat)", "noble", []string{"debian"}, 10, func(r *rand.Rand, arch string) (string, string) {
		abi := 31 + r.IntN(20)
		return fmt.Sprintf("6.8.0-%d-generic", abi), fmt.Sprintf("#%d-Ubuntu SMP PREEMPT_DYNAMIC %s %s %d %02d:%02d:%02d UTC 2024", abi+1, day(r), month(r), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	}},
	{"rhel", "Red Hat Enterprise Linux", "9.4", "9.4 (Plow)", "", []string{"fedora"}, 10, func(r *rand.Rand, arch string) (string, string) {
		b := 427 + r.IntN(6)
		return fmt.Sprintf("5.14.0-%d.%d.1.el9_4.%s", b, 13+r.IntN(20), arch), fmt.Sprintf("#1 SMP PREEMPT_DYNAMIC %s %s %d %02d:%02d:%02d EDT 2024", day(r), month(r), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	}},
	{"rocky", "Rocky Linux", "9.3", "9.3 (Blue Onyx)", "", []string{"rhel", "centos", "fedora"}, 10, func(r *rand.Rand, arch string) (string, string) {
		b := 362 + r.IntN(3)
		return fmt.Sprintf("5.14.0-%d.%d.1.el9_3.0.1.%s", b, 8+r.IntN(20), arch), fmt.Sprintf("#1 SMP PREEMPT_DYNAMIC %s %s %d %02d:%02d:%02d UTC 2024", day(r), month(r), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	}},
}

var osWeightTotal = func() int {
	n := 0
	for _, o := range osReleases {
		n += o.weight
	}
	return n
}()

func day(r *rand.Rand) string {
	return [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}[r.IntN(7)]
}

func month(r *rand.Rand) string {
	return [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}[r.IntN(12)]
}

type cpuModel struct {
	model, vendor string
	arch          string
	flags         []string
	counts        []int
	hyper         string // hypervisor for guests on this kind of hardware
}

var amdFlags = strings.Fields(`fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext perfctr_core invpcid_single ssbd ibrs ibpb stibp vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr rdpru wbnoinvd arat npt nrip_save umip pku ospke vaes vpclmulqdq rdpid fsrm`)

var amdGenoaFlags = append(append([]string{}, amdFlags...), strings.Fields(`avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 gfni avx512_vnni avx512_bitalg avx512_vpopcntdq la57 flush_l1d`)...)

var intelFlags = strings.Fields(`fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq monitor ssse3 fma cx16 pdcm pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single ssbd ibrs ibpb stibp ibrs_enhanced fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves wbnoinvd ida arat avx512vbmi pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq rdpid md_clear flush_l1d arch_capabilities`)

var armFlags = strings.Fields(`fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs`)

var cpuModels = []cpuModel{
	{"AMD EPYC 7B13", "AuthenticAMD", "x86_64", amdFlags, []int{2, 4, 8, 16, 32}, "kvm"},
	{"AMD EPYC 9654 96-Core Processor", "AuthenticAMD", "x86_64", amdGenoaFlags, []int{32, 64, 192, 384}, "none"},
	{"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "GenuineIntel", "x86_64", intelFlags, []int{2, 4, 8, 16, 32, 64}, "amazon"},
	{"Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "GenuineIntel", "x86_64", intelFlags, []int{64, 128}, "none"},
	{"Intel Xeon Processor (Icelake)", "GenuineIntel", "x86_64", intelFlags, []int{2, 4, 8}, "kvm"},
	{"Neoverse-N1", "ARM", "aarch64", armFlags, []int{2, 4, 8, 16, 64}, "amazon"},
}

type diskKind struct {
	prefix, model, vendor string
	rotational            bool
	serial                func(r *rand.Rand) string
}

var diskKinds = []diskKind{
	{"nvme", "Amazon Elastic Block Store", "", false, func(r *rand.Rand) string { return "vol0" + hexStr(r, 16) }},
	{"nvme", "SAMSUNG MZQL23T8HCLS-00A07", "", false, func(r *rand.Rand) string { return "S64HNE0R" + digits(r, 6) }},
	{"sd", "PERC H755 Front", "DELL", false, func(r *rand.Rand) string { return "00" + hexStr(r, 30) }},
	{"vd", "", "0x1af4", true, func(r *rand.Rand) string { return "" }},
	{"sd", "QEMU HARDDISK", "QEMU", true, func(r *rand.Rand) string { return "drive-scsi0-0-0-" + digits(r, 1) }},
}

var nicOUIs = [][3]byte{{0x52, 0x54, 0x00}, {0x0e, 0x00, 0x00}, {0x00, 0x50, 0x56}, {0x3c, 0xec, 0xef}, {0xb8, 0xce, 0xf6}, {0x06, 0x00, 0x00}}

const hexdigits = "0123456789abcdef"

func hexStr(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = hexdigits[r.IntN(16)]
	}
	return string(b)
}

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func macAddr(r *rand.Rand, oui [3]byte) (string, [6]byte) {
	m := [6]byte{oui[0], oui[1], oui[2], byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}
	if oui == [3]byte{0x0e, 0, 0} || oui == [3]byte{0x06, 0, 0} {
		m[1], m[2] = byte(r.IntN(256)), byte(r.IntN(256))
	}
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]), m
}

func linkLocal(m [6]byte) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = m[0]^0x02, m[1], m[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = m[3], m[4], m[5]
	return netip.AddrFrom16(a)
}

const gib = uint64(1) << 30

// Gen builds the fact document of simulated peel i with the given id, in the
// layout of peel/facts (the struct the real agent publishes).
func Gen(i int, id string, now time.Time) *facts.Facts {
	r := rand.New(rand.NewPCG(uint64(i)+1, 0x2e57e5))
	var f facts.Facts
	f.Schema = facts.SchemaVersion
	f.CollectedAt = now.UTC()

	// OS and kernel.
	cpu := cpuModels[r.IntN(len(cpuModels))]
	w := r.IntN(osWeightTotal)
	var osr osRelease
	for _, o := range osReleases {
		if w < o.weight {
			osr = o
			break
		}
		w -= o.weight
	}
	goarch := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[cpu.arch]
	f.OS = facts.OS{ID: osr.id, Name: osr.name, Version: osr.version, VersionID: osr.versionID,
		PrettyName: osr.name + " " + osr.version, IDLike: osr.idLike, Codename: osr.codename, Arch: cpu.arch, GoArch: goarch}
	if f.OS.IDLike == nil {
		f.OS.IDLike = []string{}
	}
	if osr.id == "ubuntu" {
		f.OS.PrettyName = "Ubuntu " + strings.Split(osr.version, " (")[0]
	}
	rel, ver := osr.kernel(r, cpu.arch)
	f.Kernel = facts.Kernel{Name: "Linux", Release: rel, Version: ver}

	// CPU and memory.
	count := cpu.counts[r.IntN(len(cpu.counts))]
	sockets := 1
	if count >= 128 && cpu.hyper == "none" {
		sockets = 2
	}
	cores := count
	if cpu.vendor != "ARM" {
		cores = max(count/2, 1)
	}
	f.CPU = facts.CPU{Model: cpu.model, Vendor: cpu.vendor, Count: count, Cores: cores, Sockets: sockets, Flags: cpu.flags}
	memGiB := uint64(count) * uint64([]int{2, 4, 8}[r.IntN(3)])
	total := memGiB*gib - uint64(r.IntN(512))<<20
	avail := total / 100 * uint64(20+r.IntN(75))
	f.Memory = facts.Memory{TotalBytes: total, AvailableBytes: avail, FreeBytes: avail / 100 * uint64(30+r.IntN(60))}
	if r.IntN(3) == 0 {
		f.Memory.SwapTotalBytes = uint64(1+r.IntN(8)) * gib
		f.Memory.SwapFreeBytes = f.Memory.SwapTotalBytes - uint64(r.IntN(64))<<20
	}

	// Disks.
	dk := diskKinds[r.IntN(len(diskKinds))]
	nd := 1 + r.IntN(3)
	f.Disks = make(map[string]facts.Disk, nd+2)
	var devs []string
	for d := 0; d < nd; d++ {
		var name string
		switch dk.prefix {
		case "nvme":
			name = fmt.Sprintf("nvme%dn1", d)
		default:
			name = dk.prefix + string(rune('a'+d))
		}
		devs = append(devs, name)
		f.Disks[name] = facts.Disk{SizeBytes: uint64([]int{20, 50, 100, 250, 500, 1000, 3840}[r.IntN(7)]) * gib,
			Rotational: dk.rotational, Model: dk.model, Vendor: dk.vendor, Serial: dk.serial(r)}
	}
	if osr.id == "ubuntu" {
		for l := 0; l < r.IntN(6); l++ {
			f.Disks[fmt.Sprintf("loop%d", l)] = facts.Disk{SizeBytes: uint64(40+r.IntN(90)) << 20, Virtual: true, ReadOnly: true, Rotational: false}
		}
	}
	if r.IntN(3) == 0 {
		f.Disks["dm-0"] = facts.Disk{SizeBytes: f.Disks[devs[0]].SizeBytes - 2*gib, Virtual: true}
	}

	// Mounts.
	part := func(dev string, n int) string {
		if strings.HasPrefix(dev, "nvme") {
			return fmt.Sprintf("/dev/%sp%d", dev, n)
		}
		return fmt.Sprintf("/dev/%s%d", dev, n)
	}
	fs := "ext4"
	if osr.id == "rhel" || osr.id == "rocky" {
		fs = "xfs"
	}
	f.Mounts = map[string]facts.Mount{}
	addMount := func(mp, dev, fstype string, size uint64, opts []string) {
		free := size / 1000 * uint64(50+r.IntN(900))
		avail := free
		if fstype == "ext4" && free > size/20 {
			avail = free - size/20
		}
		inodes := size / 16384
		f.Mounts[mp] = facts.Mount{Device: dev, MountPoint: mp, FSType: fstype, Options: opts, SizeBytes: size,
			FreeBytes: free, AvailableBytes: avail, UsedBytes: size - free, InodesTotal: inodes, InodesFree: inodes / 100 * uint64(60+r.IntN(39))}
	}
	rootSize := f.Disks[devs[0]].SizeBytes - 2*gib
	stdOpts := []string{"rw", "relatime"}
	if fs == "xfs" {
		stdOpts = []string{"rw", "relatime", "seclabel", "attr2", "inode64", "logbufs=8", "logbsize=32k", "noquota"}
	}
	addMount("/", part(devs[0], 1), fs, rootSize, stdOpts)
	addMount("/boot/efi", part(devs[0], 15), "vfat", 106<<20, []string{"rw", "relatime", "fmask=0077", "dmask=0077", "codepage=437", "iocharset=ascii", "shortname=mixed", "utf8", "errors=remount-ro"})
	if r.IntN(2) == 0 {
		addMount("/boot", part(devs[0], 2), fs, 1<<30, stdOpts)
	}
	extra := []string{"/var", "/var/log", "/home", "/srv", "/opt", "/var/lib/docker", "/data", "/var/lib/postgresql", "/tmp"}
	for k, mp := range extra {
		if r.IntN(3) != 0 {
			continue
		}
		dev := part(devs[0], 3+k)
		if len(devs) > 1 && r.IntN(2) == 0 {
			dev = "/dev/" + devs[1+r.IntN(len(devs)-1)]
		}
		if r.IntN(4) == 0 {
			dev = "/dev/mapper/vg0-" + strings.ReplaceAll(strings.Trim(mp, "/"), "/", "_")
		}
		addMount(mp, dev, fs, uint64(5+r.IntN(500))*gib, append(append([]string{}, stdOpts...), []string{"nodev", "nosuid"}[:r.IntN(3)]...))
	}

	// Network.
	oui := nicOUIs[r.IntN(len(nicOUIs))]
	f.Network.Interfaces = map[string]facts.Interface{}
	var addrs []string
	f.Network.Interfaces["lo"] = facts.Interface{Index: 1, MAC: "", MTU: 65536, Up: true, Running: true, Loopback: true,
		Flags: []string{"up", "loopback", "running"}, IPv4: []string{"127.0.0.1/8"}, IPv6: []string{"::1/128"}}
	addrs = append(addrs, "127.0.0.1", "::1")
	nicName := []string{"eth", "ens", "enp"}[r.IntN(3)]
	nics := 1 + r.IntN(2)
	dc := 1 + i%3
	var gw string
	for n := 0; n < nics; n++ {
		name := fmt.Sprintf("%s%d", nicName, n)
		switch nicName {
		case "ens":
			name = fmt.Sprintf("ens%d", 3+n*2)
		case "enp":
			name = fmt.Sprintf("enp%ds0f%d", 1+r.IntN(4), n)
		}
		mac, m := macAddr(r, oui)
		subnet := 10 + n
		ip4 := netip.AddrFrom4([4]byte{10, byte(dc*16 + subnet), byte(i >> 8), byte(i)})
		ll := linkLocal(m)
		iface := facts.Interface{Index: 2 + n, MAC: mac, MTU: []int{1500, 9001, 9000}[r.IntN(3)], Up: true, Running: true,
			Flags: []string{"up", "broadcast", "multicast", "running"},
			IPv4:  []string{ip4.String() + "/16"}, IPv6: []string{ll.String() + "/64"}}
		addrs = append(addrs, ip4.String())
		if r.IntN(3) == 0 {
			g := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(dc), 0, byte(subnet), 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
			iface.IPv6 = append([]string{g.String() + "/64"}, iface.IPv6...)
			addrs = append(addrs, g.String())
		}
		addrs = append(addrs, ll.String())
		f.Network.Interfaces[name] = iface
		if n == 0 {
			f.Network.DefaultInterface = name
			gw = netip.AddrFrom4([4]byte{10, byte(dc*16 + subnet), 0, 1}).String()
		}
	}
	if r.IntN(10) < 3 {
		mac, m := macAddr(r, [3]byte{0x02, 0x42, byte(r.IntN(256))})
		ll := linkLocal(m)
		f.Network.Interfaces["docker0"] = facts.Interface{Index: 10, MAC: mac, MTU: 1500, Up: true, Running: r.IntN(2) == 0,
			Flags: []string{"up", "broadcast", "multicast"}, IPv4: []string{"172.17.0.1/16"}, IPv6: []string{ll.String() + "/64"}}
		addrs = append(addrs, "172.17.0.1", ll.String())
		for v := 0; v < r.IntN(6); v++ {
			mac, m := macAddr(r, [3]byte{byte(r.IntN(64)) << 2, byte(r.IntN(256)), byte(r.IntN(256))})
			ll := linkLocal(m)
			f.Network.Interfaces["veth"+hexStr(r, 7)] = facts.Interface{Index: 12 + v, MAC: mac, MTU: 1500, Up: true, Running: true,
				Flags: []string{"up", "broadcast", "multicast", "running"}, IPv4: []string{}, IPv6: []string{ll.String() + "/64"}}
			addrs = append(addrs, ll.String())
		}
	}
	f.Network.Addresses = addrs
	f.Network.DefaultGateway = gw

	// Host and virtualization.
	uptime := int64(r.IntN(400 * 86400))
	host, _, _ := strings.Cut(id, ".")
	f.Host = facts.Host{Hostname: host, FQDN: id, MachineID: hexStr(r, 32),
		BootTime: now.Add(-time.Duration(uptime) * time.Second).UTC().Truncate(time.Second).Format(time.RFC3339), UptimeSeconds: uptime}
	switch {
	case cpu.hyper == "none":
		f.Virtualization = facts.Virtualization{Role: "host", Type: "none", Container: "none", Hypervisor: "none"}
	default:
		f.Virtualization = facts.Virtualization{Role: "guest", Type: cpu.hyper, Container: "none", Hypervisor: cpu.hyper}
	}
	return &f
}

// JSON is the fact document of simulated peel i exactly as the real agent
// encodes it ((*facts.Facts).JSON).
func JSON(i int, id string, now time.Time) []byte {
	b, err := Gen(i, id, now).JSON()
	if err != nil {
		panic(err)
	}
	return b
}
