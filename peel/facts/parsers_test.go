package facts

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func openFixture(t testing.TB, name string) *os.File {
	t.Helper()
	fh, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	return fh
}

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		file string
		want OS
		raw  map[string]string // extra raw variables to check
	}{
		{
			file: "os-release/debian12",
			want: OS{ID: "debian", Name: "Debian GNU/Linux", Version: "12 (bookworm)", VersionID: "12",
				PrettyName: "Debian GNU/Linux 12 (bookworm)", IDLike: []string{}, Codename: "bookworm"},
			raw: map[string]string{"HOME_URL": "https://www.debian.org/"},
		},
		{
			file: "os-release/ubuntu2204",
			want: OS{ID: "ubuntu", Name: "Ubuntu", Version: "22.04.4 LTS (Jammy Jellyfish)", VersionID: "22.04",
				PrettyName: "Ubuntu 22.04.4 LTS", IDLike: []string{"debian"}, Codename: "jammy"},
		},
		{
			file: "os-release/rhel9",
			want: OS{ID: "rhel", Name: "Red Hat Enterprise Linux", Version: "9.3 (Plow)", VersionID: "9.3",
				PrettyName: "Red Hat Enterprise Linux 9.3 (Plow)", IDLike: []string{"fedora"}},
			raw: map[string]string{"CPE_NAME": "cpe:/o:redhat:enterprise_linux:9::baseos"},
		},
		{
			file: "os-release/rocky8",
			want: OS{ID: "rocky", Name: "Rocky Linux", Version: "8.9 (Green Obsidian)", VersionID: "8.9",
				PrettyName: "Rocky Linux 8.9 (Green Obsidian)", IDLike: []string{"rhel", "centos", "fedora"}},
		},
		{
			file: "os-release/alpine",
			want: OS{ID: "alpine", Name: "Alpine Linux", VersionID: "3.19.1", PrettyName: "Alpine Linux v3.19", IDLike: []string{}},
		},
		{
			file: "os-release/quirky",
			want: OS{
				ID:         "unquoted with escaped spaces",
				Name:       "Single Quoted $NAME",
				Version:    "1.0",
				VersionID:  "1.0",
				PrettyName: "Escapes \"quoted\" \\ $HOME `tick`",
				IDLike:     []string{"spaced", "list"},
			},
			raw: map[string]string{"EMPTY": "", "CONCAT": "abcdef"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			kv, err := parseOSRelease(openFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := osFromRelease(kv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("os = %#v\nwant %#v", got, tt.want)
			}
			for k, v := range tt.raw {
				if got, ok := kv[k]; !ok || got != v {
					t.Errorf("%s = %q (present %v), want %q", k, got, ok, v)
				}
			}
			for k := range kv {
				if !isShellIdent(k) {
					t.Errorf("invalid key %q parsed", k)
				}
			}
		})
	}
}

func TestParseOSReleaseRejects(t *testing.T) {
	kv, err := parseOSRelease(openFixture(t, "os-release/quirky"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"1BAD", "", "VERSION_CODENAME", "not a valid line"} {
		if _, ok := kv[k]; ok {
			t.Errorf("key %q should have been rejected", k)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	const k = 1024
	tests := []struct {
		file string
		want Memory
	}{
		{"meminfo/modern", Memory{
			TotalBytes: 16318412 * k, AvailableBytes: 10802320 * k, FreeBytes: 1235508 * k,
			SwapTotalBytes: 2097148 * k, SwapFreeBytes: 2071292 * k,
		}},
		{"meminfo/old-kernel", Memory{ // no MemAvailable: free+buffers+cached
			TotalBytes: 2049932 * k, AvailableBytes: (102400 + 51200 + 409600) * k, FreeBytes: 102400 * k,
		}},
		{"meminfo/garbage", Memory{AvailableBytes: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			kv, err := parseMeminfo(openFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := memoryFromMeminfo(kv); got != tt.want {
				t.Errorf("memory = %+v\nwant %+v", got, tt.want)
			}
		})
	}

	kv, _ := parseMeminfo(openFixture(t, "meminfo/modern"))
	if kv["HugePages_Total"] != 0 || kv["Hugepagesize"] != 2048*k {
		t.Errorf("unit handling: HugePages_Total=%d Hugepagesize=%d", kv["HugePages_Total"], kv["Hugepagesize"])
	}
	kv, _ = parseMeminfo(openFixture(t, "meminfo/garbage"))
	if _, ok := kv["SwapTotal"]; ok {
		t.Error("overflowing kB value should be skipped")
	}
}

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		file     string
		model    string
		vendor   string
		count    int
		cores    int
		sockets  int
		hasFlag  string
		noFlag   string
		numFlags int
	}{
		{"cpuinfo/xeon-2s", "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "GenuineIntel", 8, 4, 2, "avx512f", "hypervisor", 37},
		{"cpuinfo/amd-vm", "AMD EPYC", "AuthenticAMD", 2, 2, 1, "hypervisor", "", -1},
		{"cpuinfo/arm64-graviton", "Neoverse-N1", "ARM", 4, 0, 0, "asimd", "hypervisor", 17},
		{"cpuinfo/rpi-armv7", "ARMv7 Processor rev 4 (v7l)", "ARM", 2, 0, 0, "neon", "", -1},
		{"cpuinfo/power9", "POWER9 (architected), altivec supported", "", 2, 0, 0, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseCPUInfo(openFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != tt.model || got.Vendor != tt.vendor || got.Count != tt.count ||
				got.Cores != tt.cores || got.Sockets != tt.sockets {
				t.Errorf("got model=%q vendor=%q count=%d cores=%d sockets=%d\nwant model=%q vendor=%q count=%d cores=%d sockets=%d",
					got.Model, got.Vendor, got.Count, got.Cores, got.Sockets,
					tt.model, tt.vendor, tt.count, tt.cores, tt.sockets)
			}
			if tt.hasFlag != "" && !slices.Contains(got.Flags, tt.hasFlag) {
				t.Errorf("flags %v lack %q", got.Flags, tt.hasFlag)
			}
			if tt.noFlag != "" && slices.Contains(got.Flags, tt.noFlag) {
				t.Errorf("flags %v contain %q", got.Flags, tt.noFlag)
			}
			if tt.numFlags >= 0 && len(got.Flags) != tt.numFlags {
				t.Errorf("%d flags, want %d", len(got.Flags), tt.numFlags)
			}
		})
	}
}

func TestCountCPUList(t *testing.T) {
	tests := map[string]int{
		"0-7": 8, "0-3,8,10-11": 7, "0": 1, "0\n": 1, "": 0, "a": 0, "3-1": 0, "0-": 0, "-1": 0, "0,,2": 2,
	}
	for in, want := range tests {
		if got := countCPUList(in); got != want {
			t.Errorf("countCPUList(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestParseMounts(t *testing.T) {
	all, err := parseMounts(openFixture(t, "mounts/host"))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 28 {
		t.Errorf("parsed %d mounts, want 28 (the truncated line is skipped)", len(all))
	}
	byPoint := map[string]Mount{}
	for _, m := range all {
		byPoint[m.MountPoint] = m
	}
	if m := byPoint["/srv/my data"]; m.Device != "/dev/mapper/vg-data" || m.FSType != "xfs" || m.ReadOnly {
		t.Errorf("escaped space mount = %+v", m)
	}
	if m, ok := byPoint["/mnt/tab\tand\nnewline\\back"]; !ok || !m.ReadOnly {
		t.Errorf("escaped tab/newline/backslash mount missing or not read-only: %+v", m)
	}
	if m := byPoint["/"]; m.Device != "/dev/nvme0n1p2" || m.FSType != "ext4" ||
		!reflect.DeepEqual(m.Options, []string{"rw", "relatime", "errors=remount-ro"}) {
		t.Errorf("root mount = %+v", m)
	}

	tests := []struct {
		file         string
		includeTmpfs bool
		want         []string
	}{
		{"mounts/host", false, []string{"/", "/boot/efi", "/home", "/mnt/over", "/mnt/tab\tand\nnewline\\back", "/snap/core22/1122", "/srv/my data"}},
		{"mounts/host", true, []string{"/", "/boot/efi", "/dev/shm", "/home", "/mnt/over", "/mnt/tab\tand\nnewline\\back", "/run", "/run/user/1000", "/snap/core22/1122", "/srv/my data"}},
		{"mounts/docker", false, []string{"/", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}},
		{"mounts/docker", true, []string{"/", "/dev", "/dev/shm", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc/acpi", "/proc/kcore"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			all, err := parseMounts(openFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			kept := filterMounts(all, tt.includeTmpfs)
			got := slices.Sorted(func(yield func(string) bool) {
				for k := range kept {
					if !yield(k) {
						return
					}
				}
			})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("includeTmpfs=%v kept %q\nwant %q", tt.includeTmpfs, got, tt.want)
			}
		})
	}

	// The last of two mounts on the same point is the visible one.
	kept := filterMounts(all, false)
	if m := kept["/mnt/over"]; m.FSType != "btrfs" || m.Device != "/dev/sdd1" {
		t.Errorf("over-mounted point = %+v, want the btrfs one", m)
	}
}

func TestUnescapeMountField(t *testing.T) {
	tests := map[string]string{
		`plain`:        "plain",
		`a\040b`:       "a b",
		`\011\012`:     "\t\n",
		`back\134`:     `back\`,
		`bad\9`:        `bad\9`,
		`short\04`:     `short\04`,
		`big\400`:      `big\400`,
		`\\040`:        `\ `,
		`trailing\`:    `trailing\`,
		`x\1341\0401y`: `x\1 1y`,
	}
	for in, want := range tests {
		if got := unescapeMountField(in); got != want {
			t.Errorf("unescapeMountField(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	tests := map[string]int64{
		"proc-stat/linux":     1700000000,
		"proc-stat/bad-btime": 0,
	}
	for file, want := range tests {
		st, err := parseProcStat(openFixture(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if st.BootTime != want {
			t.Errorf("%s: btime = %d, want %d", file, st.BootTime, want)
		}
	}
}

func TestParseUptime(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"12345.67 40000.00\n", 12345.67, false},
		{"0.01 0.00", 0.01, false},
		{"", 0, true},
		{"abc 1", 0, true},
		{"-5 1", 0, true},
		{"NaN 1", 0, true},
		{"+Inf 1", 0, true},
		{"1e300 1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseUptime(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseUptime(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFQDNFromHosts(t *testing.T) {
	tests := []struct {
		file, hostname, want string
	}{
		{"hosts/debian", "web1", "web1.example.com"},
		{"hosts/debian", "WEB1", "web1.example.com"},
		{"hosts/debian", "web2", ""},
		{"hosts/debian", "localhost", ""},
		{"hosts/alias-order", "web1", "web1.corp.example.net"},
		{"hosts/none", "web1", ""},
		{"hosts/none", "3f4e5d6c7b8a", ""},
	}
	for _, tt := range tests {
		got, err := fqdnFromHosts(openFixture(t, tt.file), tt.hostname)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%s %q: fqdn = %q, want %q", tt.file, tt.hostname, got, tt.want)
		}
	}
}

func TestExtendsHostname(t *testing.T) {
	tests := []struct {
		name, host string
		want       bool
	}{
		{"web1.example.com", "web1", true},
		{"WEB1.example.com", "web1", true},
		{"web1", "web1", false},
		{"web1.", "web1", false},
		{"web10.example.com", "web1", false},
		{"web1.example.com.", "web1", false},
		{"localhost.localdomain", "web1", false},
	}
	for _, tt := range tests {
		if got := extendsHostname(tt.name, tt.host); got != tt.want {
			t.Errorf("extendsHostname(%q, %q) = %v, want %v", tt.name, tt.host, got, tt.want)
		}
	}
}

func TestParseDefaultRoute(t *testing.T) {
	tests := []struct {
		file, iface, gw string
	}{
		{"route/default", "eth0", "10.0.0.1"}, // lowest metric wins over eth1
		{"route/no-default", "", ""},
		{"route/down-default", "ppp0", ""}, // wg0's route is not up; ppp0 has no gateway
	}
	for _, tt := range tests {
		// The fixtures were produced on a little-endian host.
		iface, gw, err := parseDefaultRoute(openFixture(t, tt.file), binary.LittleEndian)
		if err != nil {
			t.Fatal(err)
		}
		if iface != tt.iface || gw != tt.gw {
			t.Errorf("%s: default = %q via %q, want %q via %q", tt.file, iface, gw, tt.iface, tt.gw)
		}
	}
}
