package facts

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTree creates files (path → content) below a fresh temporary root.
// A path ending in "/" creates a directory; content "->target" a symlink.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func fixtureCollector(root string) *collector {
	return &collector{root: root, opts: Options{FQDNTimeout: -1, StatfsTimeout: DefaultStatfsTimeout}}
}

func TestDetectVirtualization(t *testing.T) {
	const (
		dmi   = "sys/class/dmi/id/"
		clock = "sys/devices/system/clocksource/clocksource0/available_clocksource"
	)
	hv := []string{"fpu", "hypervisor", "sse"}
	tests := []struct {
		name  string
		files map[string]string
		flags []string
		want  Virtualization
	}{
		{"bare metal", map[string]string{dmi + "sys_vendor": "Dell Inc.\n", dmi + "product_name": "PowerEdge R640\n", "proc/1/cgroup": "0::/init.scope\n"},
			nil, virt("host", "none", "none", "none")},
		{"empty root", nil, nil, virt("host", "none", "none", "none")},
		{"kvm", map[string]string{dmi + "sys_vendor": "QEMU\n", dmi + "product_name": "Standard PC (Q35 + ICH9, 2009)\n", clock: "kvm-clock tsc hpet acpi_pm \n"},
			hv, virt("guest", "kvm", "none", "kvm")},
		{"qemu tcg", map[string]string{dmi + "sys_vendor": "QEMU\n", dmi + "product_name": "Standard PC (i440FX + PIIX, 1996)\n", clock: "tsc hpet acpi_pm \n"},
			hv, virt("guest", "qemu", "none", "qemu")},
		{"kvm product", map[string]string{dmi + "product_name": "KVM\n", dmi + "sys_vendor": "Red Hat\n"},
			hv, virt("guest", "kvm", "none", "kvm")},
		{"vmware", map[string]string{dmi + "product_name": "VMware Virtual Platform\n", dmi + "sys_vendor": "VMware, Inc.\n"},
			hv, virt("guest", "vmware", "none", "vmware")},
		{"hyper-v", map[string]string{dmi + "product_name": "Virtual Machine\n", dmi + "sys_vendor": "Microsoft Corporation\n"},
			hv, virt("guest", "microsoft", "none", "microsoft")},
		{"surface laptop", map[string]string{dmi + "product_name": "Surface Laptop 5\n", dmi + "sys_vendor": "Microsoft Corporation\n"},
			nil, virt("host", "none", "none", "none")},
		{"ec2", map[string]string{dmi + "product_name": "m5.large\n", dmi + "sys_vendor": "Amazon EC2\n"},
			hv, virt("guest", "amazon", "none", "amazon")},
		{"virtualbox", map[string]string{dmi + "product_name": "VirtualBox\n", dmi + "sys_vendor": "innotek GmbH\n"},
			hv, virt("guest", "oracle", "none", "oracle")},
		{"gce", map[string]string{dmi + "product_name": "Google Compute Engine\n", dmi + "sys_vendor": "Google\n"},
			hv, virt("guest", "google", "none", "google")},
		{"xen domU", map[string]string{"sys/hypervisor/type": "xen\n"},
			nil, virt("guest", "xen", "none", "xen")},
		{"xen dom0", map[string]string{"sys/hypervisor/type": "xen\n", "proc/xen/capabilities": "control_d\n"},
			nil, virt("host", "none", "none", "none")},
		{"hypervisor flag only", nil, hv, virt("guest", "unknown", "none", "unknown")},
		{"hyper-v clocksource", map[string]string{clock: "tsc hyperv_clocksource_tsc_page acpi_pm\n"},
			hv, virt("guest", "microsoft", "none", "microsoft")},
		{"docker on kvm", map[string]string{".dockerenv": "", clock: "tsc kvm-clock \n", "proc/1/cgroup": "0::/\n"},
			hv, virt("guest", "docker", "docker", "kvm")},
		{"podman", map[string]string{"run/.containerenv": "engine=\"podman-4.9\"\n"},
			nil, virt("guest", "podman", "podman", "none")},
		{"systemd-nspawn", map[string]string{"run/systemd/container": "systemd-nspawn\n"},
			nil, virt("guest", "systemd-nspawn", "systemd-nspawn", "none")},
		{"lxc via environ", map[string]string{"proc/1/environ": "PATH=/bin\x00container=lxc\x00TERM=xterm\x00"},
			nil, virt("guest", "lxc", "lxc", "none")},
		{"kubernetes via cgroup", map[string]string{"proc/1/cgroup": "12:pids:/kubepods/besteffort/pod1234/abcdef\n0::/\n"},
			nil, virt("guest", "kubernetes", "kubernetes", "none")},
		{"kubernetes via service account", map[string]string{"var/run/secrets/kubernetes.io/serviceaccount/token": "x", ".dockerenv": ""},
			nil, virt("guest", "kubernetes", "kubernetes", "none")},
		{"docker via cgroup v1", map[string]string{"proc/1/cgroup": "1:name=systemd:/docker/0123456789abcdef\n"},
			nil, virt("guest", "docker", "docker", "none")},
		{"openvz", map[string]string{"proc/vz/": ""},
			nil, virt("guest", "openvz", "openvz", "none")},
		{"openvz host", map[string]string{"proc/vz/": "", "proc/bc/": ""},
			nil, virt("host", "none", "none", "none")},
		{"wsl2", map[string]string{"proc/sys/kernel/osrelease": "5.15.153.1-microsoft-standard-WSL2\n"},
			hv, virt("guest", "wsl", "wsl", "unknown")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fixtureCollector(writeTree(t, tt.files))
			if got := c.virtualization(tt.flags); got != tt.want {
				t.Errorf("virtualization = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDisks(t *testing.T) {
	const (
		sda  = "sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/"
		nvme = "sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1/"
		usb  = "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/host6/target6:0:0/6:0:0:0/block/sdb/"
		vda  = "sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/"
		cc   = "sys/devices/pci0000:00/0000:00:03.0/cciss0/c0d0/block/cciss!c0d0/"
		virt = "sys/devices/virtual/block/"
	)
	files := map[string]string{
		sda + "size": "3907029168\n", sda + "queue/rotational": "1\n", sda + "removable": "0\n", sda + "ro": "0\n",
		sda + "device/model": "ST2000NM0055-1V4\n", sda + "device/vendor": "ATA     \n",
		nvme + "size": "1000215216\n", nvme + "queue/rotational": "0\n", nvme + "removable": "0\n", nvme + "ro": "0\n",
		nvme + "device/model": "Samsung SSD 980 PRO 1TB                 \n", nvme + "device/serial": "S5GXNX0R123456A     \n",
		usb + "size": "0\n", usb + "queue/rotational": "1\n", usb + "removable": "1\n", usb + "device/model": "SD/MMC Reader\n",
		vda + "size": "536870912\n", vda + "queue/rotational": "1\n", vda + "serial": "vol-0abc\n", vda + "device/vendor": "0x1af4\n",
		cc + "size":         "1024\n",
		virt + "loop0/size": "0\n", virt + "loop1/size": "129024\n", virt + "loop1/ro": "1\n",
		virt + "dm-0/size": "209715200\n", virt + "dm-0/queue/rotational": "0\n", virt + "zram0/size": "0\n",
		"sys/block/sda":          "->../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda",
		"sys/block/nvme0n1":      "->../devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1",
		"sys/block/sdb":          "->../devices/pci0000:00/0000:00:14.0/usb1/1-1/host6/target6:0:0/6:0:0:0/block/sdb",
		"sys/block/vda":          "->../devices/pci0000:00/0000:00:04.0/virtio1/block/vda",
		"sys/block/cciss!c0d0":   "->../devices/pci0000:00/0000:00:03.0/cciss0/c0d0/block/cciss!c0d0",
		"sys/block/loop0":        "->../devices/virtual/block/loop0",
		"sys/block/loop1":        "->../devices/virtual/block/loop1",
		"sys/block/dm-0":         "->../devices/virtual/block/dm-0",
		"sys/block/zram0":        "->../devices/virtual/block/zram0",
		"sys/block/broken":       "->../devices/virtual/block/nonexistent",
		"sys/block/sdz/holders/": "", // no size file: skipped
	}
	got := fixtureCollector(writeTree(t, files)).disks()
	want := map[string]Disk{
		"sda":        {SizeBytes: 3907029168 * 512, Rotational: true, Model: "ST2000NM0055-1V4", Vendor: "ATA"},
		"nvme0n1":    {SizeBytes: 1000215216 * 512, Model: "Samsung SSD 980 PRO 1TB", Serial: "S5GXNX0R123456A"},
		"sdb":        {Rotational: true, Removable: true, Model: "SD/MMC Reader"},
		"vda":        {SizeBytes: 536870912 * 512, Rotational: true, Serial: "vol-0abc"},
		"cciss/c0d0": {SizeBytes: 1024 * 512},
		"loop1":      {SizeBytes: 129024 * 512, ReadOnly: true, Virtual: true},
		"dm-0":       {SizeBytes: 209715200 * 512, Virtual: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("disks =\n%+v\nwant\n%+v", got, want)
	}
}

// TestCollectFixtureRoot runs every file based source against the fixture
// tree in testdata/root (syscalls, statfs and net.Interfaces are not used
// below a fixture root).
func TestCollectFixtureRoot(t *testing.T) {
	c := fixtureCollector(filepath.Join("testdata", "root"))
	f := c.collect(context.Background())

	if want := (OS{ID: "ubuntu", Name: "Ubuntu", Version: "22.04.4 LTS (Jammy Jellyfish)", VersionID: "22.04",
		PrettyName: "Ubuntu 22.04.4 LTS", IDLike: []string{"debian"}, Codename: "jammy", GoArch: runtime.GOARCH}); !reflect.DeepEqual(f.OS, want) {
		t.Errorf("os = %+v\nwant %+v", f.OS, want)
	}
	if f.Kernel.Release != "6.8.0-31-generic" {
		t.Errorf("kernel = %+v", f.Kernel)
	}
	if f.CPU.Count != 8 || f.CPU.Cores != 4 || f.CPU.Sockets != 2 || f.CPU.Vendor != "GenuineIntel" {
		t.Errorf("cpu = %+v", f.CPU)
	}
	if f.Memory.TotalBytes != 16318412*1024 || f.Memory.AvailableBytes != 10802320*1024 || f.Memory.SwapTotalBytes != 2097148*1024 {
		t.Errorf("memory = %+v", f.Memory)
	}
	if len(f.Disks) != 0 {
		t.Errorf("disks = %+v, want none (no sys/block in fixture)", f.Disks)
	}
	if len(f.Mounts) != 7 || f.Mounts["/"].Device != "/dev/nvme0n1p2" || f.Mounts["/home"].FSType != "nfs4" {
		t.Errorf("mounts = %+v", f.Mounts)
	}
	wantHost := Host{Hostname: "web1", FQDN: "web1.example.com", MachineID: "0123456789abcdef0123456789abcdef",
		BootTime: "2023-11-14T22:13:20Z", UptimeSeconds: 12345}
	if f.Host != wantHost {
		t.Errorf("host = %+v\nwant %+v", f.Host, wantHost)
	}
	if f.Network.DefaultInterface != "eth0" {
		t.Errorf("default interface = %q", f.Network.DefaultInterface)
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 && f.Network.DefaultGateway != "10.0.0.1" {
		t.Errorf("default gateway = %q", f.Network.DefaultGateway)
	}
	if want := (virt("host", "none", "none", "none")); f.Virtualization != want {
		t.Errorf("virtualization = %+v", f.Virtualization)
	}
	if f.Schema != SchemaVersion || f.CollectedAt.IsZero() || f.CollectedAt.Location() != time.UTC {
		t.Errorf("schema=%d collected_at=%v", f.Schema, f.CollectedAt)
	}
	if c.sourcesRead() == 0 {
		t.Error("no source counted as read")
	}
}

// TestCollectEmptyRoot checks that missing sources give empty fields, not
// panics, and that nothing read means a total failure.
func TestCollectEmptyRoot(t *testing.T) {
	c := fixtureCollector(t.TempDir())
	f := c.collect(context.Background())
	if c.sourcesRead() != 0 {
		t.Errorf("%d sources read from an empty root", c.sourcesRead())
	}
	if f.CPU.Count != runtime.NumCPU() {
		t.Errorf("cpu count fallback = %d, want runtime.NumCPU() = %d", f.CPU.Count, runtime.NumCPU())
	}
	if f.Host.BootTime != "" || f.Host.UptimeSeconds != 0 || f.Memory.TotalBytes != 0 {
		t.Errorf("unexpected values from empty root: %+v %+v", f.Host, f.Memory)
	}
	m, err := f.Map()
	if err != nil {
		t.Fatal(err)
	}
	// Lists are [] rather than null even when empty.
	for _, path := range [][]string{{"os", "id_like"}, {"cpu", "flags"}, {"network", "addresses"}} {
		v := lookup(m, path...)
		if _, ok := v.([]any); !ok {
			t.Errorf("%s = %#v, want an empty list", strings.Join(path, ":"), v)
		}
	}
}

// lookup walks a Map() result like the targeting language does.
func lookup(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// TestCollectRealHost asserts facts that are true of whatever Linux machine
// runs the test.
func TestCollectRealHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("facts are collected from Linux interfaces")
	}
	start := time.Now()
	f, err := Collect(context.Background())
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// A figure, not an assertion (it takes well under 100 ms on an idle
	// machine); 30 s only catches a hang, e.g. a statfs that never returns.
	t.Logf("Collect took %v", elapsed)
	if elapsed > 30*time.Second {
		t.Errorf("Collect took %v: something hangs", elapsed)
	}

	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if f.Host.Hostname != hostname {
		t.Errorf("hostname = %q, want %q", f.Host.Hostname, hostname)
	}
	if f.Host.FQDN == "" || !strings.HasPrefix(strings.ToLower(f.Host.FQDN), strings.ToLower(hostname)) {
		t.Errorf("fqdn = %q for hostname %q", f.Host.FQDN, hostname)
	}
	if f.CPU.Count <= 0 || f.CPU.Count < runtime.NumCPU() {
		t.Errorf("cpu count = %d, runtime.NumCPU() = %d", f.CPU.Count, runtime.NumCPU())
	}
	if f.Memory.TotalBytes == 0 || f.Memory.AvailableBytes > f.Memory.TotalBytes {
		t.Errorf("memory = %+v", f.Memory)
	}
	if f.Kernel.Name != "Linux" || f.Kernel.Release == "" || f.OS.Arch == "" || f.OS.GoArch != runtime.GOARCH {
		t.Errorf("kernel = %+v, arch = %q/%q", f.Kernel, f.OS.Arch, f.OS.GoArch)
	}
	if want, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil && strings.TrimSpace(string(want)) != f.Kernel.Release {
		t.Errorf("kernel release = %q, /proc says %q", f.Kernel.Release, strings.TrimSpace(string(want)))
	}

	var loopback bool
	for name, ifc := range f.Network.Interfaces {
		if ifc.Loopback && slices.Contains(ifc.IPv4, "127.0.0.1/8") {
			loopback = true
			if !ifc.Up {
				t.Errorf("loopback %s is not up", name)
			}
		}
		if ifc.IPv4 == nil || ifc.IPv6 == nil {
			t.Errorf("interface %s has nil address lists", name)
		}
	}
	if !loopback {
		t.Errorf("no loopback interface with 127.0.0.1/8 among %+v", f.Network.Interfaces)
	}
	if !slices.Contains(f.Network.Addresses, "127.0.0.1") {
		t.Errorf("addresses %v lack 127.0.0.1", f.Network.Addresses)
	}
	for _, a := range f.Network.Addresses {
		if strings.Contains(a, "/") {
			t.Errorf("address %q carries a prefix length", a)
		}
	}

	boot, err := time.Parse(time.RFC3339, f.Host.BootTime)
	if err != nil {
		t.Fatalf("boot_time %q: %v", f.Host.BootTime, err)
	}
	if !boot.Before(time.Now()) || boot.Year() < 2000 || !strings.HasSuffix(f.Host.BootTime, "Z") {
		t.Errorf("boot_time = %q", f.Host.BootTime)
	}
	if f.Host.UptimeSeconds < 0 {
		t.Errorf("uptime = %d", f.Host.UptimeSeconds)
	}
	if id, err := os.ReadFile("/etc/machine-id"); err == nil && len(strings.TrimSpace(string(id))) == 32 && f.Host.MachineID != strings.TrimSpace(string(id)) {
		t.Errorf("machine_id = %q, /etc/machine-id says %q", f.Host.MachineID, strings.TrimSpace(string(id)))
	}
	if root, ok := f.Mounts["/"]; ok && root.SizeBytes > 0 && root.UsedBytes > root.SizeBytes {
		t.Errorf("root mount = %+v", root)
	}
	if f.Virtualization.Role != "guest" && f.Virtualization.Role != "host" {
		t.Errorf("virtualization = %+v", f.Virtualization)
	}
	if f.Schema != SchemaVersion || time.Since(f.CollectedAt) > time.Minute {
		t.Errorf("schema = %d, collected_at = %v", f.Schema, f.CollectedAt)
	}

	if testing.Verbose() {
		b, _ := json.MarshalIndent(f, "", "  ")
		t.Logf("facts:\n%s", b)
	}
}

func TestMapKeys(t *testing.T) {
	f, err := Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.Map()
	if err != nil {
		t.Fatal(err)
	}
	wantTop := []string{"collected_at", "cpu", "disks", "host", "kernel", "memory", "mounts", "network", "os", "schema", "virtualization"}
	var gotTop []string
	for k := range m {
		gotTop = append(gotTop, k)
	}
	slices.Sort(gotTop)
	if !reflect.DeepEqual(gotTop, wantTop) {
		t.Errorf("top level keys = %v\nwant %v", gotTop, wantTop)
	}

	wantKeys := map[string][]string{
		"os":             {"id", "name", "version", "version_id", "pretty_name", "id_like", "arch"},
		"kernel":         {"release", "version"},
		"cpu":            {"model", "count", "cores", "sockets"},
		"memory":         {"total_bytes", "available_bytes", "swap_total_bytes"},
		"network":        {"interfaces", "addresses"},
		"host":           {"hostname", "fqdn", "machine_id", "boot_time", "uptime_seconds"},
		"virtualization": {"role", "type"},
	}
	for section, keys := range wantKeys {
		sm, ok := m[section].(map[string]any)
		if !ok {
			t.Errorf("%s is %T, want an object", section, m[section])
			continue
		}
		for _, k := range keys {
			if _, ok := sm[k]; !ok {
				t.Errorf("missing key %s:%s", section, k)
			}
		}
	}

	if got := lookup(m, "host", "hostname"); got != f.Host.Hostname {
		t.Errorf("host:hostname = %v", got)
	}
	if got := lookup(m, "schema"); got != float64(SchemaVersion) {
		t.Errorf("schema = %#v", got)
	}
	for name := range f.Network.Interfaces {
		ifc, ok := lookup(m, "network", "interfaces", name).(map[string]any)
		if !ok {
			t.Errorf("network:interfaces:%s missing", name)
			continue
		}
		for _, k := range []string{"mac", "mtu", "up", "loopback", "ipv4", "ipv6"} {
			if _, ok := ifc[k]; !ok {
				t.Errorf("missing key network:interfaces:%s:%s", name, k)
			}
		}
		if _, ok := ifc["ipv4"].([]any); !ok {
			t.Errorf("network:interfaces:%s:ipv4 = %#v, want a list", name, ifc["ipv4"])
		}
	}

	var nilFacts *Facts
	if _, err := nilFacts.Map(); err == nil {
		t.Error("Map on nil Facts should fail")
	}
}

func TestCollectCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f, err := Collect(ctx); err == nil || f != nil {
		t.Errorf("Collect with a cancelled context = %v, %v; want an error", f, err)
	}
}

func TestCollectIncludeTmpfs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	all, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Skip(err)
	}
	if !strings.Contains(string(all), " tmpfs ") {
		t.Skip("no tmpfs mounted here")
	}
	without, err := CollectWith(context.Background(), Options{FQDNTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	with, err := CollectWith(context.Background(), Options{FQDNTimeout: -1, IncludeTmpfs: true})
	if err != nil {
		t.Fatal(err)
	}
	count := func(f *Facts) (n int) {
		for _, m := range f.Mounts {
			if m.FSType == "tmpfs" {
				n++
			}
		}
		return n
	}
	if count(without) != 0 || count(with) == 0 {
		t.Errorf("tmpfs mounts: %d without IncludeTmpfs, %d with", count(without), count(with))
	}
}

func BenchmarkCollect(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		if _, err := Collect(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// virt is a Virtualization by its fields in order (the type lives in
// internal/facts, where unkeyed literals would be another package's).
func virt(role, typ, container, hypervisor string) Virtualization {
	return Virtualization{Role: role, Type: typ, Container: container, Hypervisor: hypervisor}
}
