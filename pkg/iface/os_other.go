//go:build !linux

package iface

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// OS returns the Lister of the host's IPv4 addresses, read with
// net.Interfaces and each interface's Addrs. This portable path cannot see
// the OS broadcast address, so Broadcast is always computed with
// cidr.Broadcast (BroadcastFromOS false).
func OS() Lister { return ListerFunc(listPortable) }

func listPortable() ([]Interface, error) {
	links, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []Interface
	for _, l := range links {
		addrs, err := l.Addrs()
		if err != nil {
			return nil, fmt.Errorf("list addresses of interface %q: %w", l.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP.To4())
			if !ok {
				continue
			}
			ones, bits := ipn.Mask.Size()
			if bits == 128 { // IPv4 address with a 16-byte mask
				ones -= 96
			}
			if (bits != 32 && bits != 128) || ones < 0 {
				continue
			}
			prefix := netip.PrefixFrom(ip, ones).Masked()
			out = append(out, Interface{
				Name:      l.Name,
				Index:     l.Index,
				Addr:      ip,
				Prefix:    prefix,
				Broadcast: cidr.Broadcast(prefix),
				Up:        l.Flags&net.FlagUp != 0,
				Loopback:  l.Flags&net.FlagLoopback != 0,
				Virtual:   IsVirtual(l.Name),
			})
		}
	}
	return out, nil
}
