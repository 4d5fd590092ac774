package discover

import (
	"encoding/json"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// This file is the reply admission policy: what a round refuses before a
// reply becomes a server. Plain mode cannot prove who answered, but a
// round can refuse what no honest server sends and bound what one sender
// costs. Each refusal is counted by Refusal in Stats.Refused.

// Refusal is why the admission policy refused a valid reply. Its values
// are a small fixed set, usable as metric labels.
type Refusal uint8

// The refusals, in the order the policy checks them.
const (
	// RefusedSourcePort: the reply did not come from the discovery port.
	// A stock server answers from the socket the probe reached (port 9999
	// by default); a blind spray of our ephemeral ports comes from others.
	RefusedSourcePort Refusal = iota
	// RefusedOffLink: the source is neither on the network of the
	// interface the reply arrived on (an answer to a broadcast probe) nor
	// a host this round probed by unicast (a scan or keep-alive probe).
	RefusedOffLink
	// RefusedReplay: encrypted mode, an authentic reply token stamped
	// before the round's first probe (less ClockSkew): a captured reply
	// played again.
	RefusedReplay
	// RefusedUnroutable: the address to register is one no registry
	// should hold: 0.0.0.0/8, loopback, link-local (169.254/16, cloud
	// metadata among it), multicast, 240.0.0.0/4 and the limited broadcast.
	// (A loopback address is admitted only inside a selected interface's
	// network, which only a custom iface.Lister can offer: a test's.)
	RefusedUnroutable
	// RefusedSubnetEdge: the address to register is the network or the
	// broadcast address of a selected interface's subnet.
	RefusedSubnetEdge
	// RefusedForeign: the advertised address is neither the reply's source
	// nor inside a selected interface's network or a scan CIDR
	// (AdvertisedLocal; AdvertisedAny admits it).
	RefusedForeign
	// RefusedSourceCap: the reply's source already introduced
	// MaxServersPerSource new servers this round.
	RefusedSourceCap

	numRefusals
)

var refusalNames = [numRefusals]string{
	RefusedSourcePort: "source_port",
	RefusedOffLink:    "off_link_source",
	RefusedReplay:     "replay",
	RefusedUnroutable: "unroutable_address",
	RefusedSubnetEdge: "subnet_address",
	RefusedForeign:    "foreign_address",
	RefusedSourceCap:  "source_cap",
}

// String returns the refusal's name ("off_link_source"), its metric label.
func (r Refusal) String() string {
	if r < numRefusals {
		return refusalNames[r]
	}
	return "unknown"
}

// explain says what a refusal means, for the log.
func (r Refusal) explain() string {
	switch r {
	case RefusedSourcePort:
		return "the reply did not come from the discovery port, as every stock server's does"
	case RefusedOffLink:
		return "the source is not on the network the reply arrived on, nor a host this round probed by unicast"
	case RefusedReplay:
		return "an encrypted reply stamped before this round's probes (less clock_skew): a replay"
	case RefusedUnroutable:
		return "the address is one no registry should hold (0/8, loopback, link-local, multicast, 240/4, broadcast)"
	case RefusedSubnetEdge:
		return "the address is the network or broadcast address of a selected interface's subnet"
	case RefusedForeign:
		return "the advertised address is not the source and lies outside the interfaces' networks and the scan CIDRs (advertised_addresses any admits it)"
	case RefusedSourceCap:
		return "this source introduced max_servers_per_source new servers this round already"
	}
	return ""
}

// MarshalText makes a Refusal a JSON object key (Stats.Refused).
func (r Refusal) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// RefusalCounts counts replies by Refusal; in JSON an object of the
// non-zero counts by name ({"off_link_source": 3}).
type RefusalCounts [numRefusals]int

// Total is the sum of the counts.
func (c RefusalCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// MarshalJSON writes the non-zero counts as an object keyed by name.
func (c RefusalCounts) MarshalJSON() ([]byte, error) {
	m := make(map[string]int)
	for r, n := range c {
		if n > 0 {
			m[Refusal(r).String()] = n
		}
	}
	return json.Marshal(m)
}

// Refusals returns every Refusal, in the order the policy checks them.
func Refusals() []Refusal {
	out := make([]Refusal, numRefusals)
	for i := range out {
		out[i] = Refusal(i)
	}
	return out
}

// AdvertisedPolicy says which advertised addresses a round admits.
type AdvertisedPolicy string

const (
	// AdvertisedLocal (the default) admits an advertised address only when
	// it is the reply's source address, or inside the network of a
	// selected interface, or inside a scan CIDR: where a server that
	// answers this bridge can be.
	AdvertisedLocal AdvertisedPolicy = "local"
	// AdvertisedAny admits any routable advertised address, as the
	// upstream client does: for a multi-homed server whose default route
	// leaves by another network than the one it answers on.
	AdvertisedAny AdvertisedPolicy = "any"
)

// DefaultMaxServersPerSource is the default of MaxServersPerSource: a stock
// server answers with one identity; several listeners on one host, NAT and
// multi-homed hosts with a few.
const DefaultMaxServersPerSource = 8

// unroutable reports whether ip is an address no registry should hold.
func unroutable(ip netip.Addr) bool {
	if !ip.Is4() {
		return true
	}
	b := ip.As4()
	return b[0] == 0 || // 0.0.0.0/8, "this network"
		ip.IsLoopback() ||
		ip.IsLinkLocalUnicast() ||
		ip.IsMulticast() ||
		b[0] >= 240 // 240.0.0.0/4, the limited broadcast among it
}

// unroutable reports whether the round refuses ip as unroutable: always for
// the addresses of the package function, but a loopback address inside a
// selected interface's network, which only a custom iface.Lister can offer
// (iface selection never picks a loopback interface), is that network's.
func (a *admission) unroutable(ip netip.Addr) bool {
	if ip.IsLoopback() && cidr.AnyContains(a.nets, ip) {
		return false
	}
	return unroutable(ip)
}

// admission is one round's view of the policy: the networks and probed
// hosts it checks replies against. Built before the round's first probe;
// read by the receiving goroutine, and probed written by the scanning one.
type admission struct {
	// nets are the selected interfaces' networks (masked); edges their
	// network and broadcast addresses (prefixes of 30 bits or less).
	nets  []netip.Prefix
	edges map[netip.Addr]struct{}
	// netsByIndex are the networks of each interface index, selected or
	// not (a reply may arrive on any), and ownNet the network of each of
	// our own addresses (a server on this host answers from one of them,
	// through the loopback device).
	netsByIndex map[int][]netip.Prefix
	ownNet      map[netip.Addr]netip.Prefix
	scanCIDRs   []netip.Prefix
	// keepAlive are this round's keep-alive targets (read-only), probed
	// the scan hosts probed so far (one bit per scan cursor index).
	keepAlive map[netip.Addr]struct{}
	probed    []atomic.Uint64
	cursor    *scanCursor
}

// scanning arms the scan half of the view: cur is the round's copy of the
// scan cursor (only its host ranges are read, which no round changes) and
// keepAlive the round's keep-alive targets.
func (a *admission) scanning(cur scanCursor, keepAlive []netip.Addr) {
	a.cursor = &cur
	a.probed = make([]atomic.Uint64, (cur.total+63)/64)
	a.keepAlive = make(map[netip.Addr]struct{}, len(keepAlive))
	for _, h := range keepAlive {
		a.keepAlive[h] = struct{}{}
	}
}

// probedHost records that the scan probed cursor index i.
func (a *admission) probedHost(i uint64) {
	if w := i / 64; w < uint64(len(a.probed)) {
		a.probed[w].Or(1 << (i % 64))
	}
}

// wasProbed reports whether this round sent a unicast probe to ip.
func (a *admission) wasProbed(ip netip.Addr) bool {
	if _, ok := a.keepAlive[ip]; ok {
		return true
	}
	if a.cursor == nil {
		return false
	}
	i, ok := a.cursor.index(ip)
	if !ok || i/64 >= uint64(len(a.probed)) {
		return false
	}
	return a.probed[i/64].Load()&(1<<(i%64)) != 0
}

// onLink reports whether src is on the network of the interface the reply
// arrived on (ifindex from IP_PKTINFO, 0 when unknown: then any selected
// interface's network), or is one of our own addresses.
func (a *admission) onLink(src netip.Addr, ifindex int) bool {
	if _, mine := a.ownNet[src]; mine {
		return true
	}
	if nets, ok := a.netsByIndex[ifindex]; ok && ifindex > 0 {
		return cidr.AnyContains(nets, src)
	}
	return cidr.AnyContains(a.nets, src)
}

// isEdge reports whether ip is the network or broadcast address of a
// selected interface's subnet.
func (a *admission) isEdge(ip netip.Addr) bool {
	_, ok := a.edges[ip]
	return ok
}

// local reports whether ip is where a server answering this bridge can
// be: inside a selected interface's network or a scan CIDR.
func (a *admission) local(ip netip.Addr) bool {
	return cidr.AnyContains(a.nets, ip) || cidr.AnyContains(a.scanCIDRs, ip)
}

// newAdmission builds a round's admission view: all are the host's
// interfaces, sel the selected ones.
func newAdmission(o *Options, all, sel []iface.Interface) *admission {
	a := &admission{
		edges:       map[netip.Addr]struct{}{},
		netsByIndex: map[int][]netip.Prefix{},
		ownNet:      map[netip.Addr]netip.Prefix{},
		scanCIDRs:   o.ScanCIDRs,
	}
	for _, i := range all {
		if !i.Prefix.IsValid() {
			continue
		}
		p := i.Prefix.Masked()
		a.ownNet[i.Addr] = p
		if i.Index > 0 && !slices.Contains(a.netsByIndex[i.Index], p) {
			a.netsByIndex[i.Index] = append(a.netsByIndex[i.Index], p)
		}
	}
	for _, i := range sel {
		p := i.Prefix.Masked()
		if !p.IsValid() || slices.Contains(a.nets, p) {
			continue
		}
		a.nets = append(a.nets, p)
		if p.Bits() <= 30 {
			a.edges[p.Addr()] = struct{}{}
			a.edges[cidr.Broadcast(p)] = struct{}{}
		}
	}
	return a
}

// refusalNote is one (source, reason) pair a round refused, for the log.
type refusalNote struct {
	src    netip.Addr
	reason Refusal
}

// maxRoundNotes bounds the (source, reason) pairs a round remembers for
// the log; further pairs are counted only.
const maxRoundNotes = 64
