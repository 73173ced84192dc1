package facts

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

func (c *collector) network() Network {
	n := Network{Interfaces: map[string]Interface{}, Addresses: []string{}}
	if c.root == "/" {
		ifaces, err := net.Interfaces()
		if err == nil {
			c.ok()
			// One address dump for all interfaces instead of one per
			// interface (which is quadratic on hosts with many veths).
			byIndex, addrErr := interfaceAddrs()
			seen := map[string]bool{}
			for _, ifc := range ifaces {
				var prefixes []netip.Prefix
				if addrErr == nil {
					prefixes = byIndex[ifc.Index]
				} else {
					prefixes = ifacePrefixes(ifc)
				}
				n.Interfaces[ifc.Name] = buildInterface(ifc, prefixes)
				for _, p := range prefixes {
					a := p.Addr().String()
					if !seen[a] {
						seen[a] = true
						n.Addresses = append(n.Addresses, a)
					}
				}
			}
		}
	}
	if fh, err := c.open("/proc/net/route"); err == nil {
		n.DefaultInterface, n.DefaultGateway, _ = parseDefaultRoute(fh, binary.NativeEndian)
		fh.Close()
	}
	return n
}

func buildInterface(ifc net.Interface, prefixes []netip.Prefix) Interface {
	out := Interface{
		Index:    ifc.Index,
		MAC:      ifc.HardwareAddr.String(),
		MTU:      ifc.MTU,
		Up:       ifc.Flags&net.FlagUp != 0,
		Running:  ifc.Flags&net.FlagRunning != 0,
		Loopback: ifc.Flags&net.FlagLoopback != 0,
		Flags:    []string{},
		IPv4:     []string{},
		IPv6:     []string{},
	}
	if ifc.Flags != 0 {
		out.Flags = strings.Split(ifc.Flags.String(), "|")
	}
	for _, p := range prefixes {
		if p.Addr().Is4() {
			out.IPv4 = append(out.IPv4, p.String())
		} else {
			out.IPv6 = append(out.IPv6, p.String())
		}
	}
	return out
}

// ifacePrefixes is the portable (per interface) way to get addresses.
func ifacePrefixes(ifc net.Interface) []netip.Prefix {
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if p, ok := prefixFromSlice(ipn.IP, maskBits(ipn.Mask)); ok {
			out = append(out, p)
		}
	}
	return out
}

func maskBits(m net.IPMask) int {
	ones, _ := m.Size()
	return ones
}

// prefixFromSlice builds a zone-less prefix keeping the host bits (so
// "10.0.0.5/24", not "10.0.0.0/24"). IPv4-mapped IPv6 addresses become IPv4.
func prefixFromSlice(ip []byte, bits int) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	if addr.Is4In6() {
		addr = addr.Unmap()
		if bits >= 96 {
			bits -= 96
		}
	}
	p := netip.PrefixFrom(addr.WithZone(""), bits)
	return p, p.IsValid()
}

// parseDefaultRoute parses /proc/net/route and returns the interface and
// gateway of the IPv4 default route with the lowest metric. The kernel
// prints addresses as host-order 32-bit hex numbers, so the byte order of
// the host that produced the file must be given.
func parseDefaultRoute(r io.Reader, order binary.ByteOrder) (iface, gateway string, err error) {
	const rtfUp = 0x1
	bestMetric := int64(-1)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.ParseInt(f[6], 10, 64)
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
			continue
		}
		if dst != 0 || mask != 0 || flags&rtfUp == 0 {
			continue
		}
		if bestMetric >= 0 && metric >= bestMetric {
			continue
		}
		bestMetric = metric
		iface = f[0]
		gateway = ""
		if gw != 0 {
			var b [4]byte
			order.PutUint32(b[:], uint32(gw))
			gateway = netip.AddrFrom4(b).String()
		}
	}
	return iface, gateway, sc.Err()
}
