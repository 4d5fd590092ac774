package catalog

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file is the catalog's shape of a fleet (package fleet merges and
// plans): a node per server with its service and checks, the meta that
// marks them the fleet's, the check output that carries the time a
// server went unobserved, and the app check that carries the fleet's
// verdict. No I/O.

// Meta, node meta and check names written in catalog mode.
const (
	// MetaFleet scopes ownership to one KV prefix: bridges with another
	// prefix (another fleet) never touch these entries.
	MetaFleet     = "bridge-fleet"
	MetaSegments  = "segments"
	MetaObservers = "observers"
	// External-node meta read by consul-esm, which catalog mode wrote on
	// the servers' nodes with --consul-check before the bridges ran app
	// checks themselves. It is no longer written: the leader rewrites a
	// node that carries it (consul-esm would ping such a node and reap it
	// after its node_reconnect_timeout).
	NodeMetaExternal = "external-node"
	NodeMetaProbe    = "external-probe"

	// ObservedCheckID is the check the leader keeps on every server:
	// passing while at least one live bridge observes it.
	ObservedCheckID = "udp-discovery-bridge:observed"
	// AppCheckID is the check that carries the fleet's app check verdict
	// (fleet.Merge): passing while it is ready, critical while it is
	// pending or failing. The leader writes it on a server once any of its
	// observers runs an app check (app_check), and removes it when none
	// does any more; a fleet without app checks has none.
	AppCheckID = "udp-discovery-bridge:app"
	// ProbeCheckID is the tcp/http check definition catalog mode wrote for
	// consul-esm with --consul-check, before the bridges ran app checks
	// themselves (consul_check now configures the bridges' app check). It
	// is no longer written, and an entry that has it differs from the
	// wanted one: the leader deletes it (and the external-node meta) in
	// its first write after it read the catalog, when it starts leading
	// and at every resync.
	ProbeCheckID = "udp-discovery-bridge:probe"

	// unobservedPrefix starts the Output of a critical observed check; the
	// time after it is when the last observer went away, so that any leader
	// (after a failover too) knows when the server is due for removal.
	unobservedPrefix = "unobserved since "
	// maxMetaValue is Consul's limit on a meta value.
	maxMetaValue = 512

	// appCheckName is the Name of the app check.
	appCheckName = "app check by udp-discovery-bridge"
)

// catalogSpec is how the catalog spells one server: its service, on a node
// of its own (node per server: the node is named like the service) or on
// the fleet's shared node, and its app check. The observed check's state
// is the entry's (fleet.Entry.Passing, Since). Specs built by one shape
// share their maps and app checks: nothing modifies a spec's maps, slices
// or app check in place.
type catalogSpec struct {
	// node is the node the service is on.
	node string
	// nodeAddr and nodeMeta are the server's own node (node per server);
	// empty on the shared node, which ensureSharedNode writes.
	nodeAddr string
	nodeMeta map[string]string
	svcID    string
	svc      consulclient.Service
	// app is the server's app check (AppCheckID); nil when it has none.
	app *appCheck
	// probe is set on a held entry that still has the consul-esm check
	// (ProbeCheckID), which the leader deletes; never on a wanted one.
	probe bool
}

// shared reports whether the server is on the fleet's shared node.
func (s *catalogSpec) shared() bool { return s.node != s.svcID }

// checkID is the ID of the server's check named base (ObservedCheckID,
// ProbeCheckID): check IDs are unique per node, so on the shared node each
// server's carry its service ID.
func (s *catalogSpec) checkID(base string) string {
	if s.shared() {
		return base + ":" + s.svcID
	}
	return base
}

// endpoint is the server a spec describes.
func (s *catalogSpec) endpoint() endpoint.Endpoint { return s.svc.Endpoint() }

// catalogEntry is one server as the catalog holds it (or should hold it).
// New is set on registrations of a node the fleet does not hold yet: the
// node is created only if no node of that name exists, so that a node of
// someone else (another fleet, a hand-registered node, a node with an
// agent) is never overwritten.
//
// An entry holds its spec by pointer: the plan's registration, the leader's
// view after the write and every copy of the entry share one spec (10,000
// servers: 1.4 MiB of specs once, not once per copy, and a view of 72
// bytes per server). A spec is never modified once an entry holds it.
type catalogEntry = fleet.Entry[*catalogSpec]

// catalogPlan is what the leader writes to bring the catalog in line.
type catalogPlan = fleet.Plan[*catalogSpec]

// catalogShape is what every catalog entry of a fleet shares; it spells a
// server as the catalog holds it (fleet.Shape). Build it with
// Catalog.shape.
type catalogShape struct {
	service    string
	tags       []string
	fleet      string // the KV prefix
	checks     string // fingerprint of the check configuration
	segmentTag bool
	observers  bool // the observers meta (consul_observers_meta)
	// sharedNode is the fleet's shared node (LayoutSharedNode); "" for a
	// node per server.
	sharedNode string
	// nodeMeta is the meta of every server's own node (node per server),
	// one map for all.
	nodeMeta map[string]string
	// metas holds the service meta maps handed out, one per distinct
	// value: 10,000 servers of one segment share one.
	metas *metaCache
}

var _ fleet.Shape[*catalogSpec] = catalogShape{}

// sharedKey is the key of the entry of the service svcID on the shared node
// node: never a node name (node names hold no '/').
func sharedKey(node, svcID string) string { return node + "/" + svcID }

// Key is the entry's key of the server at addr: its node's name (node per
// server) or "<shared node>/<service ID>".
func (sh catalogShape) Key(addr netip.AddrPort) string {
	id := NodeName(sh.service, sh.fleet, addr)
	if sh.sharedNode != "" {
		return sharedKey(sh.sharedNode, id)
	}
	return id
}

// Spec is the wanted node and service of the server at addr whose key is
// key (Key(addr)): its node name and service ID are the key, or the key's
// tail on the shared node, so they share its bytes.
func (sh catalogShape) Spec(key string, addr netip.AddrPort, d fleet.Observed) *catalogSpec {
	id := key
	if sh.sharedNode != "" {
		id = key[len(sh.sharedNode)+1:]
	}
	tags := sh.tags
	if sh.segmentTag && len(d.Segments) > 0 {
		tags = slices.Clip(slices.Clone(sh.tags))
		for _, s := range d.Segments {
			tags = append(tags, "segment="+s)
		}
	}
	observers := -1
	if sh.observers {
		observers = d.Bridges
	}
	spec := &catalogSpec{
		node:  id,
		svcID: id,
		svc: consulclient.Service{
			Name:    sh.service,
			Address: addr.Addr().String(),
			Port:    int(addr.Port()),
			Tags:    tags,
			Meta:    sh.metas.get(sh, segmentsMeta(d.Segments), observers),
		},
	}
	if wantsApp(d) {
		spec.app = sh.metas.app(d.Health, d.Output)
	}
	if sh.sharedNode != "" {
		spec.node = sh.sharedNode
	} else {
		spec.nodeAddr, spec.nodeMeta = spec.svc.Address, sh.nodeMeta
	}
	return spec
}

// serverNodeMeta is the meta of a server's own node (node per server).
func (sh catalogShape) serverNodeMeta() map[string]string {
	return map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: sh.fleet}
}

// sharedNodeMeta is the meta of the fleet's shared node.
func (sh catalogShape) sharedNodeMeta() map[string]string {
	return map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: sh.fleet}
}

// metaCache hands out one service meta map per distinct value, and one app
// check per distinct verdict; safe for concurrent use.
type metaCache struct {
	mu   sync.Mutex
	m    map[metaKeyOf]map[string]string
	apps map[verdict]*appCheck
}

// verdict is the fleet's verdict on a server's app check.
type verdict struct {
	health endpoint.Health
	output string
}

// app returns the app check of the verdict h with output (appCheckOf),
// built once per distinct verdict: a plan of 10,000 servers holds a few
// checks, and builds no string per server. Without a cache every call
// builds its own.
func (c *metaCache) app(h endpoint.Health, output string) *appCheck {
	if c == nil {
		a := appCheckOf(h, output)
		return &a
	}
	k := verdict{h, output}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.apps[k]; ok {
		return p
	}
	if c.apps == nil {
		c.apps = map[verdict]*appCheck{}
	}
	a := appCheckOf(h, output)
	c.apps[k] = &a
	return &a
}

// metaKeyOf is what varies in a service's meta; observers is -1 without
// the observers meta.
type metaKeyOf struct {
	segments  string
	observers int
}

// get returns the service meta of a server seen on segments by observers
// bridges (observers < 0: no observers meta). Without a cache (a shape
// built by hand in a test) every call builds its own map.
func (c *metaCache) get(sh catalogShape, segments string, observers int) map[string]string {
	build := func() map[string]string {
		meta := map[string]string{
			consulclient.MetaManagedBy: consulclient.ManagedByValue,
			MetaFleet:                  sh.fleet,
			consulclient.MetaChecks:    sh.checks,
			MetaSegments:               segments,
		}
		if observers >= 0 {
			meta[MetaObservers] = strconv.Itoa(observers)
		}
		return meta
	}
	if c == nil {
		return build()
	}
	k := metaKeyOf{segments, observers}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.m[k]; ok {
		return m
	}
	if c.m == nil {
		c.m = map[metaKeyOf]map[string]string{}
	}
	m := build()
	c.m[k] = m
	return m
}

// Compare: a server whose node differs is written whole (node, service,
// checks); a service that differs (tags, segments, observers meta), an app
// check that differs (the fleet's verdict changed, or no observer runs app
// checks any more) or a consul-esm check left over is Changed, and the
// writer rewrites what differs of it alone (writePartsOf).
func (sh catalogShape) Compare(held, want *catalogSpec) fleet.Difference {
	switch {
	case held.node != want.node || held.nodeAddr != want.nodeAddr || !maps.Equal(held.nodeMeta, want.nodeMeta):
		return fleet.Replaced
	case held.svcID != want.svcID || !held.svc.Equal(want.svc) || !sameApp(held.app, want.app) || held.probe:
		return fleet.Changed
	}
	return fleet.Same
}

// Addr is the address of the server s spells: its service's address and
// port (the zero AddrPort when the catalog holds something else there).
func (catalogShape) Addr(s *catalogSpec) netip.AddrPort { return s.endpoint().Addr }

// entryFor is the desired catalog entry of addr, passing.
func (sh catalogShape) entryFor(addr netip.AddrPort, d fleet.Observed) catalogEntry {
	key := sh.Key(addr)
	return catalogEntry{Key: key, Spec: sh.Spec(key, addr, d), Passing: true}
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

// catalogChecksFingerprint is the consulclient.MetaChecks value of catalog mode's
// services: what agent mode's agentChecksFingerprint says without a
// consul_check, which catalog mode no longer turns into a check of its own
// (the bridges run the app check; their verdict is the app check's). A
// fleet that had --consul-check has its services rewritten once, with the
// consul-esm check deleted.
func catalogChecksFingerprint(cfg Config) string {
	return "alias/" + cfg.DeregisterAfter.String()
}
