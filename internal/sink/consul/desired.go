package consul

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// This file is the pure part of the sink: what Consul should hold for a
// snapshot and what to write to get there. No I/O, no clock.

// service is what matters of one registered service to decide whether it
// must be written again.
type service struct {
	Name    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
}

func (r service) equal(o service) bool {
	return r.Name == o.Name && r.Address == o.Address && r.Port == o.Port &&
		slices.Equal(r.Tags, o.Tags) && maps.Equal(r.Meta, o.Meta)
}

// endpoint reconstructs the endpoint a service describes (for Diff.Removed).
func (r service) endpoint() endpoint.Endpoint {
	var e endpoint.Endpoint
	if a, err := netip.ParseAddr(r.Address); err == nil && r.Port > 0 && r.Port <= 65535 {
		e.Addr = netip.AddrPortFrom(a, uint16(r.Port))
	}
	if s, err := netip.ParseAddrPort(r.Meta[MetaSourceAddress]); err == nil {
		e.Source = s
	}
	e.Interface = r.Meta[MetaInterface]
	return e
}

// desiredEntry is one server to register.
type desiredEntry struct {
	ep  endpoint.Endpoint
	svc service
}

// shape is what every server a bridge registers shares: the service name,
// the tags, the owner and the fingerprint of the check configuration.
type shape struct {
	service  string
	tags     []string
	bridgeID string
	checks   string
}

func shapeOf(cfg Config) shape {
	return shape{service: cfg.Service, tags: cfg.Tags, bridgeID: cfg.BridgeID, checks: checksFingerprint(cfg)}
}

// desired maps the snapshot to service IDs and services.
func (sh shape) desired(s endpoint.Snapshot) map[string]desiredEntry {
	out := make(map[string]desiredEntry, len(s.Endpoints))
	for _, e := range s.Endpoints {
		if !e.Addr.IsValid() || e.Addr.Port() == 0 {
			continue
		}
		meta := map[string]string{
			MetaManagedBy: ManagedByValue,
			MetaBridgeID:  sh.bridgeID,
			MetaChecks:    sh.checks,
		}
		if e.Interface != "" {
			meta[MetaInterface] = e.Interface
		}
		if e.Source.IsValid() {
			meta[MetaSourceAddress] = e.Source.String()
		}
		out[ServiceID(sh.service, e.Addr)] = desiredEntry{ep: e, svc: service{
			Name:    sh.service,
			Address: e.Addr.Addr().String(),
			Port:    int(e.Addr.Port()),
			Tags:    slices.Clone(sh.tags),
			Meta:    meta,
		}}
	}
	return out
}

// reconcile returns the IDs to (re-)register and to deregister, each sorted,
// and how many desired entries the registry already holds as wanted.
func reconcile(desired map[string]desiredEntry, known map[string]service) (toReg, toDereg []string, unchanged int) {
	for id, d := range desired {
		if k, ok := known[id]; ok && k.equal(d.svc) {
			unchanged++
			continue
		}
		toReg = append(toReg, id)
	}
	for id := range known {
		if _, ok := desired[id]; !ok {
			toDereg = append(toDereg, id)
		}
	}
	slices.Sort(toReg)
	slices.Sort(toDereg)
	return toReg, toDereg, unchanged
}

// diff describes a reconcile as endpoints, sorted.
func diff(desired map[string]desiredEntry, known map[string]service, toReg, toDereg []string, unchanged int) endpoint.Diff {
	d := endpoint.Diff{Unchanged: unchanged}
	for _, id := range toReg {
		d.Added = append(d.Added, desired[id].ep)
	}
	for _, id := range toDereg {
		d.Removed = append(d.Removed, known[id].endpoint())
	}
	slices.SortFunc(d.Added, endpoint.Compare)
	slices.SortFunc(d.Removed, endpoint.Compare)
	return d
}

// checksFingerprint summarises the per-server check configuration; it is
// stored in meta so a restart with other check settings re-registers.
func checksFingerprint(cfg Config) string {
	s := "alias/" + cfg.DeregisterAfter.String()
	switch cfg.Check {
	case CheckTCP:
		s += "+tcp/" + cfg.CheckInterval.String()
	case CheckHTTP:
		s += "+http/" + cfg.CheckInterval.String() + cfg.HTTPPath
	}
	return s
}
