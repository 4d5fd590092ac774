package discover

import (
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// maxPolicyNotes bounds the (payload, source) pairs a Client remembers
// having logged an address-policy substitution for.
const maxPolicyNotes = 4096

// notePolicy logs, once per (payload, source) pair per Client, that
// AddressAuto registered the source address instead of the payload's.
func (c *Client) notePolicy(payload, source netip.Addr, reason string) {
	c.mu.Lock()
	k := [2]netip.Addr{payload, source}
	_, done := c.policyNotes[k]
	if !done && len(c.policyNotes) < maxPolicyNotes {
		if c.policyNotes == nil {
			c.policyNotes = make(map[[2]netip.Addr]struct{})
		}
		c.policyNotes[k] = struct{}{}
	} else {
		done = true
	}
	c.mu.Unlock()
	if !done {
		c.log.Info().Stringer("payload_ip", payload).Stringer("source_ip", source).Str("reason", reason).
			Msg("reply advertises an address that cannot be registered; using the packet's source address")
	}
}

// diagnose logs the segmented-network diagnosis of the selected interfaces,
// once per Client, when a round found nothing.
func (c *Client) diagnose(sel []iface.Interface) {
	c.mu.Lock()
	done := c.diagnosed
	c.diagnosed = true
	c.mu.Unlock()
	if done {
		return
	}
	for _, s := range iface.Diagnose(sel) {
		c.log.Warn().Str("interface", s.Interface).Stringer("ip", s.IP).Stringer("network", s.Network).
			Int("prefix", s.Prefix).Uint64("total_hosts", s.TotalHosts).
			Stringer("calculated_broadcast", s.CalculatedBroadcast).
			Stringer("likely_broadcast_domain", s.LikelyBroadcastDomain).
			Bool("is_corporate", s.IsCorporate).Int("segments", s.Segments).
			Str("advice", s.Advice()).
			Msg("no servers found; this network is probably segmented and broadcast may not reach them")
	}
}
