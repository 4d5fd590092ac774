// Package iface lists the host's IPv4 interfaces and chooses the ones
// discovery broadcasts on. List is the upstream client's get_interfaces(),
// Interface its InterfaceInfo; Select is its select_interfaces (active,
// non-loopback, whitelist then blacklist), minus addresses with no
// broadcast domain (/31, /32). Rules add the ways node agents choose
// interfaces (name pattern, CIDR, the route to an address, container/CNI
// names skipped), and Decide says which rule took or skipped every address.
// Diagnose runs the segmented-network diagnosis over a list of interfaces
// (upstream detect_segmented_network).
package iface

import (
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// Interface is one IPv4 address on one network interface. An interface with
// several IPv4 addresses yields several values with the same Name.
type Interface struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// Addr is the interface's own address; Prefix its network (masked).
	Addr   netip.Addr   `json:"ip"`
	Prefix netip.Prefix `json:"network"`
	// Broadcast is the OS-reported broadcast address, or the one computed
	// from Addr and Prefix when the OS reports none (BroadcastFromOS false).
	Broadcast       netip.Addr `json:"broadcast"`
	BroadcastFromOS bool       `json:"broadcast_from_os"`
	Up              bool       `json:"up"`
	Loopback        bool       `json:"loopback"`
	// Virtual marks docker/veth/bridge-style interfaces (by name), which the
	// segmented-network diagnosis skips when their prefix is /24 or longer.
	Virtual bool `json:"virtual"`
}

// Netmask returns the dotted netmask of i's network (255.255.255.0 for a
// /24), upstream InterfaceInfo's netmask; the zero Addr if Prefix is not a
// valid IPv4 prefix.
func (i Interface) Netmask() netip.Addr {
	if !i.Prefix.IsValid() || !i.Prefix.Addr().Is4() {
		return netip.Addr{}
	}
	m, _ := cidr.MaskFromPrefixLen(i.Prefix.Bits())
	return m
}

// List returns every IPv4 address of every interface of the host, up or
// down, loopback included, each with its flags: OS().Interfaces().
// Select(all, nil, nil) keeps the active, non-loopback ones with a
// broadcast domain.
func List() ([]Interface, error) { return OS().Interfaces() }

// Lister lists every IPv4 interface address of the host, selected or not.
type Lister interface {
	Interfaces() ([]Interface, error)
}

// ListerFunc adapts a function to Lister.
type ListerFunc func() ([]Interface, error)

// Interfaces calls f.
func (f ListerFunc) Interfaces() ([]Interface, error) { return f() }
