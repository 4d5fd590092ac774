package cidr

import (
	"fmt"
	"net/netip"
)

var (
	corporate10  = netip.MustParsePrefix("10.0.0.0/8")
	corporate172 = netip.MustParsePrefix("172.16.0.0/12")
)

// IsCorporate reports whether ip is in 10.0.0.0/8 or 172.16.0.0/12, the
// private ranges upstream treats as likely routed corporate networks.
// 192.168.0.0/16 and 169.254.0.0/16 are not corporate.
func IsCorporate(ip netip.Addr) bool {
	return ip.Is4() && (corporate10.Contains(ip) || corporate172.Contains(ip))
}

// Segmentation describes an interface whose configured network is larger
// than the /24 a broadcast from it is likely to reach. JSON field names
// match upstream detect_segmented_network.
type Segmentation struct {
	Interface string       `json:"interface"`
	IP        netip.Addr   `json:"ip"`
	Network   netip.Prefix `json:"network"`
	Prefix    int          `json:"prefix"`
	// TotalHosts is HostCount(Network).
	TotalHosts uint64 `json:"total_hosts"`
	// CalculatedBroadcast is the interface broadcast the client sends to
	// (the one given to DetectSegmented, or Broadcast(Network) if none).
	CalculatedBroadcast netip.Addr `json:"calculated_broadcast"`
	// LikelyBroadcastDomain is the /24 containing IP.
	LikelyBroadcastDomain netip.Prefix `json:"likely_broadcast_domain"`
	IsCorporate           bool         `json:"is_corporate"`
	// Segments is the number of /24s in Network: 2^(24-Prefix).
	Segments int `json:"segments"`
}

// DetectSegmented reports whether the interface name with address ip on
// network (broadcast address broadcast; zero means compute it from network)
// probably sits on a routed network split into /24 broadcast domains, with
// upstream detect_segmented_network semantics. It is flagged when all hold:
//
//   - ip is IPv4 and network's prefix is shorter than /24;
//   - ip is in 10.0.0.0/8 or 172.16.0.0/12 (never 192.168.0.0/16 or
//     169.254.0.0/16);
//   - the broadcast of the /24 containing ip differs from broadcast.
//
// Virtual interfaces (virtual true) with a prefix of /24 or longer are
// skipped, which the first rule already implies. When not flagged it returns
// the zero Segmentation and false.
func DetectSegmented(name string, ip netip.Addr, network netip.Prefix, broadcast netip.Addr, virtual bool) (Segmentation, bool) {
	if !ip.Is4() || !network.IsValid() || !network.Addr().Is4() {
		return Segmentation{}, false
	}
	bits := network.Bits()
	if virtual && bits >= 24 {
		return Segmentation{}, false
	}
	if bits >= 24 || !IsCorporate(ip) {
		return Segmentation{}, false
	}
	if !broadcast.IsValid() {
		broadcast = Broadcast(network)
	}
	domain := netip.PrefixFrom(ip, 24).Masked()
	if Broadcast(domain) == broadcast {
		return Segmentation{}, false
	}
	network = network.Masked()
	return Segmentation{
		Interface:             name,
		IP:                    ip,
		Network:               network,
		Prefix:                bits,
		TotalHosts:            HostCount(network),
		CalculatedBroadcast:   broadcast,
		LikelyBroadcastDomain: domain,
		IsCorporate:           true,
		Segments:              1 << (24 - bits),
	}, true
}

// Advice returns a short human explanation of s and what to do about it.
func (s Segmentation) Advice() string {
	return fmt.Sprintf(
		"Interface %s (%s) is on %s, but a broadcast from this host usually reaches only %s, "+
			"one of %d /24 segments, when routers or VLANs split the network. "+
			"To find servers in other segments, scan the subnet with --scan-cidr %s, "+
			"and whitelist this interface (DISCOVERY_CLIENT_INTERFACES_WHITELIST=%s) so discovery uses it.",
		s.Interface, s.IP, s.Network, s.LikelyBroadcastDomain, s.Segments, s.Network, s.Interface)
}
