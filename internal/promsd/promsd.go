// Package promsd turns the bridge's desired set into Prometheus service
// discovery target groups (the JSON of http_sd and file_sd) and serves them
// over HTTP: the full list every time, 200 with [] when there are no
// servers, 503 before the first complete round and while rounds fail, so
// that Prometheus keeps the targets it last had. By default a list names
// the ready servers only (with an app check, those whose check passes);
// sd_targets all names every held server, labelled with its health.
package promsd

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// The labels of every target group. Prometheus drops __meta_ labels after
// relabelling, so a scrape config copies the ones it wants (docs/sinks/prometheus.md).
const (
	LabelInterface = "__meta_udb_interface"
	LabelSegment   = "__meta_udb_segment"
	LabelBridgeID  = "__meta_udb_bridge_id"
	// LabelHealth is each target's health (ready, pending, failing), on
	// the groups of a list that selects All.
	LabelHealth = "__meta_udb_health"
)

// Selection says which held servers a list names (sd_targets).
type Selection string

// The values of sd_targets.
const (
	// Ready lists the ready servers only: Prometheus scrapes what serves.
	// Without an app check every held server is ready.
	Ready Selection = "ready"
	// All lists every held server, each group labelled LabelHealth.
	All Selection = "all"
)

// Group is one Prometheus target group: servers sharing one label set.
type Group struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// Identity is what the labels say about the bridge that saw a server.
type Identity struct {
	// BridgeID is this bridge's identity (bridge_id).
	BridgeID string
	// Segment names this bridge's LAN segment; empty: the network of the
	// interface each reply came in on (as catalog mode's observations).
	Segment string
}

// Groups returns the target groups of the servers of eps that sel names
// (every one with All, the ready ones otherwise): one group per distinct
// (interface, segment) and, with All, health, ordered by segment,
// interface then health, each with its targets ("ip:port", IPv4-mapped
// addresses unmapped) in address order. Labels carry no timestamps (a
// changing label makes new series; the health label changes only on a
// transition); an empty value is left out, as Prometheus treats it as
// unset. eps with an invalid address or port 0 are skipped. The result is
// never nil.
func Groups(id Identity, sel Selection, eps []endpoint.Endpoint) []Group {
	type key struct{ iface, segment, health string }
	byKey := map[key]int{}
	groups := []Group{}
	for _, e := range endpoint.Sorted(eps) {
		if !e.Addr.IsValid() || e.Addr.Port() == 0 {
			continue
		}
		k := key{iface: e.Interface, segment: id.Segment}
		if sel == All {
			k.health = e.Check.State.String()
		} else if !e.Check.State.IsReady() {
			continue
		}
		if k.segment == "" && e.Network.IsValid() {
			k.segment = e.Network.Masked().String()
		}
		i, ok := byKey[k]
		if !ok {
			labels := map[string]string{}
			for name, v := range map[string]string{LabelInterface: k.iface, LabelSegment: k.segment, LabelBridgeID: id.BridgeID, LabelHealth: k.health} {
				if v != "" {
					labels[name] = v
				}
			}
			i = len(groups)
			byKey[k] = i
			groups = append(groups, Group{Labels: labels})
		}
		groups[i].Targets = append(groups[i].Targets, netip.AddrPortFrom(e.Addr.Addr().Unmap(), e.Addr.Port()).String())
	}
	for i := range groups {
		groups[i].Targets = slices.Compact(groups[i].Targets)
	}
	slices.SortFunc(groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(a.Labels[LabelSegment], b.Labels[LabelSegment]), cmp.Compare(a.Labels[LabelInterface], b.Labels[LabelInterface]),
			cmp.Compare(a.Labels[LabelHealth], b.Labels[LabelHealth]))
	})
	return groups
}

// Marshal returns the JSON of groups (encoding/json sorts label names).
func Marshal(groups []Group) ([]byte, error) {
	if groups == nil {
		groups = []Group{}
	}
	b, err := json.Marshal(groups)
	if err != nil {
		return nil, fmt.Errorf("encode prometheus target groups: %w", err)
	}
	return b, nil
}
