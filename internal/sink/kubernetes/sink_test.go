package kubernetes

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

var t0 = time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)

func testConfig(id string) Config {
	return Config{Service: "django", PortName: "http", ServicePort: 8000, Headless: true, MaxPerSlice: 100,
		DeregisterAfter: time.Minute, LeaseDuration: 15 * time.Second, Resync: time.Minute, BridgeID: id,
		Round: 6 * time.Second, StartupGrace: 21 * time.Second, Deregister: true}
}

func newTestSink(t *testing.T, f *fakeAPI, clk *clocktest.Clock, cfg Config) *Sink {
	t.Helper()
	cfg.Clock = clk
	return New(cfg, f.client(t), zerolog.Nop(), nil)
}

func addrs(n int, port uint16) []netip.AddrPort {
	out := make([]netip.AddrPort, n)
	for i := range out {
		out[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 213, byte(i / 250), byte(1 + i%250)}), port)
	}
	return out
}

func desired(as ...[]netip.AddrPort) map[netip.AddrPort]fleet.Observed {
	out := map[netip.AddrPort]fleet.Observed{}
	for _, l := range as {
		for _, a := range l {
			out[a] = fleet.Observed{Bridges: 1}
		}
	}
	return out
}

// round plans desired against the slices and writes the plan, as the
// leader's loop does; it returns the plan and the writes.
func round(t *testing.T, io *leaderIO, want map[netip.AddrPort]fleet.Observed, now time.Time) (fleet.Plan[spec], int) {
	t.Helper()
	ctx := context.Background()
	if err := io.s.leader.acquire(ctx); err != nil { // renew, as the elector does every third of the lease
		t.Fatal(err)
	}
	cur, err := io.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := io.Skip(fleet.Reconcile[spec](shape{}, want, cur, now, io.s.cfg.DeregisterAfter, false))
	if p.Empty() {
		return p, 0
	}
	n, err := io.Write(ctx, p, cur)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return p, n
}

func readSlices(t *testing.T, s *Sink) map[string]kubeapi.EndpointSlice {
	t.Helper()
	var items []kubeapi.EndpointSlice
	if err := s.o.List(context.Background(), kubeapi.EndpointSlices, kubeapi.Selector(LabelService, "django"), &items); err != nil {
		t.Fatal(err)
	}
	out := map[string]kubeapi.EndpointSlice{}
	for _, es := range items {
		out[es.Metadata.Name] = es
	}
	return out
}

func leading(t *testing.T, f *fakeAPI, clk *clocktest.Clock, cfg Config) (*Sink, *leaderIO) {
	t.Helper()
	s := newTestSink(t, f, clk, cfg)
	if err := s.leader.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, newLeaderIO(s, zerolog.Nop())
}

// The slices a user sees: one Service, 250 servers on one port in slices of
// at most 100 (3 slices), 10 on another port in a slice set of their own,
// labelled as the docs ask; a quiet round writes nothing.
func TestSlicesFirstApplyAndQuietRound(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	want := desired(addrs(250, 8000), addrs(10, 9000))
	_, n := round(t, io, want, clk.Now())
	if n != 1+3+1 { // the Service, three slices of port 8000, one of 9000
		t.Fatalf("first apply: %d writes, want 5", n)
	}
	got := readSlices(t, s)
	if len(got) != 4 {
		t.Fatalf("slices: %d, want 4: %v", len(got), got)
	}
	count := map[netip.AddrPort]int{}
	for name, es := range got {
		if es.AddressType != "IPv4" || es.Metadata.Labels[LabelManagedBy] != ManagedBy || es.Metadata.Labels[LabelService] != "django" {
			t.Errorf("%s: addressType %q labels %v", name, es.AddressType, es.Metadata.Labels)
		}
		if len(es.Endpoints) > 100 || len(es.Ports) != 1 || es.Ports[0].Name != "http" {
			t.Errorf("%s: %d endpoints, ports %v", name, len(es.Endpoints), es.Ports)
		}
		if len(es.Metadata.OwnerReferences) != 1 || es.Metadata.OwnerReferences[0].Kind != "Service" {
			t.Errorf("%s: owner %v", name, es.Metadata.OwnerReferences)
		}
		for _, ep := range es.Endpoints {
			if !*ep.Conditions.Ready || !*ep.Conditions.Serving {
				t.Errorf("%s: %v not ready", name, ep.Addresses)
			}
			count[netip.AddrPortFrom(netip.MustParseAddr(ep.Addresses[0]), uint16(es.Ports[0].Port))]++
		}
	}
	for a := range want {
		if count[a] != 1 {
			t.Errorf("%s in %d slices, want 1", a, count[a])
		}
	}
	var svc kubeapi.Service
	if err := s.o.Get(context.Background(), kubeapi.Services, "django", &svc); err != nil || svc.Spec.ClusterIP != "None" {
		t.Fatalf("service: %+v %v", svc, err)
	}
	objects := func() int {
		return f.writeCount("endpointslices") + f.writeCount("services") + f.writeCount("configmaps")
	}
	before := objects()
	for range 3 {
		if _, n := round(t, io, want, clk.Now()); n != 0 {
			t.Fatalf("quiet round: %d writes", n)
		}
	}
	if d := objects() - before; d != 0 {
		t.Fatalf("quiet rounds: %d API writes of slices, services or configmaps, want 0", d)
	}
}

// A server keeps its slot: removing one leaves a hole that the next new
// server fills, in the same slice, and only that slice is written.
func TestSlicesStableSlots(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	cfg := testConfig("a")
	cfg.MaxPerSlice = 10
	cfg.DeregisterAfter = time.Second
	s, io := leading(t, f, clk, cfg)
	all := addrs(25, 8000)
	round(t, io, desired(all), clk.Now())
	where := func() map[string]string {
		out := map[string]string{}
		for name, es := range readSlices(t, s) {
			for _, ep := range es.Endpoints {
				out[ep.Addresses[0]] = name
			}
		}
		return out
	}
	before := where()
	gone := all[3] // in the first slice
	rest := append(append([]netip.AddrPort{}, all[:3]...), all[4:]...)
	p, n := round(t, io, desired(rest), clk.Now())
	if len(p.Fail) != 1 || n != 1 {
		t.Fatalf("unobserved: plan %+v, %d writes; want 1 fail, 1 write", p, n)
	}
	clk.Advance(2 * time.Second)
	if p, n = round(t, io, desired(rest), clk.Now()); len(p.Remove) != 1 || n != 1 {
		t.Fatalf("removal: plan %+v, %d writes", p, n)
	}
	newcomer := netip.MustParseAddrPort("10.213.9.9:8000")
	if _, n = round(t, io, desired(rest, []netip.AddrPort{newcomer}), clk.Now()); n != 1 {
		t.Fatalf("add: %d writes, want 1", n)
	}
	after := where()
	if after[newcomer.Addr().String()] != before[gone.Addr().String()] {
		t.Errorf("newcomer in %s, want the hole's slice %s", after[newcomer.Addr().String()], before[gone.Addr().String()])
	}
	for _, a := range rest {
		if after[a.Addr().String()] != before[a.Addr().String()] {
			t.Errorf("%s moved from %s to %s", a, before[a.Addr().String()], after[a.Addr().String()])
		}
	}
}

// The last observer gone: ready false, serving false and terminating true
// at once, the time in an annotation (so another leader knows when it is
// due), removed deregister_after later; a leader reading the slices afresh
// keeps the time.
func TestSlicesUnobservedThenRemoved(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	a := netip.MustParseAddrPort("10.213.0.5:8000")
	round(t, io, desired([]netip.AddrPort{a}), clk.Now())
	round(t, io, desired(), clk.Now())
	es := readSlices(t, s)["django-8000-0"]
	if len(es.Endpoints) != 1 || *es.Endpoints[0].Conditions.Ready || *es.Endpoints[0].Conditions.Serving || !*es.Endpoints[0].Conditions.Terminating {
		t.Fatalf("unobserved endpoint: %+v", es.Endpoints)
	}
	var since map[string]string
	if err := json.Unmarshal([]byte(es.Metadata.Annotations[AnnotUnobserved]), &since); err != nil || since["10.213.0.5"] != t0.Format(time.RFC3339Nano) {
		t.Fatalf("annotation %q: %v", es.Metadata.Annotations[AnnotUnobserved], err)
	}
	clk.Advance(59 * time.Second)
	io2 := newLeaderIO(s, zerolog.Nop()) // a new term reads the time back
	if _, n := round(t, io2, desired(), clk.Now()); n != 0 {
		t.Fatalf("before deregister_after: %d writes", n)
	}
	clk.Advance(time.Second)
	if p, n := round(t, io2, desired(), clk.Now()); len(p.Remove) != 1 || n != 1 {
		t.Fatalf("at deregister_after: %+v, %d writes", p, n)
	}
	if got := readSlices(t, s); len(got) != 0 {
		t.Fatalf("empty slice not deleted: %v", got)
	}
}

// Loopback, link-local and IPv6 servers are skipped, not written.
func TestSlicesRefuseAddresses(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	bad := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8000"), netip.MustParseAddrPort("169.254.1.1:8000"), netip.MustParseAddrPort("[2001:db8::1]:8000")}
	good := netip.MustParseAddrPort("10.213.0.1:8000")
	round(t, io, desired(bad, []netip.AddrPort{good}), clk.Now())
	got := readSlices(t, s)
	if len(got) != 1 || len(got["django-8000-0"].Endpoints) != 1 || got["django-8000-0"].Endpoints[0].Addresses[0] != "10.213.0.1" {
		t.Fatalf("slices: %+v", got)
	}
}

// Fencing: a slice changed behind the leader's back makes its write a
// conflict (not an overwrite) and the next write reads the slices again;
// a deposed leader's write finds another holder and stops: ErrNotLeader.
func TestSlicesFencing(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	ctx := context.Background()
	round(t, io, desired(addrs(3, 8000)), clk.Now())
	cur, _ := io.Entries(ctx)
	f.bump("endpointslices", "django-8000-0")
	p := fleet.Reconcile[spec](shape{}, desired(addrs(4, 8000)), cur, clk.Now(), time.Minute, false)
	if _, err := io.Write(ctx, p, cur); !kubeapi.IsConflict(err) || errors.Is(err, fleet.ErrNotLeader) {
		t.Fatalf("write over a changed slice: %v, want a conflict", err)
	}
	if _, err := io.Write(ctx, p, cur); err != nil {
		t.Fatalf("write after re-reading: %v", err)
	}
	// Another bridge takes the leader lease (a's expired on its clock).
	b := newTestSink(t, f, clk, testConfig("b"))
	if err := b.leader.acquire(ctx); !errors.Is(err, errHeld) {
		t.Fatalf("b takes a live lease: %v", err)
	}
	clk.Advance(16 * time.Second)
	if err := b.leader.acquire(ctx); err != nil {
		t.Fatalf("b takes the expired lease: %v", err)
	}
	p = fleet.Reconcile[spec](shape{}, desired(addrs(5, 8000)), cur, clk.Now(), time.Minute, false)
	writes := f.writeCount("endpointslices")
	if _, err := io.Write(ctx, p, cur); !errors.Is(err, fleet.ErrNotLeader) {
		t.Fatalf("deposed leader's write: %v, want ErrNotLeader", err)
	}
	if f.writeCount("endpointslices") != writes {
		t.Fatal("the deposed leader wrote a slice")
	}
	_ = s
}

// A leader whose renewals fail for two thirds of the lease ends its term
// (ErrLeaseLost); a standby takes over once the lease went unchanged for its
// duration on the standby's own clock, and the old leader's check then
// says ErrNotLeader.
func TestElectionTakeover(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	a := newTestSink(t, f, clk, testConfig("a"))
	b := newTestSink(t, f, clk, testConfig("b"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctxA, cancelA := context.WithCancel(ctx)
	defer cancelA()
	terms := make(chan string, 4)
	ended := make(chan error, 4)
	lead := func(name string) func(context.Context) {
		return func(term context.Context) {
			terms <- name
			// The leader's work checks its lease (before writes) while the
			// elector renews it: concurrently, as in the sink.
			e := map[string]*elector{"a": a.leader, "b": b.leader}[name]
			for term.Err() == nil {
				_ = e.check(term)
				time.Sleep(time.Millisecond)
			}
			ended <- context.Cause(term)
		}
	}
	go a.leader.campaign(ctxA, lead("a"))
	if got := <-terms; got != "a" {
		t.Fatalf("first leader %s", got)
	}
	go b.leader.campaign(ctx, lead("b"))
	step := func(timers int) {
		t.Helper()
		if err := clk.WaitForTimers(ctx, timers); err != nil {
			t.Fatal(err)
		}
		clk.Advance(5 * time.Second)
	}
	step(2)                                           // t0+5s: a renews, b sees a live lease
	if err := clk.WaitForTimers(ctx, 2); err != nil { // both done with t0+5s
		t.Fatal(err)
	}
	f.mu.Lock()
	f.refuse = func(method, path string) int {
		if method == "PUT" {
			return 503 // a's renewals fail from now on
		}
		return 0
	}
	f.mu.Unlock()
	step(2) // t0+10s: a's renewal fails, 5s since the last
	step(2) // t0+15s: 10s since the last: the term ends
	if cause := <-ended; !errors.Is(cause, ErrLeaseLost) {
		t.Fatalf("a's term ended with %v, want ErrLeaseLost", cause)
	}
	cancelA()
	f.mu.Lock()
	f.refuse = nil
	f.mu.Unlock()
	select {
	case got := <-terms:
		t.Fatalf("%s leads before the lease expired for b", got)
	default:
	}
	// b takes over at t0+20s (the lease unchanged since a's renewal at
	// t0+5s for 15s), or a period later if b read the lease just before
	// that renewal.
	var got string
	for i := 0; i < 2 && got == ""; i++ {
		step(1)
		select {
		case got = <-terms:
		case <-time.After(2 * time.Second):
		}
	}
	if got != "b" {
		t.Fatalf("leader %q, want b", got)
	}
	if err := a.leader.check(ctx); !errors.Is(err, fleet.ErrNotLeader) {
		t.Fatalf("a's check after the takeover: %v", err)
	}
}

// A leader whose renewal hangs (a partition: requests get no answer and no
// error) ends its term when two thirds of the lease have passed since its
// last renewal, on its own clock, not when the request gives up: found by
// the robustness harness (every node cut from the apiserver for 7 s, lease
// 6 s: the old leader's term outlived the new leader's start by 3.9 s).
func TestElectionTermEndsWhileRenewalHangs(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	a := newTestSink(t, f, clk, testConfig("a"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	terms := make(chan struct{}, 1)
	ended := make(chan error, 1)
	go a.leader.campaign(ctx, func(term context.Context) {
		terms <- struct{}{}
		<-term.Done()
		ended <- context.Cause(term)
	})
	<-terms
	if err := clk.WaitForTimers(ctx, 1); err != nil { // the term's renewal period
		t.Fatal(err)
	}
	f.mu.Lock()
	f.hang = func(string, string) bool { return true }
	f.mu.Unlock()
	dur := a.leader.dur
	clk.Advance(dur / 3)                              // the renewal starts and hangs
	if err := clk.WaitForTimers(ctx, 1); err != nil { // its deadline
		t.Fatal(err)
	}
	select {
	case cause := <-ended:
		t.Fatalf("the term ended before the deadline: %v", cause)
	default:
	}
	clk.Advance(dur/3 - time.Millisecond)
	select {
	case cause := <-ended:
		t.Fatalf("the term ended %s after the last renewal, before two thirds of the lease: %v", 2*dur/3-time.Millisecond, cause)
	case <-time.After(50 * time.Millisecond):
	}
	clk.Advance(time.Millisecond) // two thirds of the lease since the last renewal
	select {
	case cause := <-ended:
		if !errors.Is(cause, ErrLeaseLost) {
			t.Fatalf("the term ended with %v, want ErrLeaseLost", cause)
		}
	case <-ctx.Done():
		t.Fatal("the term outlived two thirds of the lease while its renewal hung")
	}
}

func TestObjectName(t *testing.T) {
	for _, c := range []struct{ id, want string }{
		{"node-1", "x-node-1"},
		{"Node_1", "x-node-1-"},
	} {
		got := objectName("x-", c.id)
		if got[:len(c.want)] != c.want {
			t.Errorf("objectName(%q) = %q, want prefix %q", c.id, got, c.want)
		}
	}
	if objectName("x-", "Node_1") == objectName("x-", "node-1") {
		t.Error("two IDs share a name")
	}
}

// Publishing: a ConfigMap write when the set changes, none when it does
// not; the leader reads it while the bridge's lease lives, not after.
func TestObservationsPublishAndLiveness(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	a := newTestSink(t, f, clk, testConfig("a"))
	ctx := context.Background()
	if err := a.own.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	snap := func(as ...netip.AddrPort) endpoint.Snapshot {
		s := endpoint.Snapshot{At: clk.Now()}
		for _, x := range as {
			s.Endpoints = append(s.Endpoints, endpoint.Endpoint{Addr: x})
		}
		return s
	}
	s1 := snap(addrs(3, 8000)...)
	a.stop = func() {}
	for i, want := range []int{1, 0, 0} {
		res, err := a.Apply(ctx, s1)
		if err != nil || res.Writes != want {
			t.Fatalf("apply %d: %d writes (%v), want %d", i, res.Writes, err, want)
		}
	}
	if res, _ := a.Apply(ctx, snap(addrs(4, 8000)...)); res.Writes != 1 {
		t.Fatalf("changed set: %d writes, want 1", res.Writes)
	}
	io := newLeaderIO(a, zerolog.Nop())
	obs, err := io.Observations(ctx, 0, 0)
	if err != nil || len(obs.ByBridge["a"].Entries) != 4 {
		t.Fatalf("observations: %+v %v", obs, err)
	}
	// Polling reads the ConfigMaps' metadata; their data only when changed.
	gets := f.gets["configmaps"]
	if obs2, err := io.Observations(ctx, 0, 0); err != nil || len(obs2.ByBridge["a"].Entries) != 4 || f.gets["configmaps"] != gets {
		t.Fatalf("second read: %+v %v, %d configmap GETs, want none", obs2, err, f.gets["configmaps"]-gets)
	}
	clk.Advance(16 * time.Second) // a's lease not renewed for its duration
	obs, err = io.Observations(ctx, 0, 0)
	if err != nil || len(obs.ByBridge) != 0 {
		t.Fatalf("observations of a dead bridge: %+v %v", obs, err)
	}
	var cm kubeapi.ConfigMap
	if err := a.o.Get(ctx, kubeapi.ConfigMaps, "django-obs-a", &cm); err != nil {
		t.Fatalf("the dead bridge's observation went before deregister_after: %v", err)
	}
	// Its lease duration plus deregister_after unrenewed: the leader
	// deletes its Lease and ConfigMap.
	clk.Advance(time.Minute)
	if _, err := io.Observations(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	var l kubeapi.Lease
	if err := a.o.Get(ctx, kubeapi.ConfigMaps, "django-obs-a", &cm); !kubeapi.IsNotFound(err) {
		t.Errorf("dead bridge's configmap: %v, want deleted", err)
	}
	if err := a.o.Get(ctx, kubeapi.Leases, "django-bridge-a", &l); !kubeapi.IsNotFound(err) {
		t.Errorf("dead bridge's lease: %v, want deleted", err)
	}
	// The bridge was only paused: its Lease is created anew and its
	// observation published again, unchanged as it is.
	if err := a.own.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Apply(ctx, snap(addrs(4, 8000)...)); err != nil || res.Writes != 1 {
		t.Fatalf("apply after the lease was recreated: %d writes (%v), want 1", res.Writes, err)
	}
}

// Someone with write access to the namespace overwrites or deletes this
// bridge's observation ConfigMap: the next quiet round reads it back and
// writes it again (counted), and the round after writes nothing.
func TestObservationRepaired(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(f *fakeAPI) bool
	}{
		{"garbage chunk", func(f *fakeAPI) bool {
			return f.edit("configmaps", "django-obs-a", func(o map[string]any) {
				o["binaryData"] = map[string]any{"0": base64.StdEncoding.EncodeToString([]byte("not an observation"))}
			})
		}},
		{"extra chunk", func(f *fakeAPI) bool {
			return f.edit("configmaps", "django-obs-a", func(o map[string]any) {
				o["binaryData"].(map[string]any)["7"] = base64.StdEncoding.EncodeToString([]byte("x"))
			})
		}},
		{"holder rewritten", func(f *fakeAPI) bool {
			return f.edit("configmaps", "django-obs-a", func(o map[string]any) {
				o["metadata"].(map[string]any)["annotations"].(map[string]any)[AnnotHolder] = "someone-else"
			})
		}},
		{"deleted", func(f *fakeAPI) bool {
			return f.edit("configmaps", "django-obs-a", func(map[string]any) {}) && f.remove("configmaps", "django-obs-a")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			clk := clocktest.New(t0)
			a := newTestSink(t, f, clk, testConfig("a"))
			a.stop = func() {}
			ctx := context.Background()
			if err := a.own.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			s := endpoint.Snapshot{At: clk.Now()}
			for _, x := range addrs(3, 8000) {
				s.Endpoints = append(s.Endpoints, endpoint.Endpoint{Addr: x})
			}
			if res, err := a.Apply(ctx, s); err != nil || res.Writes != 1 {
				t.Fatalf("first apply: %d writes (%v), want 1", res.Writes, err)
			}
			var want kubeapi.ConfigMap
			if err := a.o.Get(ctx, kubeapi.ConfigMaps, "django-obs-a", &want); err != nil {
				t.Fatal(err)
			}
			if !tc.tamper(f) {
				t.Fatal("no configmap to tamper with")
			}
			if res, err := a.Apply(ctx, s); err != nil || res.Writes != 1 {
				t.Fatalf("quiet round after the tampering: %d writes (%v), want 1 (the repair)", res.Writes, err)
			}
			var got kubeapi.ConfigMap
			if err := a.o.Get(ctx, kubeapi.ConfigMaps, "django-obs-a", &got); err != nil {
				t.Fatal(err)
			}
			if why := observationDiffers(got, chunksOf(want), a.holder); why != "" {
				t.Errorf("after the repair: %s", why)
			}
			if n := testutil.ToFloat64(a.metrics.repairs); n != 1 {
				t.Errorf("repairs counted %v, want 1", n)
			}
			if res, err := a.Apply(ctx, s); err != nil || res.Writes != 0 {
				t.Fatalf("the next quiet round: %d writes (%v), want 0", res.Writes, err)
			}
		})
	}
}

// chunksOf lists cm's chunks in order.
func chunksOf(cm kubeapi.ConfigMap) [][]byte {
	out := make([][]byte, len(cm.BinaryData))
	for i := range out {
		out[i] = cm.BinaryData[strconv.Itoa(i)]
	}
	return out
}

// A Service of the configured name that is not the fleet's is never
// taken over: the leader's writes fail, naming it.
func TestForeignServiceRefused(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	ctx := context.Background()
	foreign := kubeapi.Service{APIVersion: "v1", Kind: "Service", Metadata: kubeapi.Meta{Name: "django", Labels: map[string]string{"app": "theirs"}},
		Spec: kubeapi.ServiceSpec{Ports: []kubeapi.ServicePort{{Name: "http", Port: 80, Protocol: "TCP"}}}}
	if err := s.o.Create(ctx, kubeapi.Services, &foreign, nil); err != nil {
		t.Fatal(err)
	}
	cur, _ := io.Entries(ctx)
	p := fleet.Reconcile[spec](shape{}, desired(addrs(2, 8000)), cur, clk.Now(), time.Minute, false)
	if _, err := io.Write(ctx, p, cur); err == nil || !strings.Contains(err.Error(), "not this fleet's") {
		t.Fatalf("write beside a foreign service: %v", err)
	}
	if n := f.writeCount("endpointslices"); n != 0 {
		t.Fatalf("%d slices written for a foreign service", n)
	}
}

// The fleet's Leases and ConfigMaps are owned by its Service once it
// exists, so that deleting the Service (helm uninstall) has the garbage
// collector delete them; an observation published before gets the owner
// at the next Apply.
func TestOwnedByTheService(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	a := newTestSink(t, f, clk, testConfig("a"))
	a.stop = func() {}
	ctx := context.Background()
	snap := endpoint.Snapshot{At: t0, Endpoints: []endpoint.Endpoint{{Addr: netip.MustParseAddrPort("10.213.0.1:8000")}}}
	if res, err := a.Apply(ctx, snap); err != nil || res.Writes != 1 {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	svc := a.service()
	if err := a.o.Create(ctx, kubeapi.Services, &svc, &svc); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Apply(ctx, snap); err != nil || res.Writes != 1 {
		t.Fatalf("apply once the service exists: %+v %v, want 1 write (the owner)", res, err)
	}
	if res, _ := a.Apply(ctx, snap); res.Writes != 0 {
		t.Fatalf("quiet apply: %d writes", res.Writes)
	}
	if err := a.own.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	var cm kubeapi.ConfigMap
	var l kubeapi.Lease
	if err := a.o.Get(ctx, kubeapi.ConfigMaps, "django-obs-a", &cm); err != nil || len(cm.Metadata.OwnerReferences) != 1 || cm.Metadata.OwnerReferences[0].UID != svc.Metadata.UID {
		t.Errorf("configmap owners %+v (%v), want the service %s", cm.Metadata.OwnerReferences, err, svc.Metadata.UID)
	}
	if err := a.o.Get(ctx, kubeapi.Leases, "django-bridge-a", &l); err != nil || len(l.Metadata.OwnerReferences) != 1 || l.Metadata.OwnerReferences[0].UID != svc.Metadata.UID {
		t.Errorf("lease owners %+v (%v), want the service", l.Metadata.OwnerReferences, err)
	}
}

// A leader refused for its rights (403) makes Apply fail, so /readyz says
// so, until a plan is written again.
func TestForbiddenIsAStandingFault(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	s.stop = func() {}
	s.leading.Store(true)
	ctx := context.Background()
	f.mu.Lock()
	f.refuse = func(method, path string) int {
		if method == "POST" && strings.Contains(path, "endpointslices") {
			return 403
		}
		return 0
	}
	f.mu.Unlock()
	cur, _ := io.Entries(ctx)
	p := fleet.Reconcile[spec](shape{}, desired(addrs(1, 8000)), cur, clk.Now(), time.Minute, false)
	_, err := io.Write(ctx, p, cur)
	io.Failed(fleet.StageRegistryWrite, err)
	if _, err := s.Apply(ctx, endpoint.Snapshot{At: t0}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("apply while the leader is forbidden: %v", err)
	}
	io.Succeeded()
	if _, err := s.Apply(ctx, endpoint.Snapshot{At: t0}); err != nil {
		t.Fatalf("apply after a write succeeded: %v", err)
	}
}

// A Service deleted behind the leader's back (its slices go with it, by
// their owner reference) is created again at the next write after a read
// of the slices, and the slices are owned by the new one.
func TestServiceRecreatedAfterResync(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, testConfig("a"))
	ctx := context.Background()
	round(t, io, desired(addrs(2, 8000)), clk.Now())
	if err := s.o.Remove(ctx, kubeapi.Services, "django", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.o.Remove(ctx, kubeapi.EndpointSlices, "django-8000-0", ""); err != nil { // the garbage collector's part
		t.Fatal(err)
	}
	if _, n := round(t, io, desired(addrs(2, 8000)), clk.Now()); n != 2 {
		t.Fatalf("after the service went: %d writes, want 2 (the service, the slice)", n)
	}
	var svc kubeapi.Service
	if err := s.o.Get(ctx, kubeapi.Services, "django", &svc); err != nil {
		t.Fatal(err)
	}
	if es := readSlices(t, s)["django-8000-0"]; len(es.Metadata.OwnerReferences) != 1 || es.Metadata.OwnerReferences[0].UID != svc.Metadata.UID {
		t.Fatalf("slice owners %+v, want the new service %s", es.Metadata.OwnerReferences, svc.Metadata.UID)
	}
}

// A snapshot older than two rounds (the process was paused) is not
// published: the next fresh round's is.
func TestStaleSnapshotNotPublished(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	a := newTestSink(t, f, clk, testConfig("a")) // a round of 6s
	a.stop = func() {}
	ctx := context.Background()
	old := endpoint.Snapshot{At: t0.Add(-13 * time.Second), Endpoints: []endpoint.Endpoint{{Addr: netip.MustParseAddrPort("10.213.0.1:8000")}}}
	if res, err := a.Apply(ctx, old); err != nil || res.Writes != 0 {
		t.Fatalf("stale snapshot: %+v %v, want no write", res, err)
	}
	old.At = t0
	if res, err := a.Apply(ctx, old); err != nil || res.Writes != 1 {
		t.Fatalf("fresh snapshot: %+v %v, want 1 write", res, err)
	}
}

// run --once as leader: Apply publishes and writes the slices in one go,
// and never turns anything not ready or removes it (bridges that have not
// published yet must not cost their servers).
func TestOnceAsLeader(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	cfg := testConfig("a")
	cfg.Once = true
	s, io := leading(t, f, clk, cfg)
	ctx := context.Background()
	round(t, io, desired(addrs(3, 8000)), clk.Now()) // slices from an earlier run
	if err := s.own.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	s.stop = func() {}
	s.leading.Store(true)
	snap := endpoint.Snapshot{At: t0}
	for _, a := range addrs(4, 8000)[2:] { // two of the three, and a new one
		snap.Endpoints = append(snap.Endpoints, endpoint.Endpoint{Addr: a})
	}
	res, err := s.Apply(ctx, snap)
	if err != nil || res.Writes != 2 { // the observation, the slice
		t.Fatalf("once: %+v %v, want 2 writes", res, err)
	}
	_, got := func() (map[string]kubeapi.EndpointSlice, map[string]bool) {
		ready := map[string]bool{}
		sl := readSlices(t, s)
		for _, es := range sl {
			for _, ep := range es.Endpoints {
				ready[ep.Addresses[0]] = *ep.Conditions.Ready
			}
		}
		return sl, ready
	}()
	if len(got) != 4 || !got["10.213.0.1"] || !got["10.213.0.4"] {
		t.Fatalf("after once: %v, want the earlier three still ready and the new one", got)
	}
}

// A bridge that starts leading records an Event on the Service (once the
// Service exists): kubectl describe shows who leads.
func TestLeaderEvent(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s := newTestSink(t, f, clk, testConfig("a"))
	ctx := context.Background()
	s.event(ctx, "LeaderElected", "x")
	if n := f.writeCount("events"); n != 0 {
		t.Fatalf("%d events without a service", n)
	}
	svc := s.service()
	if err := s.o.Create(ctx, kubeapi.Services, &svc, &svc); err != nil {
		t.Fatal(err)
	}
	s.event(ctx, "LeaderElected", "bridge a leads")
	var evs []map[string]any
	if err := s.o.List(ctx, kubeapi.Events, "", &evs); err != nil || len(evs) != 1 {
		t.Fatalf("events %v %v", evs, err)
	}
	io, _ := evs[0]["involvedObject"].(map[string]any)
	if evs[0]["reason"] != "LeaderElected" || io["kind"] != "Service" || io["uid"] != svc.Metadata.UID {
		t.Fatalf("event %v", evs[0])
	}
}
