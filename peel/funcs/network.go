package funcs

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"slices"
)

// The network functions read the host's interfaces as the kernel reports
// them now (net.Interfaces): what a basket entry publishes for its peers
// (`basket: {ipv4: network.ipv4}`, the HAProxy-backends case).

// Interface is one network interface in network.interfaces.
type Interface struct {
	Name   string   `json:"name"`
	Index  int      `json:"index"`
	MTU    int      `json:"mtu"`
	HWAddr string   `json:"hwaddr,omitempty"`
	Flags  []string `json:"flags"`
	// Addrs are the interface's addresses in CIDR form (10.0.0.5/24).
	Addrs []string `json:"addrs"`
}

type addrArgs struct {
	// Interface narrows the addresses to one interface ("" every one).
	Interface string `json:"interface"`
	// Loopback includes loopback addresses (127.0.0.1, ::1), left out by
	// default, as Salt's network.ip_addrs does.
	Loopback bool `json:"loopback"`
}

func networkIPv4(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	return ipAddrs(args, func(a netip.Addr) bool { return a.Is4() || a.Is4In6() })
}

func networkIPv6(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	return ipAddrs(args, func(a netip.Addr) bool { return a.Is6() && !a.Is4In6() })
}

// ipAddrs lists the sorted, unique addresses of family keep, without
// link-local ones (they are not reachable from other hosts).
func ipAddrs(args json.RawMessage, keep func(netip.Addr) bool) (any, error) {
	var a addrArgs
	if err := decodeArgs(args, &a, "interface"); err != nil {
		return nil, err
	}
	ifs, err := interfaces(a.Interface)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, ifc := range ifs {
		for _, p := range ifc.prefixes {
			ip := p.Addr()
			if !keep(ip) || ip.IsLinkLocalUnicast() || !a.Loopback && ip.IsLoopback() {
				continue
			}
			out = append(out, ip.Unmap().String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func networkInterfaces(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a noArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	ifs, err := interfaces("")
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(ifs))
	for _, ifc := range ifs {
		i := Interface{Name: ifc.Name, Index: ifc.Index, MTU: ifc.MTU, HWAddr: ifc.HardwareAddr.String(), Flags: []string{}, Addrs: []string{}}
		for _, f := range []net.Flags{net.FlagUp, net.FlagBroadcast, net.FlagLoopback, net.FlagPointToPoint, net.FlagMulticast, net.FlagRunning} {
			if ifc.Flags&f != 0 {
				i.Flags = append(i.Flags, f.String())
			}
		}
		for _, p := range ifc.prefixes {
			i.Addrs = append(i.Addrs, p.String())
		}
		out = append(out, i)
	}
	return out, nil
}

type iface struct {
	net.Interface
	prefixes []netip.Prefix
}

// interfaces reads the host's interfaces (only the one called name, when
// name is not empty: an unknown name is an error naming the ones there are).
func interfaces(name string) ([]iface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, errorf(CodeFailed, "list network interfaces: %v", err)
	}
	var out []iface
	var known []string
	for _, ni := range all {
		known = append(known, ni.Name)
		if name != "" && ni.Name != name {
			continue
		}
		addrs, err := ni.Addrs()
		if err != nil {
			return nil, errorf(CodeFailed, "addresses of interface %s: %v", ni.Name, err)
		}
		ifc := iface{Interface: ni}
		for _, ad := range addrs {
			ipn, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			ifc.prefixes = append(ifc.prefixes, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, ifc)
	}
	if name != "" && len(out) == 0 {
		return nil, badArgs("argument \"interface\": no interface %q on this host (there are: %v)", name, known)
	}
	return out, nil
}
