package catalog

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file reads the fleet's own entries of the catalog: the filter that
// keeps other owners' and other fleets' instances out, and the reads of
// the leader and the relay.

// ownedFilterCatalog selects this fleet's service instances.
func (c *Catalog) ownedFilterCatalog() (string, error) { return ownedFilter(c.cfg.Catalog.KVPrefix) }

// ownedFilter selects the service instances of the fleet whose KV prefix
// is fleet, by their meta (managed-by and bridge-fleet): a filter
// expression for the servers, so that other owners' and other fleets'
// instances never leave them. fleetEntry checks each node too.
func ownedFilter(fleet string) (string, error) {
	q, err := consulclient.QuoteFilterString(fleet)
	if err != nil {
		return "", fmt.Errorf("consul_kv_prefix %q: %w", fleet, err)
	}
	return `Service.Meta["` + consulclient.MetaManagedBy + `"] == "` + consulclient.ManagedByValue + `" and Service.Meta["` + MetaFleet + `"] == ` + q, nil
}

// fleetEntry reports whether se, an instance ownedFilter selected, is on
// a node of the fleet whose KV prefix is fleet: a node with the fleet's
// meta (managed-by and bridge-fleet) that is the server's own (named as
// its service ID: own is true) or the fleet's shared node (named shared).
// The fleet's meta on a node of no name of the fleet's is not the fleet's.
func fleetEntry(se *api.ServiceEntry, fleet, shared string) (own, ok bool) {
	if se.Node == nil || se.Service == nil || se.Node.Meta[consulclient.MetaManagedBy] != consulclient.ManagedByValue || se.Node.Meta[MetaFleet] != fleet {
		return false, false
	}
	switch se.Node.Node {
	case se.Service.ID:
		return true, true
	case shared:
		return false, true
	}
	return false, false
}

// readCatalog reads this fleet's entries, by key: the servers on their own
// nodes and those on the fleet's shared node, whatever the layout
// configured (entries of the other layout are not wanted, so they turn
// critical and are removed like any server no bridge observes). Instances
// of the service that are not this fleet's (other owners, other fleets) are
// filtered out on the server and never touched. The entries share their
// meta maps and tags where they are equal.
func (c *Catalog) readCatalog(ctx context.Context) (map[string]catalogEntry, error) {
	filter, err := c.ownedFilterCatalog()
	if err != nil {
		return nil, err
	}
	c.sharedChecked.Store(false) // read the shared node again at the next write
	now := c.cfg.Clock.Now()
	shared := SharedNodeName(c.cfg.Service, c.cfg.Catalog.KVPrefix)
	var in interner
	out := make(map[string]catalogEntry, c.entries.Load())
	err = c.api.ServiceEntries(c.cfg.Service, (&api.QueryOptions{Filter: filter}).WithContext(ctx), func(se *api.ServiceEntry) {
		own, ok := fleetEntry(se, c.cfg.Catalog.KVPrefix, shared)
		if !ok {
			return
		}
		e := catalogEntry{Key: se.Node.Node, Spec: &catalogSpec{
			node:  se.Node.Node,
			svcID: se.Service.ID,
			svc: consulclient.Service{Name: se.Service.Service, Address: se.Service.Address, Port: se.Service.Port,
				Tags: in.tags(se.Service.Tags), Meta: in.meta(se.Service.Meta)},
		}}
		if own { // the server's own node
			e.Spec.nodeAddr, e.Spec.nodeMeta = se.Node.Address, in.meta(se.Node.Meta)
			e.Spec.svcID = e.Spec.node // one string for both
			// The same for the node's address when it is the service's.
			if e.Spec.nodeAddr == e.Spec.svc.Address {
				e.Spec.nodeAddr = e.Spec.svc.Address
			}
		} else {
			e.Key = sharedKey(shared, se.Service.ID)
		}
		observed, app, probe := e.Spec.checkID(ObservedCheckID), e.Spec.checkID(AppCheckID), e.Spec.checkID(ProbeCheckID)
		for _, chk := range se.Checks {
			switch chk.CheckID {
			case observed:
				e.Passing = chk.Status == api.HealthPassing
				if !e.Passing {
					since, ok := parseSince(chk.Output)
					if !ok {
						since = now // unknown: start the delay now
					}
					e.Since = since
				}
			case app:
				e.Spec.app = in.app(chk.Status, chk.Output)
			case probe:
				e.Spec.probe = true
			}
		}
		out[e.Key] = e
	})
	if err != nil {
		return nil, consulclient.OpError("read service "+c.cfg.Service, c.redact(err), c.catalogRules)
	}
	c.entries.Store(int64(len(out)))
	return out, nil
}

// interner hands out one copy of equal meta maps, tag lists and app
// checks, so that the leader's view of 10,000 servers holds a few maps,
// not 20,000.
type interner struct {
	metas map[string]map[string]string
	tagss map[string][]string
	apps  map[appCheck]*appCheck
}

// app is the app check of status and output.
func (in *interner) app(status, output string) *appCheck {
	k := appCheck{status: status, output: output}
	if v, ok := in.apps[k]; ok {
		return v
	}
	if in.apps == nil {
		in.apps = map[appCheck]*appCheck{}
	}
	in.apps[k] = &k
	return &k
}

func (in *interner) meta(m map[string]string) map[string]string {
	k := exactKey(m)
	if v, ok := in.metas[k]; ok {
		return v
	}
	if in.metas == nil {
		in.metas = map[string]map[string]string{}
	}
	in.metas[k] = m
	return m
}

func (in *interner) tags(t []string) []string {
	if t == nil {
		t = []string{}
	}
	var b strings.Builder
	for _, s := range t {
		b.WriteString(strconv.Itoa(len(s)) + ":" + s)
	}
	k := b.String()
	if v, ok := in.tagss[k]; ok {
		return v
	}
	if in.tagss == nil {
		in.tagss = map[string][]string{}
	}
	in.tagss[k] = t
	return t
}

// exactKey is m as a string that no other map has: sorted keys, each key
// and value preceded by its length.
func exactKey(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(strconv.Itoa(len(k)) + ":" + k + strconv.Itoa(len(m[k])) + ":" + m[k])
	}
	return b.String()
}
