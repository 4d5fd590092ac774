package consul

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// This file is the pure part of catalog mode: the merge of every bridge's
// observations into the desired catalog, and the plan that brings the
// catalog there. No I/O; time comes in as an argument.

// Meta, node meta and check names written in catalog mode.
const (
	// MetaFleet scopes ownership to one KV prefix: bridges with another
	// prefix (another fleet) never touch these entries.
	MetaFleet     = "bridge-fleet"
	MetaSegments  = "segments"
	MetaObservers = "observers"
	// External-node meta read by consul-esm.
	NodeMetaExternal = "external-node"
	NodeMetaProbe    = "external-probe"

	// ObservedCheckID is the check the leader keeps on every server:
	// passing while at least one live bridge observes it.
	ObservedCheckID = "udp-discovery-bridge:observed"
	// ProbeCheckID is the tcp/http check run by consul-esm (--consul-check).
	ProbeCheckID = "udp-discovery-bridge:probe"

	// unobservedPrefix starts the Output of a critical observed check; the
	// time after it is when the last observer went away, so that any leader
	// (after a failover too) knows when the server is due for removal.
	unobservedPrefix = "unobserved since "
	// maxMetaValue is Consul's limit on a meta value.
	maxMetaValue = 512
)

// observed is one server as the merged observations describe it.
type observed struct {
	segments []string // sorted, unique
	bridges  int
}

// merge folds the observations of live bridges into one desired set: a
// server is wanted while at least one bridge observes it. An observation
// listing a server twice counts once.
func merge(obs []observation.Observation) map[netip.AddrPort]*observed {
	out := map[netip.AddrPort]*observed{}
	for _, o := range obs {
		for i, e := range o.Entries {
			if i > 0 && o.Entries[i-1].Addr == e.Addr {
				continue
			}
			d := out[e.Addr]
			if d == nil {
				d = &observed{}
				out[e.Addr] = d
			}
			d.bridges++
			if e.Segment != "" && !slices.Contains(d.segments, e.Segment) {
				d.segments = append(d.segments, e.Segment)
			}
		}
	}
	for _, d := range out {
		slices.Sort(d.segments)
	}
	return out
}

// catalogShape is what every catalog entry of a fleet shares.
type catalogShape struct {
	service    string
	tags       []string
	fleet      string // the KV prefix
	checks     string // fingerprint of the check configuration
	segmentTag bool
	observers  bool      // the observers meta (consul_observers_meta)
	probe      *probeDef // nil without --consul-check
}

// probeDef is the definition of the consul-esm check.
type probeDef struct {
	kind     string // CheckTCP or CheckHTTP
	path     string
	interval time.Duration
}

// catalogEntry is one server as the catalog holds it (or should hold it):
// its node, its service and the state of its observed check.
type catalogEntry struct {
	node     string
	nodeAddr string
	nodeMeta map[string]string
	svcID    string
	svc      service
	passing  bool
	// claim is set on entries to register on a node the fleet does not
	// hold yet: the node is created only if no node of that name exists,
	// so that a node of someone else (another fleet, a hand-registered
	// node, a node with an agent) is never overwritten.
	claim bool
	// since is when the last observer went away (critical entries only).
	since time.Time
}

// entryFor is the desired catalog entry of addr.
func (sh catalogShape) entryFor(addr netip.AddrPort, d *observed) catalogEntry {
	id := CatalogNodeName(sh.service, sh.fleet, addr)
	nodeMeta := map[string]string{MetaManagedBy: ManagedByValue, MetaFleet: sh.fleet}
	if sh.probe != nil {
		nodeMeta[NodeMetaExternal] = "true"
		nodeMeta[NodeMetaProbe] = "true"
	}
	tags := slices.Clone(sh.tags)
	if sh.segmentTag {
		for _, s := range d.segments {
			tags = append(tags, "segment="+s)
		}
	}
	meta := map[string]string{
		MetaManagedBy: ManagedByValue,
		MetaFleet:     sh.fleet,
		MetaChecks:    sh.checks,
		MetaSegments:  segmentsMeta(d.segments),
	}
	if sh.observers {
		meta[MetaObservers] = strconv.Itoa(d.bridges)
	}
	return catalogEntry{
		node:     id,
		nodeAddr: addr.Addr().String(),
		nodeMeta: nodeMeta,
		svcID:    id,
		svc: service{
			Name:    sh.service,
			Address: addr.Addr().String(),
			Port:    int(addr.Port()),
			Tags:    tags,
			Meta:    meta,
		},
		passing: true,
	}
}

// segmentsMeta joins segments with commas, cut to Consul's meta value limit
// with a "+N" count of those left out.
func segmentsMeta(segs []string) string {
	s := strings.Join(segs, ",")
	if len(s) <= maxMetaValue {
		return s
	}
	var b strings.Builder
	for i, seg := range segs {
		more := "+" + strconv.Itoa(len(segs)-i)
		if b.Len()+len(seg)+1+len(more) > maxMetaValue {
			b.WriteString(more)
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// sameNode reports whether the node of a and b match.
func sameNode(a, b catalogEntry) bool {
	return a.node == b.node && a.nodeAddr == b.nodeAddr && maps.Equal(a.nodeMeta, b.nodeMeta)
}

// sameRegistration reports whether the node and service of a and b match
// (the check state aside).
func sameRegistration(a, b catalogEntry) bool {
	return sameNode(a, b) && a.svcID == b.svcID && a.svc.equal(b.svc)
}

// catalogPlan is what the leader writes to bring the catalog in line. Each
// list is sorted by node name.
type catalogPlan struct {
	// register: new entries, or entries whose node differs (written
	// whole: node, service, checks).
	register []catalogEntry
	// update: entries whose node is right but whose service differs (tags,
	// segments, observers meta): the service alone is written, and the check
	// when its state changes too.
	update []catalogEntry
	// pass: entries observed again whose check is critical.
	pass []catalogEntry
	// fail: entries no bridge observes any more whose check is passing;
	// their since is the time of the plan.
	fail []catalogEntry
	// reap: entries unobserved for at least the deregister-after delay.
	reap []catalogEntry
	// unchanged counts entries already right.
	unchanged int
}

// empty reports whether the plan writes nothing.
func (p catalogPlan) empty() bool {
	return len(p.register)+len(p.update)+len(p.pass)+len(p.fail)+len(p.reap) == 0
}

// planCatalog compares the desired set with the catalog. now is the time of
// the plan; an unobserved entry is removed once deregisterAfter has passed
// since it turned critical. With hold set (a leader's start-up grace, while
// bridges may not have published yet) nothing turns critical or is removed.
func planCatalog(sh catalogShape, desired map[netip.AddrPort]*observed, current map[string]catalogEntry,
	now time.Time, deregisterAfter time.Duration, hold bool) catalogPlan {
	var p catalogPlan
	want := make(map[string]bool, len(desired))
	for addr, d := range desired {
		e := sh.entryFor(addr, d)
		want[e.node] = true
		cur, ok := current[e.node]
		switch {
		case !ok || !sameNode(cur, e):
			e.claim = !ok
			p.register = append(p.register, e)
		case !sameRegistration(cur, e):
			e.passing = cur.passing // the write sets it passing if it was not
			p.update = append(p.update, e)
		case !cur.passing:
			p.pass = append(p.pass, e)
		default:
			p.unchanged++
		}
	}
	for node, cur := range current {
		if want[node] {
			continue
		}
		switch {
		case hold:
			p.unchanged++
		case cur.passing:
			cur.passing, cur.since = false, now
			p.fail = append(p.fail, cur)
		case !now.Before(cur.since.Add(deregisterAfter)):
			p.reap = append(p.reap, cur)
		default:
			p.unchanged++
		}
	}
	byNode := func(a, b catalogEntry) int { return strings.Compare(a.node, b.node) }
	for _, l := range [][]catalogEntry{p.register, p.update, p.pass, p.fail, p.reap} {
		slices.SortFunc(l, byNode)
	}
	return p
}

// nextReap is the earliest time an unobserved entry of current is due for
// removal, and false when none is critical.
func nextReap(current map[string]catalogEntry, deregisterAfter time.Duration) (time.Time, bool) {
	var at time.Time
	found := false
	for _, e := range current {
		if e.passing {
			continue
		}
		if t := e.since.Add(deregisterAfter); !found || t.Before(at) {
			at, found = t, true
		}
	}
	return at, found
}

// parseSince reads the time an unobserved entry turned critical from its
// check output; ok is false when the output holds none.
func parseSince(output string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(output, unobservedPrefix)
	if !ok {
		return time.Time{}, false
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	t, err := time.Parse(time.RFC3339Nano, rest)
	return t, err == nil
}

// unobservedOutput is the check output of an entry unobserved since t.
func unobservedOutput(t time.Time) string {
	return unobservedPrefix + t.UTC().Format(time.RFC3339Nano) + " (no live bridge observes it)"
}
