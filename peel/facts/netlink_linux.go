//go:build linux

package facts

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
)

// interfaceAddrs dumps every interface address with a single
// RTM_GETADDR netlink request and groups them by interface index.
func interfaceAddrs() (map[int][]netip.Prefix, error) {
	tab, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_UNSPEC)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseNetlinkMessage(tab)
	if err != nil {
		return nil, err
	}
	out := map[int][]netip.Prefix{}
	for i := range msgs {
		m := &msgs[i]
		switch m.Header.Type {
		case syscall.NLMSG_DONE:
			return out, nil
		case syscall.NLMSG_ERROR:
			return nil, errors.New("facts: netlink address dump failed")
		case syscall.RTM_NEWADDR:
		default:
			continue
		}
		// struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index }
		if len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		family := m.Data[0]
		plen := int(m.Data[1])
		index := int(binary.NativeEndian.Uint32(m.Data[4:8]))
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		var local, address []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFA_LOCAL:
				local = a.Value
			case syscall.IFA_ADDRESS:
				address = a.Value
			}
		}
		// For IPv4, IFA_ADDRESS is the peer on point-to-point links and
		// IFA_LOCAL the interface's own address (this mirrors package net).
		ip := address
		if family == syscall.AF_INET && local != nil {
			ip = local
		}
		if p, ok := prefixFromSlice(ip, plen); ok {
			out[index] = append(out[index], p)
		}
	}
	return out, nil
}
