package discover

import (
	"log/slog"
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
		c.log.log(slog.LevelInfo,
			"reply advertises an address that cannot be registered; using the packet's source address",
			slog.String("payload_ip", payload.String()), slog.String("source_ip", source.String()), slog.String("reason", reason))
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
		c.log.log(slog.LevelWarn,
			"no servers found; this network is probably segmented and broadcast may not reach them",
			slog.String("interface", s.Interface), slog.String("ip", s.IP.String()), slog.String("network", s.Network.String()),
			slog.Int("prefix", s.Prefix), slog.Uint64("total_hosts", s.TotalHosts),
			slog.String("calculated_broadcast", s.CalculatedBroadcast.String()),
			slog.String("likely_broadcast_domain", s.LikelyBroadcastDomain.String()),
			slog.Bool("is_corporate", s.IsCorporate), slog.Int("segments", s.Segments),
			slog.String("advice", s.Advice()))
	}
}
