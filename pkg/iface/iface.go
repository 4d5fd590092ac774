// Package iface enumerates the host's IPv4 interfaces and selects the ones
// discovery broadcasts on (active, non-loopback, whitelist then blacklist).
package iface

import "net/netip"

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

// Lister lists every IPv4 interface address of the host, selected or not.
type Lister interface {
	Interfaces() ([]Interface, error)
}

// ListerFunc adapts a function to Lister.
type ListerFunc func() ([]Interface, error)

// Interfaces calls f.
func (f ListerFunc) Interfaces() ([]Interface, error) { return f() }
