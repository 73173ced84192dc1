//go:build !linux

package facts

import (
	"errors"
	"net/netip"
)

func interfaceAddrs() (map[int][]netip.Prefix, error) {
	return nil, errors.New("facts: netlink is Linux only")
}
