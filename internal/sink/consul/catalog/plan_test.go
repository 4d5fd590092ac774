package catalog

import (
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

var tc0 = time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)

func testShape() catalogShape {
	sh := catalogShape{service: "django", tags: []string{"lab"}, fleet: "udp-discovery-bridge/django", checks: "alias/1m0s"}
	sh.nodeMeta = sh.serverNodeMeta()
	return sh
}

// current returns the catalog as it would be after registering desired,
// with the entries in unobserved marked critical since the given times.
func currentOf(sh catalogShape, desired map[netip.AddrPort]fleet.Observed, unobserved map[string]time.Time) map[string]catalogEntry {
	out := map[string]catalogEntry{}
	for a, d := range desired {
		e := sh.entryFor(a, d)
		if since, ok := unobserved[e.Key]; ok {
			e.Passing, e.Since = false, since
		}
		out[e.Key] = e
	}
	return out
}

func TestPlanCatalog(t *testing.T) {
	sh := testShape()
	sh.observers = true // for the observer count case
	a, b, c := netip.MustParseAddrPort("10.1.0.5:8000"), netip.MustParseAddrPort("10.1.0.6:8000"), netip.MustParseAddrPort("10.2.0.7:8000")
	seg := func(s string, n int) fleet.Observed { return fleet.Observed{Segments: []string{s}, Bridges: n} }
	all := map[netip.AddrPort]fleet.Observed{a: seg("s1", 2), b: seg("s1", 1), c: seg("s2", 1)}
	idA, idB, idC := consulclient.ServiceID("django", a), consulclient.ServiceID("django", b), consulclient.ServiceID("django", c)
	const dereg = time.Minute

	tests := []struct {
		name    string
		desired map[netip.AddrPort]fleet.Observed
		current map[string]catalogEntry
		now     time.Time
		hold    bool
		want    string // register|pass|fail|reap node lists
		same    int
	}{
		{"empty catalog registers all", all, nil, tc0, false,
			"register=" + idA + "," + idB + "," + idC, 0},
		{"quiet: nothing to write", all, currentOf(sh, all, nil), tc0, false, "", 3},
		{"observer count change rewrites the service alone", map[netip.AddrPort]fleet.Observed{a: seg("s1", 1), b: seg("s1", 1), c: seg("s2", 1)},
			currentOf(sh, all, nil), tc0, false, "update=" + idA, 2},
		{"last observer gone: critical at once", map[netip.AddrPort]fleet.Observed{a: seg("s1", 2), b: seg("s1", 1)},
			currentOf(sh, all, nil), tc0, false, "fail=" + idC, 2},
		{"held during the start-up grace", map[netip.AddrPort]fleet.Observed{a: seg("s1", 2)},
			currentOf(sh, all, nil), tc0, true, "", 3},
		{"critical, not yet due", map[netip.AddrPort]fleet.Observed{a: seg("s1", 2), b: seg("s1", 1)},
			currentOf(sh, all, map[string]time.Time{idC: tc0}), tc0.Add(dereg - time.Second), false, "", 3},
		{"critical and due: removed", map[netip.AddrPort]fleet.Observed{a: seg("s1", 2), b: seg("s1", 1)},
			currentOf(sh, all, map[string]time.Time{idC: tc0}), tc0.Add(dereg), false, "reap=" + idC, 2},
		{"observed again: passing, not re-registered", all,
			currentOf(sh, all, map[string]time.Time{idC: tc0}), tc0.Add(dereg + time.Hour), false, "pass=" + idC, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fleet.Reconcile(sh, tt.desired, tt.current, tt.now, dereg, tt.hold)
			var parts []string
			for _, l := range []struct {
				name string
				es   []catalogEntry
			}{{"register", p.Register}, {"update", p.Update}, {"pass", p.Pass}, {"fail", p.Fail}, {"reap", p.Remove}} {
				if len(l.es) == 0 {
					continue
				}
				var nodes []string
				for _, e := range l.es {
					nodes = append(nodes, e.Key)
				}
				parts = append(parts, l.name+"="+strings.Join(nodes, ","))
			}
			if got := strings.Join(parts, " "); got != tt.want || p.Unchanged != tt.same {
				t.Errorf("plan = %q unchanged %d, want %q unchanged %d", got, p.Unchanged, tt.want, tt.same)
			}
			for _, e := range p.Fail {
				if !e.Since.Equal(tt.now) || e.Passing {
					t.Errorf("failed entry %s: since %v passing %v, want since %v", e.Key, e.Since, e.Passing, tt.now)
				}
			}
		})
	}
}

func TestCatalogEntryShape(t *testing.T) {
	sh := testShape()
	sh.segmentTag = true
	sh.observers = true
	sh.nodeMeta = sh.serverNodeMeta()
	e := sh.entryFor(netip.MustParseAddrPort("10.1.0.5:8000"), fleet.Observed{Segments: []string{"10.1.0.0/24", "10.9.0.0/24"}, Bridges: 2})
	if e.Key != "django-10.1.0.5-8000" || e.Spec.svcID != e.Key || e.Spec.nodeAddr != "10.1.0.5" {
		t.Errorf("names: %+v", e)
	}
	wantMeta := map[string]string{"managed-by": "udp-discovery-bridge", "bridge-fleet": "udp-discovery-bridge/django",
		"segments": "10.1.0.0/24,10.9.0.0/24", "observers": "2", "bridge-checks": "alias/1m0s"}
	for k, v := range wantMeta {
		if e.Spec.svc.Meta[k] != v {
			t.Errorf("meta[%s] = %q, want %q", k, e.Spec.svc.Meta[k], v)
		}
	}
	// No consul-esm meta: nothing but the bridges checks the servers.
	if !maps.Equal(e.Spec.nodeMeta, map[string]string{"managed-by": "udp-discovery-bridge", "bridge-fleet": "udp-discovery-bridge/django"}) {
		t.Errorf("node meta = %v", e.Spec.nodeMeta)
	}
	if strings.Join(e.Spec.svc.Tags, " ") != "lab segment=10.1.0.0/24 segment=10.9.0.0/24" {
		t.Errorf("tags = %v", e.Spec.svc.Tags)
	}
	if e.Spec.app != nil || e.Spec.probe {
		t.Errorf("app check %+v, probe %v without verdicts; want none", e.Spec.app, e.Spec.probe)
	}
	// Without consul_observers_meta (the default) the count is not written.
	sh.observers = false
	if e := sh.entryFor(netip.MustParseAddrPort("10.1.0.5:8000"), fleet.Observed{Bridges: 2}); e.Spec.svc.Meta[MetaObservers] != "" {
		t.Errorf("observers meta without consul_observers_meta: %q", e.Spec.svc.Meta[MetaObservers])
	}
}

func TestSegmentsMetaCapped(t *testing.T) {
	var segs []string
	for i := range 100 {
		segs = append(segs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 24).String())
	}
	got := segmentsMeta(segs)
	if len(got) > maxMetaValue || !strings.Contains(got, "+") || !strings.HasPrefix(got, "10.0.0.0/24,10.1.0.0/24") {
		t.Errorf("segmentsMeta = %q (%d bytes)", got, len(got))
	}
}

func TestUnobservedSinceRoundTrip(t *testing.T) {
	at := tc0.Add(1234567 * time.Microsecond)
	got, ok := parseSince(unobservedOutput(at))
	if !ok || !got.Equal(at) {
		t.Fatalf("parseSince(unobservedOutput(%v)) = %v, %v", at, got, ok)
	}
	for _, bad := range []string{"", "observed by a live bridge", "unobserved since yesterday"} {
		if _, ok := parseSince(bad); ok {
			t.Errorf("parseSince(%q) succeeded", bad)
		}
	}
	cur := map[string]catalogEntry{"x": {Passing: true}, "y": {Since: tc0.Add(time.Minute)}, "z": {Since: tc0}}
	if at, ok := fleet.NextRemoval(cur, time.Minute); !ok || !at.Equal(tc0.Add(time.Minute)) {
		t.Errorf("nextReap = %v %v, want %v", at, ok, tc0.Add(time.Minute))
	}
}

// TestPlanCatalogSharesNames: a first plan of 1,000 servers spells each
// server's name once, in both layouts: the entry's key, its node (node per
// server) and its service ID share one string, and the plan's registrations
// are allocated once, not grown. (10,000 servers held two names each and a
// grown list, about a MiB more, at the leader's peak.)
func TestPlanCatalogSharesNames(t *testing.T) {
	const n = 1000
	desired := make(map[netip.AddrPort]fleet.Observed, n)
	for i := range n {
		desired[netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 213, byte(100 + i/250), byte(1 + i%250)}), 8000)] = fleet.Observed{Segments: []string{"a"}, Bridges: 1}
	}
	for _, shared := range []bool{false, true} {
		sh := testShape()
		sh.metas = &metaCache{}
		if shared {
			sh.sharedNode, sh.nodeMeta = SharedNodeName(sh.service, sh.fleet), nil
		}
		var p catalogPlan
		allocs := testing.AllocsPerRun(3, func() { p = fleet.Reconcile(sh, desired, nil, tc0, time.Minute, false) })
		if len(p.Register) != n || cap(p.Register) != n {
			t.Fatalf("shared=%v: %d registrations in a list of capacity %d, want %d in %d", shared, len(p.Register), cap(p.Register), n, n)
		}
		for _, e := range p.Register {
			id := e.Spec.svcID
			if unsafe.StringData(id) != unsafe.StringData(e.Key[len(e.Key)-len(id):]) ||
				(!shared && unsafe.StringData(e.Spec.node) != unsafe.StringData(e.Key)) {
				t.Fatalf("shared=%v: entry %q: key, node %q and service ID %q are separate strings", shared, e.Key, e.Spec.node, id)
			}
		}
		// Per server: its name (the address, the port, the joined and the
		// sanitized string; on the shared node one more, the key), its
		// service address and its spec, measured 5 and 6; the rest is a
		// few maps per plan. Spelling the name twice adds its allocations
		// once more.
		want := 5.5
		if shared {
			want = 6.5
		}
		if perServer := allocs / n; perServer > want {
			t.Errorf("shared=%v: %.2f allocations per server, want at most %.1f", shared, perServer, want)
		}
	}
}
