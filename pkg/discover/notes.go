package discover

import (
	"log/slog"
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// maxPolicyNotes bounds the (payload, source) pairs a Client remembers
// having logged an address-policy substitution for; policyNotesAtInfo is
// how many of them are logged at info (the rest at debug, so that 10,000
// stock servers with no default route are not 10,000 info lines).
const (
	maxPolicyNotes    = 4096
	policyNotesAtInfo = 5
)

// notePolicy logs, once per (payload, source) pair per Client, that
// AddressAuto registered the source address instead of the payload's: the
// first policyNotesAtInfo pairs at info, then one info line saying the
// others follow at debug, and each of them at debug.
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
	n := len(c.policyNotes)
	c.mu.Unlock()
	if done {
		return
	}
	level := slog.LevelInfo
	if n > policyNotesAtInfo {
		level = slog.LevelDebug
	}
	if n == policyNotesAtInfo+1 {
		c.log.log(slog.LevelInfo, "more replies advertise addresses that cannot be registered; each is logged at debug",
			slog.Int("logged_at_info", policyNotesAtInfo))
	}
	if c.log.enabled(level) {
		c.log.log(level, "reply advertises an address that cannot be registered; using the packet's source address",
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

// refusalsAtWarn is how many (source, reason) pairs an episode of refusals
// logs at warn; the others are logged at debug.
const refusalsAtWarn = 5

// noteRefusals logs what a round's admission policy refused. An episode of
// refusals is a run of rounds that each refused something; a (source,
// reason) pair's own episode is a run of rounds that each refused it. A
// pair is logged once per its episode: the first refusalsAtWarn pairs of a
// whole episode at warn, the rest at debug (a flood from forged sources
// is a few lines, not one a source). The end of an episode is one info
// line. notes are the round's pairs (at most maxRoundNotes), refused its
// counts by reason.
func (c *Client) noteRefusals(notes map[refusalNote]struct{}, refused RefusalCounts) {
	c.mu.Lock()
	prev := c.refusing
	c.refusing = notes
	episode := c.refusalEpisode
	c.refusalEpisode = refused.Total() > 0
	if !episode {
		c.refusalsWarned, c.refusalsOverflowed = 0, false
	}
	type line struct {
		n    refusalNote
		warn bool
	}
	var lines []line
	for n := range notes {
		if _, ongoing := prev[n]; ongoing {
			continue
		}
		warn := c.refusalsWarned < refusalsAtWarn
		if warn {
			c.refusalsWarned++
		}
		lines = append(lines, line{n, warn})
	}
	// The first pair of an episode past the warn budget says, once, that
	// the others follow at debug.
	overflow := false
	if c.refusalsWarned == refusalsAtWarn && !c.refusalsOverflowed && slices.ContainsFunc(lines, func(l line) bool { return !l.warn }) {
		c.refusalsOverflowed, overflow = true, true
	}
	c.mu.Unlock()

	switch {
	case !episode && refused.Total() > 0:
		c.log.log(slog.LevelWarn, "replies refused by the admission policy (forged, misconfigured or foreign servers?); each source is logged once while it goes on",
			refusalAttrs(refused)...)
	case episode && refused.Total() == 0:
		c.log.log(slog.LevelInfo, "no reply refused by the admission policy any more")
	}
	for _, l := range lines {
		level := slog.LevelDebug
		if l.warn {
			level = slog.LevelWarn
		}
		if c.log.enabled(level) {
			c.log.log(level, "replies from this source refused", slog.String("source_ip", l.n.src.String()),
				slog.String("reason", l.n.reason.String()), slog.String("why", l.n.reason.explain()))
		}
	}
	if overflow {
		c.log.log(slog.LevelWarn, "more sources are refused; each is logged at debug until no reply is refused for a round",
			slog.Int("logged_at_warn", refusalsAtWarn))
	}
}

// refusalAttrs are refused's counts as log attributes, one per reason.
func refusalAttrs(refused RefusalCounts) []slog.Attr {
	var out []slog.Attr
	for _, r := range Refusals() {
		if n := refused[r]; n > 0 {
			out = append(out, slog.Int(r.String(), n))
		}
	}
	return out
}
