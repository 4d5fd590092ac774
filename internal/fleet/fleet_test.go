package fleet

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

var t0 = time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)

func obsOf(bridge, seg string, addrs ...string) observation.Observation {
	o := observation.Observation{Bridge: bridge}
	for _, a := range addrs {
		o.Entries = append(o.Entries, observation.Entry{Addr: netip.MustParseAddrPort(a), Segment: seg})
	}
	return o
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name string
		obs  []observation.Observation
		want map[string]string // addr -> "segments/bridges"
	}{
		{"none", nil, map[string]string{}},
		{"one bridge", []observation.Observation{obsOf("a", "s1", "10.0.0.1:80", "10.0.0.2:80")},
			map[string]string{"10.0.0.1:80": "s1/1", "10.0.0.2:80": "s1/1"}},
		{"shared across segments, sorted and unique", []observation.Observation{
			obsOf("a1", "10.1.0.0/24", "10.1.0.5:8000", "10.1.0.6:8000"),
			obsOf("a2", "10.1.0.0/24", "10.1.0.5:8000"),
			obsOf("b1", "10.2.0.0/24", "10.2.0.7:8000", "10.1.0.5:8000"),
		}, map[string]string{"10.1.0.5:8000": "10.1.0.0/24,10.2.0.0/24/3", "10.1.0.6:8000": "10.1.0.0/24/1", "10.2.0.7:8000": "10.2.0.0/24/1"}},
		{"a server listed twice counts once", []observation.Observation{obsOf("dup", "", "10.3.0.1:80", "10.3.0.1:80")},
			map[string]string{"10.3.0.1:80": "/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge(tt.obs)
			if len(got) != len(tt.want) {
				t.Fatalf("merge has %d servers, want %d: %v", len(got), len(tt.want), got)
			}
			for a, w := range tt.want {
				o, ok := got[netip.MustParseAddrPort(a)]
				if s := strings.Join(o.Segments, ",") + "/" + strconv.Itoa(o.Bridges); !ok || s != w {
					t.Errorf("%s: %q (%v), want %q", a, s, ok, w)
				}
			}
		})
	}
}

// spec is the fake registry's spelling of a server.
type spec struct {
	addr, segs, health string
	ap                 netip.AddrPort
}

// shape spells a server as its address (the key), its segments and its
// health, as a registry that carries the verdict does.
type shape struct{}

func (shape) Key(a netip.AddrPort) string { return a.String() }
func (shape) Spec(_ string, a netip.AddrPort, o Observed) spec {
	return spec{addr: a.Addr().String(), segs: strings.Join(o.Segments, ","), health: o.Health.String() + " " + o.Output, ap: a}
}
func (shape) Addr(s spec) netip.AddrPort { return s.ap }
func (shape) Compare(held, want spec) Difference {
	switch {
	case held.addr != want.addr:
		return Replaced
	case held.segs != want.segs || held.health != want.health:
		return Changed
	}
	return Same
}

// held is what a registry holds of desired: entries passing, but those in
// unobserved, unobserved since their time.
func held(desired map[netip.AddrPort]Observed, unobserved map[string]time.Time) map[string]Entry[spec] {
	out := map[string]Entry[spec]{}
	for a, o := range desired {
		e := Entry[spec]{Key: a.String(), Spec: shape{}.Spec(a.String(), a, o), Passing: true}
		if since, ok := unobserved[e.Key]; ok {
			e.Passing, e.Since = false, since
		}
		out[e.Key] = e
	}
	return out
}

func TestReconcile(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("10.1.0.5:8000"), netip.MustParseAddrPort("10.1.0.6:8000"), netip.MustParseAddrPort("10.2.0.7:8000")
	seg := func(s string) Observed { return Observed{Segments: []string{s}, Bridges: 1} }
	all := map[netip.AddrPort]Observed{a: seg("s1"), b: seg("s1"), c: seg("s2")}
	ka, kb, kc := a.String(), b.String(), c.String()
	const dereg = time.Minute
	moved := held(all, nil)
	e := moved[kb]
	e.Spec.addr = "10.9.9.9"
	moved[kb] = e

	tests := []struct {
		name    string
		desired map[netip.AddrPort]Observed
		current map[string]Entry[spec]
		now     time.Time
		hold    bool
		want    string // register|update|pass|fail|remove key lists
		same    int
	}{
		{"empty registry: all new", all, nil, t0, false, "register=" + ka + "," + kb + "," + kc + " new=3", 0},
		{"quiet: nothing to write", all, held(all, nil), t0, false, "", 3},
		{"segments changed: updated in place", map[netip.AddrPort]Observed{a: seg("s9"), b: seg("s1"), c: seg("s2")},
			held(all, nil), t0, false, "update=" + ka, 2},
		{"health changed: updated in place", map[netip.AddrPort]Observed{a: {Segments: []string{"s1"}, Bridges: 1, Health: endpoint.Failing, Output: "503"}, b: seg("s1"), c: seg("s2")},
			held(all, nil), t0, false, "update=" + ka, 2},
		{"health changed back: updated in place", all,
			held(map[netip.AddrPort]Observed{a: {Segments: []string{"s1"}, Bridges: 1, Health: endpoint.Pending}, b: seg("s1"), c: seg("s2")}, nil), t0, false, "update=" + ka, 2},
		{"changed while unobserved: updated, held state kept", map[netip.AddrPort]Observed{a: seg("s9"), b: seg("s1"), c: seg("s2")},
			held(all, map[string]time.Time{ka: t0}), t0, false, "update=" + ka + " held-state=critical", 2},
		{"replaced: registered whole, not new", all, moved, t0, false, "register=" + kb, 2},
		{"last observer gone: unobserved since now", map[netip.AddrPort]Observed{a: seg("s1"), b: seg("s1")},
			held(all, nil), t0, false, "fail=" + kc, 2},
		{"held: nothing turns unobserved", map[netip.AddrPort]Observed{a: seg("s1")}, held(all, nil), t0, true, "", 3},
		{"held: nothing is removed", map[netip.AddrPort]Observed{a: seg("s1"), b: seg("s1")},
			held(all, map[string]time.Time{kc: t0}), t0.Add(time.Hour), true, "", 3},
		{"unobserved, not yet due", map[netip.AddrPort]Observed{a: seg("s1"), b: seg("s1")},
			held(all, map[string]time.Time{kc: t0}), t0.Add(dereg - time.Second), false, "", 3},
		{"unobserved and due: removed", map[netip.AddrPort]Observed{a: seg("s1"), b: seg("s1")},
			held(all, map[string]time.Time{kc: t0}), t0.Add(dereg), false, "remove=" + kc, 2},
		{"observed again: passing, not re-registered", all,
			held(all, map[string]time.Time{kc: t0}), t0.Add(dereg + time.Hour), false, "pass=" + kc, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Reconcile[spec](shape{}, tt.desired, tt.current, tt.now, dereg, tt.hold)
			var parts []string
			news := 0
			for _, l := range []struct {
				name string
				es   []Entry[spec]
			}{{"register", p.Register}, {"update", p.Update}, {"pass", p.Pass}, {"fail", p.Fail}, {"remove", p.Remove}} {
				if len(l.es) == 0 {
					continue
				}
				var keys []string
				for _, e := range l.es {
					keys = append(keys, e.Key)
					if e.New {
						news++
					}
				}
				parts = append(parts, l.name+"="+strings.Join(keys, ","))
			}
			if news > 0 {
				parts = append(parts, "new="+strconv.Itoa(news))
			}
			for _, e := range p.Update {
				if !e.Passing {
					parts = append(parts, "held-state=critical")
				}
			}
			if got := strings.Join(parts, " "); got != tt.want || p.Unchanged != tt.same {
				t.Errorf("plan = %q unchanged %d, want %q unchanged %d", got, p.Unchanged, tt.want, tt.same)
			}
			if p.Empty() != (tt.want == "") {
				t.Errorf("Empty() = %v for %q", p.Empty(), tt.want)
			}
			for _, e := range p.Fail {
				if !e.Since.Equal(tt.now) || e.Passing {
					t.Errorf("failed entry %s: since %v passing %v, want since %v", e.Key, e.Since, e.Passing, tt.now)
				}
			}
		})
	}
}

func TestNextRemoval(t *testing.T) {
	tests := []struct {
		name string
		cur  map[string]Entry[spec]
		want time.Time // zero: none due
	}{
		{"none held", nil, time.Time{}},
		{"all passing", map[string]Entry[spec]{"x": {Passing: true}}, time.Time{}},
		{"the earliest unobserved", map[string]Entry[spec]{"x": {Passing: true}, "y": {Since: t0.Add(time.Minute)}, "z": {Since: t0}},
			t0.Add(time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, ok := NextRemoval(tt.cur, time.Minute)
			if ok != !tt.want.IsZero() || (ok && !at.Equal(tt.want)) {
				t.Errorf("NextRemoval = %v %v, want %v", at, ok, tt.want)
			}
		})
	}
}

func TestHold(t *testing.T) {
	var h Hold
	if h.Holds(t0) {
		t.Error("the zero Hold holds")
	}
	h.Extend(t0, 10*time.Second)
	h.Extend(t0.Add(time.Second), time.Second) // shorter: no change
	for _, tt := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {9 * time.Second, true}, {10 * time.Second, false}} {
		if got := h.Holds(t0.Add(tt.at)); got != tt.want {
			t.Errorf("Holds(t0+%s) = %v, want %v", tt.at, got, tt.want)
		}
	}
	if !h.Until().Equal(t0.Add(10 * time.Second)) {
		t.Errorf("Until = %v", h.Until())
	}
}

// TestStandins follows one bridge b (holder s1) through reads of the
// store: its last good observation stands in while its keys do not decode,
// for the grace at most and only under the same holder; each bad revision
// is reported once; a bridge whose keys are gone is forgotten.
func TestStandins(t *testing.T) {
	good := obsOf("b", "s", "10.0.0.1:80")
	bad := func(rev uint64, holder string) Observations {
		return Observations{ByBridge: map[string]observation.Observation{}, Holders: map[string]string{"b": holder},
			Bad: []Bad{{Bridge: "b", Key: "obs/b/0", Holder: holder, Revision: rev}}}
	}
	ok := Observations{ByBridge: map[string]observation.Observation{"b": good}, Holders: map[string]string{"b": "s1"}}
	gone := Observations{ByBridge: map[string]observation.Observation{}, Holders: map[string]string{}}
	const grace = 10 * time.Second
	steps := []struct {
		name      string
		obs       Observations
		at        time.Duration
		standsIn  bool
		reported  int
		forgotten bool
	}{
		{"bad before any good: reported, nothing to stand in", bad(1, "s1"), 0, false, 1, false},
		{"the same bad revision again: not reported again", bad(1, "s1"), time.Second, false, 0, false},
		{"decodes", ok, 2 * time.Second, true, 0, false},
		{"overwritten: stands in", bad(5, "s1"), 3 * time.Second, true, 1, false},
		{"still bad within the grace", bad(5, "s1"), 3*time.Second + grace, true, 0, false},
		{"bad past the grace: no more", bad(6, "s1"), 4*time.Second + grace, false, 1, false},
		{"repaired", ok, 20 * time.Second, true, 0, false},
		{"bad under another holder: no stand-in", bad(7, "s2"), 21 * time.Second, false, 1, false},
		{"keys gone: forgotten", gone, 22 * time.Second, false, 0, true},
		{"bad again under the first holder: nothing left to stand in", bad(8, "s1"), 23 * time.Second, false, 1, false},
	}
	var s Standins
	for _, st := range steps {
		obs := st.obs
		obs.ByBridge = map[string]observation.Observation{}
		for k, v := range st.obs.ByBridge {
			obs.ByBridge[k] = v
		}
		fresh := s.Apply(obs, t0.Add(st.at), grace)
		_, in := obs.ByBridge["b"]
		if in != st.standsIn || len(fresh) != st.reported {
			t.Errorf("%s: b merged %v, %d reported; want %v, %d", st.name, in, len(fresh), st.standsIn, st.reported)
		}
		if _, known := s.good["b"]; known == st.forgotten {
			t.Errorf("%s: b known %v, want %v", st.name, known, !st.forgotten)
		}
	}
}

func TestObservationsList(t *testing.T) {
	o := Observations{ByBridge: map[string]observation.Observation{"b": obsOf("b", ""), "a": obsOf("a", ""), "c": obsOf("c", "")}}
	var ids []string
	for _, x := range o.List() {
		ids = append(ids, x.Bridge)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("List order %v, want by bridge", ids)
	}
}

func TestObservationOf(t *testing.T) {
	ep := func(addr, network string) endpoint.Endpoint {
		e := endpoint.Endpoint{Addr: netip.MustParseAddrPort(addr)}
		if network != "" {
			e.Network = netip.MustParsePrefix(network)
		}
		return e
	}
	s := endpoint.Snapshot{Endpoints: []endpoint.Endpoint{
		ep("10.0.0.2:80", "10.0.0.0/24"),
		ep("[::ffff:10.0.0.1]:80", "10.0.0.0/24"),                  // mapped: unmapped
		ep("10.0.0.2:80", "10.9.0.0/24"),                           // twice: the first kept
		ep("10.0.0.3:0", ""),                                       // no port: left out
		ep("10.0.0.4:80", ""),                                      // network unknown
		{Addr: netip.MustParseAddrPort("10.0.0.5:80"), Held: true}, // held by the bridge's guard: left out
	}}
	tests := []struct {
		name, segment, want string
	}{
		{"segments from the networks", "", "10.0.0.1:80@10.0.0.0/24 10.0.0.2:80@10.0.0.0/24 10.0.0.4:80@"},
		{"a configured segment", "lab", "10.0.0.1:80@lab 10.0.0.2:80@lab 10.0.0.4:80@lab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ObservationOf("b1", tt.segment, s)
			var got []string
			for _, e := range o.Entries {
				got = append(got, e.Addr.String()+"@"+e.Segment)
			}
			if o.Bridge != "b1" || strings.Join(got, " ") != tt.want {
				t.Errorf("ObservationOf = %s %v, want b1 %s", o.Bridge, got, tt.want)
			}
		})
	}
}

// judge sets the verdict of addr in o.
func judge(o observation.Observation, addr string, h endpoint.Health, out string) observation.Observation {
	o.Entries = slices.Clone(o.Entries)
	for i, e := range o.Entries {
		if e.Addr == netip.MustParseAddrPort(addr) {
			o.Entries[i].Health, o.Entries[i].Output = h, out
		}
	}
	return o
}

// TestMergeHealth: the fleet's verdict on one server x from its
// observers' verdicts, given by bridge in order: ready when any observer
// says ready, else failing when any says failing, else pending; the output
// is the first non-empty one of the observers whose verdict won.
func TestMergeHealth(t *testing.T) {
	const x = "10.0.0.1:80"
	type v struct {
		h   endpoint.Health
		out string
	}
	var (
		ready    = v{endpoint.Ready, "HTTP GET /: 200 in 3 ms"}
		ready2   = v{endpoint.Ready, "HTTP GET /: 200 in 9 ms"}
		noCheck  = v{endpoint.Ready, ""} // a bridge without app checks
		pending  = v{endpoint.Pending, ""}
		pendingO = v{endpoint.Pending, "HTTP GET /: 200 in 3 ms (1 of 2)"}
		failing  = v{endpoint.Failing, "HTTP GET /: 503 in 4 ms"}
		refused  = v{endpoint.Failing, "TCP connect: connection refused"}
	)
	tests := []struct {
		name string
		obs  []v // by bridge b0, b1, ...
		want v
	}{
		{"one bridge, ready", []v{ready}, ready},
		{"one bridge, failing", []v{failing}, failing},
		{"one bridge, pending", []v{pending}, pending},
		{"no app checks", []v{noCheck, noCheck}, noCheck},
		{"one failing, one ready: ready (the other cannot reach it)", []v{failing, ready}, ready},
		{"one ready, one failing: ready", []v{ready, failing}, ready},
		{"both failing: failing, the first output", []v{refused, failing}, refused},
		{"one pending, one failing: failing (pending has no verdict)", []v{pending, failing}, failing},
		{"one failing, one pending: failing", []v{failing, pending}, failing},
		{"one pending, one ready: ready", []v{pending, ready}, ready},
		{"both pending: pending", []v{pending, pending}, pending},
		{"pending, the first output there is", []v{pending, pendingO}, pendingO},
		{"ready twice: the first output", []v{ready2, ready}, ready2},
		{"ready without an output, then with one: the output", []v{noCheck, ready}, ready},
		{"a bridge without app checks outweighs a failing one", []v{failing, noCheck}, noCheck},
		{"three: failing, pending, failing", []v{failing, pending, refused}, failing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs []observation.Observation
			for i, o := range tt.obs {
				b := "b" + strconv.Itoa(i)
				obs = append(obs, judge(obsOf(b, "s", x, "10.0.0.9:80"), x, o.h, o.out))
			}
			got := Merge(obs)[netip.MustParseAddrPort(x)]
			if got.Health != tt.want.h || got.Output != tt.want.out || got.Bridges != len(tt.obs) {
				t.Errorf("merged %v %q (%d bridges), want %v %q", got.Health, got.Output, got.Bridges, tt.want.h, tt.want.out)
			}
			if other := Merge(obs)[netip.MustParseAddrPort("10.0.0.9:80")]; other.Health != endpoint.Ready || other.Output != "" {
				t.Errorf("another server: %v %q, want ready with no output", other.Health, other.Output)
			}
		})
	}
}

func TestObservationOfHealth(t *testing.T) {
	long := strings.Repeat("x", observation.MaxOutputLen-1) + "é" // the é straddles the limit
	ep := func(addr string, h endpoint.Health, out string) endpoint.Endpoint {
		return endpoint.Endpoint{Addr: netip.MustParseAddrPort(addr), Check: endpoint.Check{State: h, Output: out, Since: t0}}
	}
	s := endpoint.Snapshot{Endpoints: []endpoint.Endpoint{
		ep("10.0.0.1:80", endpoint.Ready, ""),
		ep("10.0.0.2:80", endpoint.Pending, ""),
		ep("10.0.0.3:80", endpoint.Failing, "HTTP GET /: 503 in 4 ms"),
		ep("10.0.0.4:80", endpoint.Failing, long),
		ep("10.0.0.5:80", endpoint.Failing, "HTTP GET /: 503 Se\xffrvice in 4 ms"),
	}}
	want := []struct {
		h   endpoint.Health
		out string
	}{
		{endpoint.Ready, ""},
		{endpoint.Pending, ""},
		{endpoint.Failing, "HTTP GET /: 503 in 4 ms"},
		{endpoint.Failing, strings.Repeat("x", observation.MaxOutputLen-1)},
		{endpoint.Failing, "HTTP GET /: 503 Se\uFFFDrvice in 4 ms"},
	}
	o := ObservationOf("b1", "lab", s)
	if len(o.Entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(o.Entries), len(want))
	}
	for i, e := range o.Entries {
		if e.Health != want[i].h || e.Output != want[i].out {
			t.Errorf("%s: %v %q, want %v %q", e.Addr, e.Health, e.Output, want[i].h, want[i].out)
		}
	}
	if _, err := observation.Encode(o, 1<<20); err != nil {
		t.Errorf("Encode of ObservationOf: %v", err)
	}
}
