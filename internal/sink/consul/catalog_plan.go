package consul

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

// This file is the catalog's shape of a fleet (package fleet merges and
// plans): a node per server with its service and checks, the meta that
// marks them the fleet's, and the check output that carries the time a
// server went unobserved. No I/O.

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

// catalogSpec is how the catalog spells one server: a node of its own
// (named by the entry's key) with the service on it. The observed check's
// state is the entry's (fleet.Entry.Passing, Since).
type catalogSpec struct {
	nodeAddr string
	nodeMeta map[string]string
	svcID    string
	svc      service
}

// endpoint is the server a spec describes.
func (s catalogSpec) endpoint() endpoint.Endpoint { return s.svc.endpoint() }

// catalogEntry is one server as the catalog holds it (or should hold it).
// New is set on registrations of a node the fleet does not hold yet: the
// node is created only if no node of that name exists, so that a node of
// someone else (another fleet, a hand-registered node, a node with an
// agent) is never overwritten.
type catalogEntry = fleet.Entry[catalogSpec]

// catalogPlan is what the leader writes to bring the catalog in line.
type catalogPlan = fleet.Plan[catalogSpec]

// catalogShape is what every catalog entry of a fleet shares; it spells a
// server as the catalog holds it (fleet.Shape).
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

var _ fleet.Shape[catalogSpec] = catalogShape{}

// Key is the node name of the server at addr.
func (sh catalogShape) Key(addr netip.AddrPort) string {
	return CatalogNodeName(sh.service, sh.fleet, addr)
}

// Spec is the wanted node and service of the server at addr.
func (sh catalogShape) Spec(addr netip.AddrPort, d fleet.Observed) catalogSpec {
	id := sh.Key(addr)
	nodeMeta := map[string]string{MetaManagedBy: ManagedByValue, MetaFleet: sh.fleet}
	if sh.probe != nil {
		nodeMeta[NodeMetaExternal] = "true"
		nodeMeta[NodeMetaProbe] = "true"
	}
	tags := slices.Clone(sh.tags)
	if sh.segmentTag {
		for _, s := range d.Segments {
			tags = append(tags, "segment="+s)
		}
	}
	meta := map[string]string{
		MetaManagedBy: ManagedByValue,
		MetaFleet:     sh.fleet,
		MetaChecks:    sh.checks,
		MetaSegments:  segmentsMeta(d.Segments),
	}
	if sh.observers {
		meta[MetaObservers] = strconv.Itoa(d.Bridges)
	}
	return catalogSpec{
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
	}
}

// Compare: a node that differs is written whole (node, service, checks); a
// service that differs (tags, segments, observers meta) alone.
func (sh catalogShape) Compare(held, want catalogSpec) fleet.Difference {
	switch {
	case held.nodeAddr != want.nodeAddr || !maps.Equal(held.nodeMeta, want.nodeMeta):
		return fleet.Replaced
	case held.svcID != want.svcID || !held.svc.equal(want.svc):
		return fleet.Changed
	}
	return fleet.Same
}

// entryFor is the desired catalog entry of addr, passing.
func (sh catalogShape) entryFor(addr netip.AddrPort, d fleet.Observed) catalogEntry {
	return catalogEntry{Key: sh.Key(addr), Spec: sh.Spec(addr, d), Passing: true}
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
