package discover

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// NeighParams are the kernel's neighbour (ARP) table settings that decide
// how fast an on-link scan may go: every probe to an on-link host that does
// not answer creates a neighbour entry that stays INCOMPLETE for
// McastSolicit × RetransTime, then FAILED until the table's periodic
// garbage collection, which runs every BaseReachable/2 and only once the
// table holds GCThresh1 entries or more. From GCThresh2 entries the kernel
// starts forced collections that also evict real neighbours not confirmed
// in the last 5 s, and at GCThresh3 it refuses new entries ("neighbour
// table overflow"). The table is shared by every network namespace of the
// host.
type NeighParams struct {
	GCThresh1, GCThresh2, GCThresh3 int
	McastSolicit                    int
	RetransTime                     time.Duration
	BaseReachable                   time.Duration
}

// DefaultNeighParams are Linux's defaults, used where /proc cannot be read.
var DefaultNeighParams = NeighParams{
	GCThresh1: 128, GCThresh2: 512, GCThresh3: 1024,
	McastSolicit: 3, RetransTime: time.Second, BaseReachable: 30 * time.Second,
}

// ReadNeighParams reads the IPv4 neighbour defaults of the calling network
// namespace from /proc/sys/net/ipv4/neigh/default; values it cannot read
// keep DefaultNeighParams.
func ReadNeighParams() NeighParams {
	p := DefaultNeighParams
	read := func(name string, dst *int) {
		b, err := os.ReadFile("/proc/sys/net/ipv4/neigh/default/" + name)
		if err != nil {
			return
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > 0 {
			*dst = v
		}
	}
	read("gc_thresh1", &p.GCThresh1)
	read("gc_thresh2", &p.GCThresh2)
	read("gc_thresh3", &p.GCThresh3)
	read("mcast_solicit", &p.McastSolicit)
	ms := int(p.RetransTime / time.Millisecond)
	read("retrans_time_ms", &ms)
	p.RetransTime = time.Duration(ms) * time.Millisecond
	ms = int(p.BaseReachable / time.Millisecond)
	read("base_reachable_time_ms", &ms)
	p.BaseReachable = time.Duration(ms) * time.Millisecond
	return p
}

// Lifetime is the longest an unanswered probe's neighbour entry lives:
// INCOMPLETE for McastSolicit × RetransTime, then FAILED until the next
// periodic collection (at most BaseReachable/2 later).
func (p NeighParams) Lifetime() time.Duration {
	return time.Duration(p.McastSolicit)*p.RetransTime + p.BaseReachable/2
}

// Limit is the number of neighbour entries an on-link scan may hold at
// once: a quarter of GCThresh3 (256 of 1024 by default, half of the
// default GCThresh2), so the table stays below the point where the kernel
// evicts real neighbours, with room for the host's own.
func (p NeighParams) Limit() int { return p.GCThresh3 / 4 }

// OnLinkRate is the fastest on-link scan, in probes per second, that keeps
// the entries it creates under Limit. Below GCThresh1 entries the kernel
// collects nothing, so up to GCThresh1 entries can pile up before a
// collection, then Lifetime's worth of probes: rate = (Limit - GCThresh1) /
// Lifetime, 7.1 probes/s with the defaults ((256-128) / 18 s). When Limit
// is not above GCThresh1 (a table tuned that way), Limit/2 / Lifetime.
func (p NeighParams) OnLinkRate() float64 {
	budget := p.Limit() - p.GCThresh1
	if budget <= 0 {
		budget = p.Limit() / 2
	}
	life := p.Lifetime().Seconds()
	if budget <= 0 || life <= 0 {
		return 1
	}
	return max(float64(budget)/life, 1)
}

// onLinkPrefixes are the networks of the host's up, non-loopback interfaces
// (selected or not: the kernel routes to them whatever discovery selects):
// a probe to a host in one of them is resolved with ARP on the link. A more
// specific route through a gateway inside such a network is not looked up:
// its hosts are paced as on-link too, which is only slower.
func onLinkPrefixes(all []iface.Interface) []netip.Prefix {
	var out []netip.Prefix
	for _, i := range all {
		if !i.Up || i.Loopback || !i.Prefix.IsValid() || !i.Prefix.Addr().Is4() || i.Prefix.Bits() >= 32 ||
			i.Prefix.Addr().IsLoopback() { // 127/8 never needs ARP

			continue
		}
		out = append(out, i.Prefix.Masked())
	}
	return out
}
