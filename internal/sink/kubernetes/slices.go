package kubernetes

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
)

// This file is the EndpointSlices' shape of a fleet: a server is an endpoint
// of the slice set of its port; a server keeps its slot (its slice) for as
// long as it is there, a new one fills the first slice of its port with
// room, and a slice is written only when one of its own endpoints changed.
//
// An endpoint's conditions say the server's state, in Kubernetes' own
// meaning (KEP-1672: ready, may receive new traffic; serving, serves
// regardless of termination; terminating, on its way out):
//
//	state                           ready  serving  terminating
//	observed, ready                 true   true     false
//	observed, pending or failing    false  false    false
//	unobserved                      false  false    true
//
// Observed is at least one live bridge seeing the server; ready is the
// fleet's merged Health (every server is ready without app checks). A
// pending or failing server is kept: it is not on its way out, and only
// an unobserved one is removed, deregister_after after it turned
// unobserved. Pending and failing look alike in a slice (bridge explain
// tells them apart), so a server moving between the two writes nothing.

// spec is how a slice spells a server: its address and port (the key), and
// whether it is ready (observed servers; the fleet's merged Health).
type spec struct {
	addr  netip.AddrPort
	ready bool
}

// shape spells servers as endpoints (fleet.Shape).
type shape struct{}

func (shape) Key(a netip.AddrPort) string { return a.String() }
func (shape) Spec(_ string, a netip.AddrPort, o fleet.Observed) spec {
	return spec{addr: a, ready: o.Health.IsReady()}
}
func (shape) Addr(s spec) netip.AddrPort { return s.addr }

// Compare rewrites an endpoint in place (its conditions) when its
// readiness changed.
func (shape) Compare(held, want spec) fleet.Difference {
	if held.ready != want.ready {
		return fleet.Changed
	}
	return fleet.Same
}
func sliceName(service string, port uint16, n int) string {
	return service + "-" + strconv.Itoa(int(port)) + "-" + strconv.Itoa(n)
}

var _ fleet.Shape[spec] = shape{}

// refusal says why Kubernetes refuses a as an endpoint address (or
// addressType IPv4 cannot hold it).
func refusal(a netip.Addr) (string, bool) {
	a = a.Unmap()
	switch {
	case !a.Is4():
		return "not IPv4 (the slices' addressType is IPv4)", true
	case a.IsLoopback():
		return "loopback", true
	case a.IsLinkLocalUnicast():
		return "link-local", true
	case a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "not a unicast address", true
	}
	return "", false
}

// slot is one endpoint of a slice.
type slot struct {
	addr     netip.Addr
	observed bool      // at least one live bridge observes it
	ready    bool      // observed, and the fleet's Health is Ready
	since    time.Time // when it turned unobserved
}

// conditions are the endpoint's conditions for the slot's state.
func (e slot) conditions() kubeapi.Conditions {
	t, f := true, false
	switch {
	case !e.observed:
		return kubeapi.Conditions{Ready: &f, Serving: &f, Terminating: &t}
	case e.ready:
		return kubeapi.Conditions{Ready: &t, Serving: &t, Terminating: &f}
	}
	return kubeapi.Conditions{Ready: &f, Serving: &f, Terminating: &f}
}

// sameConditions reports whether read conditions o say what c (written by
// slot.conditions) says: an absent ready is true, an absent serving is
// ready, an absent terminating is false.
func sameConditions(c, o kubeapi.Conditions) bool {
	flag := func(p *bool, def bool) bool {
		if p == nil {
			return def
		}
		return *p
	}
	ready := o.IsReady()
	return *c.Ready == ready && *c.Serving == flag(o.Serving, ready) && *c.Terminating == flag(o.Terminating, false)
}

// sliceState is one slice as last read or written.
type sliceState struct {
	name, rv string
	port     uint16
	eps      []slot
	dirty    bool // changed since written
	create   bool // not in the API yet
}

func (s *sliceState) index(a netip.Addr) int {
	return slices.IndexFunc(s.eps, func(e slot) bool { return e.addr == a })
}

// layout is the fleet's slices: which slice holds each server.
type layout struct {
	byName map[string]*sliceState
	where  map[netip.AddrPort]string
}

func newLayout() *layout {
	return &layout{byName: map[string]*sliceState{}, where: map[netip.AddrPort]string{}}
}

// parseSlice reads one of our slices; an endpoint listed twice counts once.
// An endpoint is unobserved when the unobserved-since annotation lists it
// (since then) or when it is terminating (since now, if not listed);
// otherwise it is observed, ready or not. An endpoint whose conditions
// differ from what its state writes (a slice written by an older bridge,
// whose unobserved endpoints were not terminating) marks the slice to be
// rewritten.
func parseSlice(es kubeapi.EndpointSlice, now time.Time) (*sliceState, error) {
	if len(es.Ports) != 1 || es.Ports[0].Port < 1 || es.Ports[0].Port > 65535 {
		return nil, fmt.Errorf("endpointslice %s: want exactly one port, found %d", es.Metadata.Name, len(es.Ports))
	}
	s := &sliceState{name: es.Metadata.Name, rv: es.Metadata.ResourceVersion, port: uint16(es.Ports[0].Port)}
	var since map[string]string
	if v := es.Metadata.Annotations[AnnotUnobserved]; v != "" {
		_ = json.Unmarshal([]byte(v), &since) // unreadable: the delay starts now
	}
	for _, ep := range es.Endpoints {
		if len(ep.Addresses) == 0 {
			continue
		}
		a, err := netip.ParseAddr(ep.Addresses[0])
		if err != nil || s.index(a) >= 0 {
			s.dirty = true // rewritten without it
			continue
		}
		c := ep.Conditions
		ready := c.Ready == nil || *c.Ready
		terminating := c.Terminating != nil && *c.Terminating
		t, listed := since[a.String()]
		sl := slot{addr: a, observed: true, ready: ready}
		if listed || terminating {
			sl.observed, sl.ready, sl.since = false, false, now
			if v, err := time.Parse(time.RFC3339Nano, t); err == nil {
				sl.since = v
			}
		}
		if !sameConditions(sl.conditions(), c) {
			s.dirty = true
		}
		s.eps = append(s.eps, sl)
	}
	return s, nil
}

// add puts s in the layout; an endpoint already in another slice is dropped
// from s (the slice is marked to be rewritten without it).
func (l *layout) add(s *sliceState) {
	l.byName[s.name] = s
	kept := s.eps[:0]
	for _, e := range s.eps {
		k := netip.AddrPortFrom(e.addr, s.port)
		if _, dup := l.where[k]; dup {
			s.dirty = true
			continue
		}
		l.where[k] = s.name
		kept = append(kept, e)
	}
	s.eps = kept
}

// entries is the layout as the fleet's entries, by key.
func (l *layout) entries() map[string]fleet.Entry[spec] {
	out := make(map[string]fleet.Entry[spec], len(l.where))
	for _, s := range l.byName {
		for _, e := range s.eps {
			a := netip.AddrPortFrom(e.addr, s.port)
			out[a.String()] = fleet.Entry[spec]{Key: a.String(), Spec: spec{addr: a, ready: e.ready}, Passing: e.observed, Since: e.since}
		}
	}
	return out
}

// slot returns the slice and index of the server at a.
func (l *layout) slot(a netip.AddrPort) (*sliceState, int) {
	name, ok := l.where[a]
	if !ok {
		return nil, -1
	}
	s := l.byName[name]
	return s, s.index(a.Addr())
}

// set marks the server at a observed, ready or not (since zero), or
// unobserved since then (ready is then ignored), placing it when it has no
// slot yet: in the first slice of its port (by name) with fewer than max
// endpoints, else in a new slice. Its slice is marked to be written when
// its state changed.
func (l *layout) set(service string, a netip.AddrPort, observed, ready bool, since time.Time, max int) {
	s, i := l.slot(a)
	if s == nil {
		s = l.room(service, a.Port(), max)
		s.eps = append(s.eps, slot{addr: a.Addr()})
		i = len(s.eps) - 1
		l.where[a] = s.name
		s.dirty = true
	}
	e := &s.eps[i]
	if observed {
		since = time.Time{}
	} else {
		ready = false
	}
	if e.observed != observed || e.ready != ready || !e.since.Equal(since) {
		e.observed, e.ready, e.since = observed, ready, since
		s.dirty = true
	}
}

// room is the first slice of port with room, or a new one of the lowest
// free number.
func (l *layout) room(service string, port uint16, max int) *sliceState {
	var same []*sliceState
	for _, s := range l.byName {
		if s.port == port {
			same = append(same, s)
		}
	}
	slices.SortFunc(same, func(a, b *sliceState) int { return cmp.Compare(a.name, b.name) })
	for _, s := range same {
		if len(s.eps) < max {
			return s
		}
	}
	for n := 0; ; n++ {
		name := sliceName(service, port, n)
		if _, used := l.byName[name]; !used {
			s := &sliceState{name: name, port: port, create: true, dirty: true}
			l.byName[name] = s
			return s
		}
	}
}

// remove takes the server at a out of its slice, leaving a hole that the
// next add fills.
func (l *layout) remove(a netip.AddrPort) {
	s, i := l.slot(a)
	if s == nil {
		return
	}
	s.eps = slices.Delete(s.eps, i, i+1)
	delete(l.where, a)
	s.dirty = true
}

// dirty lists the slices to write, by name.
func (l *layout) dirty() []*sliceState {
	var out []*sliceState
	for _, name := range slices.Sorted(maps.Keys(l.byName)) {
		if s := l.byName[name]; s.dirty {
			out = append(out, s)
		}
	}
	return out
}

// object is the slice as written: every endpoint with its conditions, the
// times of those unobserved in an annotation (so any leader knows when
// they are due for removal; an observed endpoint that is not ready is not
// on its way out and is not listed), the resourceVersion as precondition.
func (s *sliceState) object(ns, service, portName string, owner *kubeapi.OwnerReference) kubeapi.EndpointSlice {
	es := kubeapi.EndpointSlice{APIVersion: kubeapi.EndpointSlices.APIVersion(), Kind: kubeapi.EndpointSlices.Kind(), AddressType: "IPv4",
		Metadata: kubeapi.Meta{Name: s.name, Namespace: ns, ResourceVersion: s.rv, Labels: map[string]string{
			LabelService: service, LabelManagedBy: ManagedBy, LabelFleet: service}},
		Ports:     []kubeapi.SlicePort{{Name: portName, Port: int32(s.port), Protocol: "TCP"}},
		Endpoints: make([]kubeapi.Endpoint, 0, len(s.eps))}
	if owner != nil {
		es.Metadata.OwnerReferences = []kubeapi.OwnerReference{*owner}
	}
	since := map[string]string{}
	for _, e := range s.eps {
		if !e.observed {
			since[e.addr.String()] = e.since.UTC().Format(time.RFC3339Nano)
		}
		es.Endpoints = append(es.Endpoints, kubeapi.Endpoint{Addresses: []string{e.addr.String()}, Conditions: e.conditions()})
	}
	if len(since) > 0 {
		b, _ := json.Marshal(since) // a map of strings always encodes
		es.Metadata.Annotations = map[string]string{AnnotUnobserved: string(b)}
	}
	return es
}

// describe names the servers of s, for errors.
func (s *sliceState) describe() string {
	parts := make([]string, 0, min(len(s.eps), 3))
	for _, e := range s.eps[:min(len(s.eps), 3)] {
		parts = append(parts, e.addr.String())
	}
	if len(s.eps) > 3 {
		parts = append(parts, "...")
	}
	return s.name + " [" + strings.Join(parts, " ") + "]"
}
