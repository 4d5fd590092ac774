package kubernetes

import (
	"context"
	"encoding/json"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// Unit tests of the endpoints' conditions: they follow the fleet's merged
// health (fleet.Observed.Health) and whether any live bridge observes the
// server.

// cond is an endpoint's conditions as a test reads them.
type cond struct{ ready, serving, terminating bool }

var (
	condReady      = cond{true, true, false}
	condNotReady   = cond{false, false, false}
	condUnobserved = cond{false, false, true}
)

// endpointsOf returns every endpoint of the slices by address, with its
// conditions, and the slice that holds it.
func endpointsOf(t *testing.T, s *Sink) (map[string]cond, map[string]string) {
	t.Helper()
	conds, where := map[string]cond{}, map[string]string{}
	for name, es := range readSlices(t, s) {
		for _, ep := range es.Endpoints {
			c := ep.Conditions
			if c.Ready == nil || c.Serving == nil || c.Terminating == nil {
				t.Fatalf("%s: %s: conditions not all written: %+v", name, ep.Addresses[0], c)
			}
			conds[ep.Addresses[0]] = cond{*c.Ready, *c.Serving, *c.Terminating}
			where[ep.Addresses[0]] = name
		}
	}
	return conds, where
}

// versions returns each slice's resourceVersion.
func versions(t *testing.T, s *Sink) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, es := range readSlices(t, s) {
		out[name] = es.Metadata.ResourceVersion
	}
	return out
}

// rewritten names the slices whose resourceVersion moved.
func rewritten(before, after map[string]string) []string {
	var out []string
	for name, rv := range after {
		if before[name] != rv {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// unobservedSince reads a slice's unobserved-since annotation.
func unobservedSince(t *testing.T, es kubeapi.EndpointSlice) map[string]string {
	t.Helper()
	v, ok := es.Metadata.Annotations[AnnotUnobserved]
	if !ok {
		return nil
	}
	var since map[string]string
	if err := json.Unmarshal([]byte(v), &since); err != nil {
		t.Fatalf("%s: annotation %q: %v", es.Metadata.Name, v, err)
	}
	return since
}

// TestSlicesFollowHealth walks servers through the states: observed and
// ready, observed pending or failing, unobserved; each change of
// readiness rewrites exactly the one slice holding the endpoint, quiet
// rounds and a move between pending and failing rewrite none, a failing
// server is never removed, an unobserved one is terminating and removed
// deregister_after later.
func TestSlicesFollowHealth(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	cfg := testConfig("a")
	cfg.MaxPerSlice = 10
	s, io := leading(t, f, clk, cfg)
	all := addrs(25, 8000) // three slices
	want := desired(all)
	for _, a := range all {
		want[a] = fleet.Observed{Bridges: 1, Health: endpoint.Pending}
	}
	round(t, io, want, clk.Now())
	conds, where := endpointsOf(t, s)
	for _, a := range all {
		if conds[a.Addr().String()] != condNotReady {
			t.Fatalf("new pending %s: %+v, want not ready, not serving, not terminating", a, conds[a.Addr().String()])
		}
	}
	x, y := all[3], all[17] // in the first and the second slice
	steps := []struct {
		name    string
		change  func()
		want    map[netip.AddrPort]cond
		written []string // slices rewritten
	}{
		{"all turn ready", func() {
			for _, a := range all {
				want[a] = fleet.Observed{Bridges: 1}
			}
		}, map[netip.AddrPort]cond{x: condReady, y: condReady}, []string{"django-8000-0", "django-8000-1", "django-8000-2"}},
		{"quiet", func() {}, nil, nil},
		{"x fails", func() { want[x] = fleet.Observed{Bridges: 1, Health: endpoint.Failing} },
			map[netip.AddrPort]cond{x: condNotReady, y: condReady}, []string{where[x.Addr().String()]}},
		{"x still failing, seen by one more bridge", func() { want[x] = fleet.Observed{Bridges: 2, Health: endpoint.Failing} }, nil, nil},
		{"x failing to pending: no change a slice shows", func() { want[x] = fleet.Observed{Bridges: 2, Health: endpoint.Pending} }, nil, nil},
		{"y fails, x ready", func() {
			want[x] = fleet.Observed{Bridges: 1}
			want[y] = fleet.Observed{Bridges: 1, Health: endpoint.Failing}
		}, map[netip.AddrPort]cond{x: condReady, y: condNotReady}, []string{where[x.Addr().String()], where[y.Addr().String()]}},
		{"y unobserved", func() { delete(want, y) }, map[netip.AddrPort]cond{y: condUnobserved}, []string{where[y.Addr().String()]}},
		{"y observed again, failing", func() { want[y] = fleet.Observed{Bridges: 1, Health: endpoint.Failing} },
			map[netip.AddrPort]cond{y: condNotReady}, []string{where[y.Addr().String()]}},
		{"y unobserved again", func() { delete(want, y) }, map[netip.AddrPort]cond{y: condUnobserved}, []string{where[y.Addr().String()]}},
		{"y observed again, ready", func() { want[y] = fleet.Observed{Bridges: 1} },
			map[netip.AddrPort]cond{y: condReady}, []string{where[y.Addr().String()]}},
	}
	for _, st := range steps {
		before := versions(t, s)
		st.change()
		p, n := round(t, io, want, clk.Now())
		if got := rewritten(before, versions(t, s)); !slices.Equal(got, slices.Sorted(slices.Values(st.written))) {
			t.Errorf("%s: slices rewritten %v, want %v (plan %+v)", st.name, got, st.written, p)
		}
		if n != len(st.written) {
			t.Errorf("%s: %d writes, want %d", st.name, n, len(st.written))
		}
		conds, _ := endpointsOf(t, s)
		for a, c := range st.want {
			if conds[a.Addr().String()] != c {
				t.Errorf("%s: %s is %+v, want %+v", st.name, a, conds[a.Addr().String()], c)
			}
		}
		// Only unobserved endpoints are due for removal.
		for name, es := range readSlices(t, s) {
			for addr := range unobservedSince(t, es) {
				if conds[addr] != condUnobserved {
					t.Errorf("%s: %s lists %s as unobserved, which is %+v", st.name, name, addr, conds[addr])
				}
			}
		}
	}

	// A failing server, observed, is never removed: not after
	// deregister_after, nor by a new leader reading the slices afresh.
	want[x] = fleet.Observed{Bridges: 1, Health: endpoint.Failing}
	round(t, io, want, clk.Now())
	io2 := newLeaderIO(s, zerolog.Nop())
	for range 5 {
		clk.Advance(cfg.DeregisterAfter)
		if p, n := round(t, io2, want, clk.Now()); n != 0 || !p.Empty() {
			t.Fatalf("rounds of a failing server: plan %+v, %d writes; want none", p, n)
		}
	}
	if conds, _ := endpointsOf(t, s); conds[x.Addr().String()] != condNotReady {
		t.Fatalf("failing %s: %+v", x, conds[x.Addr().String()])
	}

	// An unobserved one is: deregister_after after it turned unobserved.
	delete(want, x)
	round(t, io2, want, clk.Now())
	clk.Advance(cfg.DeregisterAfter)
	if p, n := round(t, io2, want, clk.Now()); len(p.Remove) != 1 || p.Remove[0].Key != x.String() || n != 1 {
		t.Fatalf("removal of unobserved %s: plan %+v, %d writes", x, p, n)
	}
	if conds, _ := endpointsOf(t, s); len(conds) != 24 {
		t.Fatalf("%d endpoints left, want 24", len(conds))
	}
}

// TestSlicesReadBackHealth checks that a new leader reads every state back
// from the slices as it was written: no write follows, and the entries
// carry the observed state, the readiness and the unobserved time.
func TestSlicesReadBackHealth(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	ready, failing, gone := netip.MustParseAddrPort("10.213.0.1:8000"), netip.MustParseAddrPort("10.213.0.2:8000"), netip.MustParseAddrPort("10.213.0.3:8000")
	want := map[netip.AddrPort]fleet.Observed{ready: {Bridges: 1}, failing: {Bridges: 1, Health: endpoint.Failing}, gone: {Bridges: 1}}
	round(t, io, want, clk.Now())
	delete(want, gone)
	round(t, io, want, clk.Now())
	clk.Advance(10 * time.Second)

	io2 := newLeaderIO(s, zerolog.Nop())
	cur, err := io2.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantEntries := map[string]fleet.Entry[spec]{
		ready.String():   {Key: ready.String(), Spec: spec{addr: ready, ready: true}, Passing: true},
		failing.String(): {Key: failing.String(), Spec: spec{addr: failing}, Passing: true},
		gone.String():    {Key: gone.String(), Spec: spec{addr: gone}, Since: t0},
	}
	if !maps.EqualFunc(cur, wantEntries, func(a, b fleet.Entry[spec]) bool {
		return a.Key == b.Key && a.Spec == b.Spec && a.Passing == b.Passing && a.Since.Equal(b.Since)
	}) {
		t.Errorf("entries read back = %+v\nwant %+v", cur, wantEntries)
	}
	for _, sl := range io2.lay.byName {
		if sl.dirty {
			t.Errorf("slice %s read back as dirty", sl.name)
		}
	}
	if p, n := round(t, io2, want, clk.Now()); n != 0 || !p.Empty() {
		t.Errorf("new leader's first round: plan %+v, %d writes; want none", p, n)
	}
}

// TestSlicesOlderUnobserved checks a slice written by an older bridge, whose
// unobserved endpoints were ready false, serving false, terminating false
// (listed in the unobserved-since annotation): they are read as
// unobserved since the annotation's time, and the slice is rewritten with
// terminating true at the next write.
func TestSlicesOlderUnobserved(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	ctx := context.Background()
	owner, _, err := s.ensureService(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr, fa := true, false
	old := kubeapi.EndpointSlice{APIVersion: kubeapi.EndpointSlices.APIVersion(), Kind: kubeapi.EndpointSlices.Kind(), AddressType: "IPv4",
		Metadata: kubeapi.Meta{Name: "django-8000-0", Labels: map[string]string{LabelService: "django", LabelManagedBy: ManagedBy, LabelFleet: "django"},
			Annotations:     map[string]string{AnnotUnobserved: `{"10.213.0.2":"` + t0.Format(time.RFC3339Nano) + `"}`},
			OwnerReferences: []kubeapi.OwnerReference{*owner}},
		Ports: []kubeapi.SlicePort{{Name: "http", Port: 8000, Protocol: "TCP"}},
		Endpoints: []kubeapi.Endpoint{
			{Addresses: []string{"10.213.0.1"}, Conditions: kubeapi.Conditions{Ready: &tr, Serving: &tr, Terminating: &fa}},
			{Addresses: []string{"10.213.0.2"}, Conditions: kubeapi.Conditions{Ready: &fa, Serving: &fa, Terminating: &fa}},
			// Terminating but not listed (the annotation edited by hand):
			// unobserved from now.
			{Addresses: []string{"10.213.0.4"}, Conditions: kubeapi.Conditions{Ready: &fa, Serving: &fa, Terminating: &tr}},
		}}
	clk.Advance(time.Second)
	if err := s.o.Create(ctx, kubeapi.EndpointSlices, &old, nil); err != nil {
		t.Fatal(err)
	}
	cur, err := io.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e := cur["10.213.0.2:8000"]; e.Passing || !e.Since.Equal(t0) {
		t.Errorf("older unobserved endpoint read as %+v, want unobserved since %s", e, t0)
	}
	if e := cur["10.213.0.4:8000"]; e.Passing || !e.Since.Equal(clk.Now()) {
		t.Errorf("terminating endpoint without a time read as %+v, want unobserved since %s", e, clk.Now())
	}
	if !io.lay.byName["django-8000-0"].dirty {
		t.Error("the older slice is not marked to be rewritten")
	}
	// The next write (a new server) rewrites it whole.
	a, b, c := netip.MustParseAddrPort("10.213.0.1:8000"), netip.MustParseAddrPort("10.213.0.2:8000"), netip.MustParseAddrPort("10.213.0.3:8000")
	round(t, io, map[netip.AddrPort]fleet.Observed{a: {Bridges: 1}, c: {Bridges: 1}}, clk.Now())
	conds, _ := endpointsOf(t, s)
	if conds[a.Addr().String()] != condReady || conds[b.Addr().String()] != condUnobserved || conds[c.Addr().String()] != condReady {
		t.Errorf("after the rewrite: %+v", conds)
	}
}

// TestConditionsSame checks how read conditions compare with the ones a
// state writes, absent ones included.
func TestConditionsSame(t *testing.T) {
	tr, fa := true, false
	tests := []struct {
		name string
		slot slot
		read kubeapi.Conditions
		same bool
	}{
		{"ready, all written", slot{observed: true, ready: true}, kubeapi.Conditions{Ready: &tr, Serving: &tr, Terminating: &fa}, true},
		{"ready, none written", slot{observed: true, ready: true}, kubeapi.Conditions{}, true},
		{"ready, read not serving", slot{observed: true, ready: true}, kubeapi.Conditions{Ready: &tr, Serving: &fa, Terminating: &fa}, false},
		{"not ready, serving absent", slot{observed: true}, kubeapi.Conditions{Ready: &fa}, true},
		{"not ready, read terminating", slot{observed: true}, kubeapi.Conditions{Ready: &fa, Serving: &fa, Terminating: &tr}, false},
		{"unobserved", slot{}, kubeapi.Conditions{Ready: &fa, Serving: &fa, Terminating: &tr}, true},
		{"unobserved, read not terminating (older bridge)", slot{}, kubeapi.Conditions{Ready: &fa, Serving: &fa, Terminating: &fa}, false},
		{"unobserved, read ready", slot{}, kubeapi.Conditions{Terminating: &tr}, false},
	}
	for _, tt := range tests {
		if got := sameConditions(tt.slot.conditions(), tt.read); got != tt.same {
			t.Errorf("%s: sameConditions = %v, want %v", tt.name, got, tt.same)
		}
	}
}
