package funcs

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
)

// The network functions against this host's real interfaces: every Linux
// host has lo with 127.0.0.1/8, left out of the address lists unless asked
// for; ipv4 and ipv6 do not mix; an unknown interface is named.
func TestNetwork_RealInterfaces(t *testing.T) {
	if _, err := net.InterfaceByName("lo"); err != nil {
		t.Skip("no interface lo on this host")
	}
	v4 := mustRun(t, nil, "network.ipv4", "").([]string)
	if slices.Contains(v4, "127.0.0.1") {
		t.Errorf("network.ipv4 lists loopback by default: %v", v4)
	}
	if lo := mustRun(t, nil, "network.ipv4", `{"interface":"lo","loopback":true}`).([]string); !slices.Equal(lo, []string{"127.0.0.1"}) {
		t.Errorf("network.ipv4 of lo = %v", lo)
	}
	for _, a := range v4 {
		if ip := net.ParseIP(a); ip == nil || ip.To4() == nil {
			t.Errorf("network.ipv4: %q is not IPv4", a)
		}
	}
	for _, a := range mustRun(t, nil, "network.ipv6", `{"loopback":true}`).([]string) {
		if ip := net.ParseIP(a); ip == nil || ip.To4() != nil || ip.IsLinkLocalUnicast() {
			t.Errorf("network.ipv6: %q is not a routable IPv6 address", a)
		}
	}
	// Every address the kernel gives a non-loopback interface, and only
	// those, whatever the interface.
	addrs, _ := net.InterfaceAddrs()
	var want []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			want = append(want, ipn.IP.String())
		}
	}
	slices.Sort(want)
	if !slices.Equal(v4, slices.Compact(want)) && !(len(v4) == 0 && len(want) == 0) {
		t.Errorf("network.ipv4 = %v, the kernel says %v", v4, want)
	}
	var lo *Interface
	for _, i := range mustRun(t, nil, "network.interfaces", "").([]Interface) {
		if i.Name == "lo" {
			lo = &i
		}
	}
	if lo == nil || !slices.Contains(lo.Flags, "loopback") || !slices.Contains(lo.Addrs, "127.0.0.1/8") {
		t.Errorf("network.interfaces lo = %+v", lo)
	}
	_, err := run(t, nil, "network.ipv4", `["nosuch0"]`)
	if e := wantCode(t, err, CodeBadArgs, `no interface "nosuch0"`); !strings.Contains(e.Msg, "lo") {
		t.Errorf("the error names the interfaces there are: %s", e.Msg)
	}
	_, err = run(t, nil, "network.interfaces", `{"x":1}`)
	wantCode(t, err, CodeBadArgs)
}

// basket.get checks its arguments and needs the agent's basket.
func TestBasketGet_Args(t *testing.T) {
	_, err := run(t, nil, "basket.get", `["web*"]`)
	wantCode(t, err, CodeBadArgs, `"target" and "name" are required`)
	_, err = run(t, nil, "basket.get", `["web*", "ipv4"]`)
	wantCode(t, err, CodeFailed, "basket is not available")
	env := &Env{Basket: func(ctx context.Context, kind, target, name string) (map[string]any, error) {
		return map[string]any{kind + "|" + target: name}, nil
	}}
	if res := mustRun(t, env, "basket.get", `["id:web*", "ipv4", "fact"]`).(map[string]any); res["fact|id:web*"] != "ipv4" {
		t.Errorf("basket.get passed %v", res)
	}
}
