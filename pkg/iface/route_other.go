//go:build !linux

package iface

import (
	"fmt"
	"net"
	"net/netip"
)

// OSRouter returns the Router of the host. This portable path "connects" a
// UDP socket to dst (which sends nothing) and reads the local address the
// kernel chose: Route.Src, whose interface is the route's.
func OSRouter() Router { return RouterFunc(routePortable) }

func routePortable(dst netip.Addr) (Route, error) {
	if !dst.Is4() {
		return Route{}, fmt.Errorf("route to %s: not an IPv4 address", dst)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	defer c.Close()
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	return Route{Dst: dst, Src: src}, nil
}
