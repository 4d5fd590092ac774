package discover

import (
	"encoding/binary"
	"math"
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// scanCursor is the position of the rolling subnet scan: the hosts of the
// scan CIDRs, in the order of Options.ScanCIDRs and ascending within each
// (cidr.Hosts), numbered 0..total-1. A Client keeps one cursor for its whole
// life, so each round continues where the previous one stopped and every
// host is probed once per cycle however short the rounds are. The zero
// value scans nothing.
type scanCursor struct {
	ranges []hostRange // read-only once built; shared by copies
	total  uint64
	pos    uint64 // index of the next host to probe, 0..total-1
	cycles uint64 // completed passes over all hosts
}

// hostRange is one CIDR's hosts: n consecutive addresses from first.
type hostRange struct {
	first uint32
	n     uint64
}

func newScanCursor(prefixes []netip.Prefix) scanCursor {
	var c scanCursor
	for _, p := range prefixes {
		n := cidr.HostCount(p)
		if n == 0 {
			continue
		}
		b := p.Masked().Addr().As4()
		first := binary.BigEndian.Uint32(b[:])
		if p.Bits() <= 30 {
			first++ // never the network address (nor, by n, the broadcast)
		}
		c.ranges = append(c.ranges, hostRange{first: first, n: n})
		c.total += n
	}
	return c
}

// at returns host i (0 <= i < total).
func (c *scanCursor) at(i uint64) netip.Addr {
	for _, r := range c.ranges {
		if i < r.n {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], r.first+uint32(i))
			return netip.AddrFrom4(b)
		}
		i -= r.n
	}
	return netip.Addr{}
}

// index returns the cursor index of host h, and false when h is no host
// of the scan CIDRs.
func (c *scanCursor) index(h netip.Addr) (uint64, bool) {
	if !h.Is4() {
		return 0, false
	}
	b := h.As4()
	v := binary.BigEndian.Uint32(b[:])
	var base uint64
	for _, r := range c.ranges {
		if v >= r.first && uint64(v-r.first) < r.n {
			return base + uint64(v-r.first), true
		}
		base += r.n
	}
	return 0, false
}

// next returns the host at the cursor and moves past it; wrapped is true
// when that host was the last of a cycle (the cursor is back at host 0).
func (c *scanCursor) next() (h netip.Addr, wrapped bool) {
	if c.total == 0 {
		return netip.Addr{}, false
	}
	h = c.at(c.pos)
	c.pos++
	if c.pos == c.total {
		c.pos = 0
		c.cycles++
		wrapped = true
	}
	return h, wrapped
}

// progress is the fraction of the current cycle done, 0..1 (1 never: a
// finished cycle is the next one's 0).
func (c *scanCursor) progress() float64 {
	if c.total == 0 {
		return 0
	}
	return float64(c.pos) / float64(c.total)
}

// scanStart returns a copy of the Client's cursor for round r to advance
// and the round's keep-alive targets: the addresses given to KeepAlive
// that are outside broadcast reach (outside the network of every selected
// interface, so only a unicast probe reaches them), not our own, once each.
func (c *Client) scanStart(r *round) (scanCursor, []netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sel []netip.Prefix
	for _, i := range r.sel {
		sel = append(sel, i.Prefix.Masked())
	}
	var out []netip.Addr
	seen := make(map[netip.Addr]struct{}, len(c.keepAlive))
	for _, ap := range c.keepAlive {
		a := ap.Addr().Unmap()
		if _, dup := seen[a]; dup || !a.Is4() || cidr.AnyContains(sel, a) {
			continue
		}
		if _, mine := r.own[a]; mine {
			continue
		}
		seen[a] = struct{}{}
		out = append(out, a)
	}
	return c.scan, out
}

// scanDone stores the cursor a round advanced. Rounds run one after
// another; were two to overlap, both would scan the same hosts and the
// later to finish would set the position.
func (c *Client) scanDone(cur scanCursor) {
	c.mu.Lock()
	c.scan.pos, c.scan.cycles = cur.pos, cur.cycles
	c.mu.Unlock()
}

// KeepAlive sets the servers that every following round probes by unicast,
// beside the scan, as long as they are outside broadcast reach (the source
// address of their reply outside the network of every selected interface),
// inside a scan CIDR, and the subnet scan is on: a server that only the
// scan can reach then answers every round, so a round without its reply is
// a real miss and not "the scan was elsewhere". Pass the replies' source
// addresses of the servers still held (bridge run passes the planner's held
// set before each round, so a server the planner removed is no longer
// probed), and only of servers whose advertised address is their source
// (bridge run does): a forged reply then earns no keep-alive, and a reply
// from outside the scan CIDRs never steers the bridge's probes. nil stops
// all keep-alives. At most MaxScanHosts are kept. The keep-alive probes
// alternate with the scan's, so they take at most half of its rate.
func (c *Client) KeepAlive(sources []netip.AddrPort) {
	c.mu.Lock()
	c.keepAlive = slices.Clone(sources[:min(len(sources), MaxScanHosts)])
	c.mu.Unlock()
}

// ScanPlan describes the rolling subnet scan of a Client: how many hosts a
// cycle covers and how long a cycle takes.
type ScanPlan struct {
	// Hosts in the scan CIDRs; OnLink of them resolved with ARP.
	Hosts, OnLink int
	// Rate is Options.ScanRate; OnLinkRate the pace of on-link hosts
	// (NeighParams.OnLinkRate), 0 when no scanned host is on-link; NeighLimit
	// the neighbour entries the on-link pace keeps under.
	Rate       int
	OnLinkRate float64
	NeighLimit int
	// Seconds is the sending time of one cycle (routed hosts at Rate,
	// on-link ones at OnLinkRate), Rounds the rounds it takes when each
	// round scans for Options.Timeout less its reply margin (a tenth of
	// it, at most 100 ms; keep-alive probes not counted).
	Seconds float64
	Rounds  int
}

// ScanPlan returns the scan's plan with the host's interfaces and neighbour
// settings as they are now; the zero ScanPlan when there is no scan.
func (c *Client) ScanPlan() ScanPlan {
	o := c.opts
	if !o.SubnetScan || len(o.ScanCIDRs) == 0 {
		return ScanPlan{}
	}
	all, _ := c.lister.Interfaces()
	onLink := onLinkPrefixes(all)
	n := c.neigh()
	p := ScanPlan{Rate: o.ScanRate, NeighLimit: n.Limit()}
	for _, pfx := range o.ScanCIDRs {
		for h := range cidr.Hosts(pfx) {
			p.Hosts++
			if cidr.AnyContains(onLink, h) {
				p.OnLink++
			}
		}
	}
	if p.OnLink > 0 {
		p.OnLinkRate = n.OnLinkRate()
		p.Seconds = float64(p.OnLink) / min(p.OnLinkRate, float64(o.ScanRate))
	}
	p.Seconds += float64(p.Hosts-p.OnLink) / float64(o.ScanRate)
	p.Rounds = max(int(math.Ceil(p.Seconds/(o.Timeout-scanReplyMargin(o.Timeout)).Seconds())), 1)
	return p
}

// containsAny reports whether some address of one of ps lies in one of qs
// (the prefixes overlap).
func containsAny(ps, qs []netip.Prefix) bool {
	for _, p := range ps {
		for _, q := range qs {
			if p.Overlaps(q) {
				return true
			}
		}
	}
	return false
}
