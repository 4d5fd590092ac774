package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// seen builds Seen entries for addresses; source defaults to the address with
// port 40000 and interface to "eth0".
func seen(addrs ...string) []Seen {
	out := make([]Seen, 0, len(addrs))
	for _, a := range addrs {
		p := ap(a)
		out = append(out, Seen{Addr: p, Source: netip.AddrPortFrom(p.Addr(), 40000), Interface: "eth0"})
	}
	return out
}

func addrs(eps []endpoint.Endpoint) []string {
	out := []string{}
	for _, e := range eps {
		out = append(out, e.Addr.String())
	}
	return out
}

// step is one round fed to Next and what the plan must say.
type step struct {
	failed    bool
	skipped   int // rounds the loop skipped before this one
	seen      []Seen
	adds      []string
	removes   []string
	unchanged []string
}

func TestNextRules(t *testing.T) {
	const a, b, c = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:9000"
	tests := []struct {
		name   string
		missed int
		guard  Config // the removal guard's settings (off when zero)
		steps  []step
	}{
		{
			name:   "added the first round it is seen",
			missed: 3,
			steps: []step{
				{seen: seen(b, a), adds: []string{a, b}},
				{seen: seen(a, b), unchanged: []string{a, b}},
			},
		},
		{
			name:   "removed exactly at the Nth miss",
			missed: 3,
			steps: []step{
				{seen: seen(a, b), adds: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a}, removes: []string{b}},
				{seen: seen(a), unchanged: []string{a}},
			},
		},
		{
			name:   "a reply in between resets the misses",
			missed: 3,
			steps: []step{
				{seen: seen(a, b), adds: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{seen: seen(a, b), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a}, removes: []string{b}},
			},
		},
		{
			name:   "missed rounds 1 removes at the first miss",
			missed: 1,
			steps: []step{
				{seen: seen(a, b), adds: []string{a, b}},
				{seen: seen(a), unchanged: []string{a}, removes: []string{b}},
			},
		},
		{
			name:   "missed rounds 0 behaves as 1",
			missed: 0,
			steps: []step{
				{seen: seen(a), adds: []string{a}},
				{seen: nil, removes: []string{a}},
			},
		},
		{
			name:   "failed rounds count no miss and add nothing",
			missed: 2,
			steps: []step{
				{seen: seen(a, b), adds: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{failed: true, seen: seen(c), unchanged: []string{a, b}},
				{failed: true, unchanged: []string{a, b}},
				{seen: seen(a, b), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a, b}},
				{failed: true, unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a}, removes: []string{b}},
			},
		},
		{
			name:   "start-up grace: nothing before the first complete round",
			missed: 1,
			steps: []step{
				{failed: true, seen: seen(a)},
				{failed: true},
				{seen: seen(a), adds: []string{a}},
			},
		},
		{
			name:   "re-added after removal",
			missed: 1,
			steps: []step{
				{seen: seen(a), adds: []string{a}},
				{seen: nil, removes: []string{a}},
				{seen: nil},
				{seen: seen(a), adds: []string{a}},
			},
		},
		{
			name:   "rounds skipped by a pause count as misses of what is not seen",
			missed: 3,
			steps: []step{
				{seen: seen(a, b, c), adds: []string{a, b, c}},
				{seen: seen(a, b), unchanged: []string{a, b, c}},
				// Paused for 4 rounds: c (missed once already) and b go at
				// once, a answered the fresh round and stays.
				{skipped: 4, seen: seen(a), unchanged: []string{a}, removes: []string{b, c}},
			},
		},
		{
			name:   "one skipped round with missed rounds 3 keeps a server that missed it",
			missed: 3,
			steps: []step{
				{seen: seen(a, b), adds: []string{a, b}},
				{skipped: 1, seen: seen(a), unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a}, removes: []string{b}},
			},
		},
		{
			name:   "rounds skipped by a pause do not confirm a guarded removal",
			missed: 1,
			guard:  Config{MaxRemovalFraction: 0.5, GuardRounds: 2},
			steps: []step{
				{seen: seen(a, b, c), adds: []string{a, b, c}},
				// b and c due after a pause of 10 rounds: 2 of 3, held.
				{skipped: 10, seen: seen(a), unchanged: []string{a, b, c}},
				{seen: seen(a), unchanged: []string{a, b, c}},
				{seen: seen(a), unchanged: []string{a}, removes: []string{b, c}},
			},
		},
		{
			name:   "skipped rounds before a failed round change nothing",
			missed: 1,
			steps: []step{
				{seen: seen(a), adds: []string{a}},
				{failed: true, skipped: 5, unchanged: []string{a}},
			},
		},
		{
			name:   "duplicates and invalid addresses in one round",
			missed: 2,
			steps: []step{
				{seen: append(seen(a, a, b), Seen{}), adds: []string{a, b}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.guard
			cfg.MissedRounds = tt.missed
			st := State{}
			for i, s := range tt.steps {
				round := uint64(i + 1)
				at := t0.Add(time.Duration(i) * 10 * time.Second)
				var p Plan
				st, p = Next(cfg, st, Observation{Round: round, At: at, Failed: s.failed, Seen: s.seen, Skipped: s.skipped})
				if p.Round != round || !p.At.Equal(at) || p.Failed != s.failed {
					t.Fatalf("round %d: plan header = (%d, %v, %v)", round, p.Round, p.At, p.Failed)
				}
				check := func(what string, got []endpoint.Endpoint, want []string) {
					t.Helper()
					if want == nil {
						want = []string{}
					}
					if g := addrs(got); !slices.Equal(g, want) {
						t.Errorf("round %d %s = %v, want %v", round, what, g, want)
					}
				}
				check("adds", p.Added, s.adds)
				check("removes", p.Removed, s.removes)
				check("unchanged", p.Kept, s.unchanged)
				held := append(slices.Clone(s.adds), s.unchanged...)
				slices.Sort(held)
				check("state", st.Endpoints(), held)
				check("snapshot", p.Snapshot().Endpoints, held)
			}
		})
	}
}

func TestNextFields(t *testing.T) {
	a := ap("10.0.0.1:8000")
	cfg := Config{MissedRounds: 3}
	st, p := Next(cfg, State{}, Observation{Round: 1, At: t0, Seen: []Seen{{Addr: a, Source: ap("10.0.0.1:9999"), Interface: "eth0"}}})
	want := endpoint.Endpoint{Addr: a, Source: ap("10.0.0.1:9999"), Interface: "eth0", FirstSeen: t0, LastSeen: t0}
	if !reflect.DeepEqual(p.Added, []endpoint.Endpoint{want}) {
		t.Fatalf("adds = %+v, want %+v", p.Added, want)
	}

	t.Run("miss keeps last seen fields", func(t *testing.T) {
		st2, p2 := Next(cfg, st, Observation{Round: 2, At: t0.Add(time.Minute)})
		if !reflect.DeepEqual(p2.Kept, []endpoint.Endpoint{want}) {
			t.Fatalf("unchanged = %+v, want %+v", p2.Kept, want)
		}
		if e, ok := st2.held[a]; !ok || e.misses != 1 {
			t.Fatalf("misses = %d, %v; want 1, true", e.misses, ok)
		}
	})

	t.Run("source and interface change of a known endpoint", func(t *testing.T) {
		at := t0.Add(2 * time.Minute)
		st2, _ := Next(cfg, st, Observation{Round: 2, At: t0.Add(time.Minute)})
		st3, p3 := Next(cfg, st2, Observation{Round: 3, At: at, Seen: []Seen{{Addr: a, Source: ap("192.168.5.5:1234"), Interface: "eth1"}}})
		got := endpoint.Endpoint{Addr: a, Source: ap("192.168.5.5:1234"), Interface: "eth1", FirstSeen: t0, LastSeen: at}
		if len(p3.Added) != 0 || len(p3.Removed) != 0 || !reflect.DeepEqual(p3.Kept, []endpoint.Endpoint{got}) {
			t.Fatalf("plan = %+v, want only unchanged %+v", p3, got)
		}
		if m := st3.held[a].misses; m != 0 {
			t.Fatalf("misses after reply = %d, want 0", m)
		}
	})

	t.Run("re-add gets a new first seen", func(t *testing.T) {
		st2, _ := Next(Config{MissedRounds: 1}, st, Observation{Round: 2, At: t0.Add(time.Minute)})
		at := t0.Add(time.Hour)
		_, p3 := Next(cfg, st2, Observation{Round: 3, At: at, Seen: []Seen{{Addr: a}}})
		if len(p3.Added) != 1 || !p3.Added[0].FirstSeen.Equal(at) {
			t.Fatalf("adds = %+v, want first seen %v", p3.Added, at)
		}
	})
}

// TestNextReplyTime checks that first_seen and last_seen are when the reply
// arrived, not when its round ended (a 5 s round used to stamp a reply that
// came at 14.399 with 19.398).
func TestNextReplyTime(t *testing.T) {
	a := ap("10.0.0.1:8000")
	cfg := Config{MissedRounds: 3}
	reply1, end1 := t0.Add(1400*time.Millisecond), t0.Add(5*time.Second)
	st, p := Next(cfg, State{}, Observation{Round: 1, At: end1, Seen: []Seen{{Addr: a, At: reply1}}})
	if len(p.Added) != 1 || !p.Added[0].FirstSeen.Equal(reply1) || !p.Added[0].LastSeen.Equal(reply1) {
		t.Fatalf("added = %+v, want first and last seen %v", p.Added, reply1)
	}
	reply2 := t0.Add(10*time.Second + 300*time.Millisecond)
	_, p = Next(cfg, st, Observation{Round: 2, At: t0.Add(15 * time.Second), Seen: []Seen{{Addr: a, At: reply2}}})
	if len(p.Kept) != 1 || !p.Kept[0].FirstSeen.Equal(reply1) || !p.Kept[0].LastSeen.Equal(reply2) {
		t.Fatalf("kept = %+v, want first seen %v, last seen %v", p.Kept, reply1, reply2)
	}
}

// TestNextPure checks that Next never modifies the State it is given.
func TestNextPure(t *testing.T) {
	cfg := Config{MissedRounds: 2}
	st, _ := Next(cfg, State{}, Observation{Round: 1, At: t0, Seen: seen("10.0.0.1:8000", "10.0.0.2:8000")})
	obs := []Observation{
		{Round: 2, At: t0.Add(time.Second), Seen: seen("10.0.0.1:8000", "10.0.0.3:8000")},
		{Round: 2, At: t0.Add(time.Second)},
		{Round: 2, At: t0.Add(time.Second), Failed: true},
		{Round: 2, At: t0.Add(time.Second), Seen: []Seen{{Addr: ap("10.0.0.2:8000"), Interface: "other"}}},
	}
	for i, o := range obs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			before := maps.Clone(st.held)
			since := st.holdSince
			Next(cfg, st, o)
			Next(cfg, st, o)
			if !maps.Equal(before, st.held) || since != st.holdSince {
				t.Fatalf("prev modified: %v -> %v", before, st.held)
			}
		})
	}
}

// TestNextPureGuard checks that Next with the guard holding removals never
// modifies the State it is given, and gives the same plan twice.
func TestNextPureGuard(t *testing.T) {
	cfg := Config{MissedRounds: 1, MaxRemovalFraction: 0.5, GuardRounds: 3}
	st, _ := Next(cfg, State{}, Observation{Round: 1, At: t0, Seen: seen("10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000")})
	st, p := Next(cfg, st, Observation{Round: 2, At: t0})
	if len(p.Guard.Held) != 3 {
		t.Fatalf("held = %v, want 3", p.Guard.Held)
	}
	before, since := maps.Clone(st.held), st.holdSince
	for _, o := range []Observation{{Round: 3, At: t0}, {Round: 3, At: t0, Failed: true}, {Round: 3, At: t0, Seen: seen("10.0.0.1:8000")}} {
		_, p1 := Next(cfg, st, o)
		_, p2 := Next(cfg, st, o)
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("two plans of one observation differ: %+v / %+v", p1, p2)
		}
		if !maps.Equal(before, st.held) || since != st.holdSince {
			t.Fatalf("prev modified by %+v", o)
		}
	}
}

func TestPlanOps(t *testing.T) {
	a := endpoint.Endpoint{Addr: ap("10.0.0.1:8000"), Source: ap("10.0.0.1:9999"), Interface: "eth0"}
	b := endpoint.Endpoint{Addr: ap("10.0.0.2:8001"), Interface: "eth1"}
	c := endpoint.Endpoint{Addr: ap("10.0.0.3:8002"), Source: ap("10.9.9.9:1"), Interface: "eth2"}
	p := Plan{Round: 7, At: t0, Added: []endpoint.Endpoint{a}, Removed: []endpoint.Endpoint{b}, Kept: []endpoint.Endpoint{c}}
	var lines []string
	for _, op := range p.Ops() {
		js, err := json.Marshal(op)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(js))
	}
	want := []string{
		`{"op":"add","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","round":7}`,
		`{"op":"remove","ip":"10.0.0.2","port":8001,"source_address":"","interface":"eth1","round":7}`,
		`{"op":"noop","ip":"10.0.0.3","port":8002,"source_address":"10.9.9.9:1","interface":"eth2","round":7}`,
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("ops =\n%s\nwant\n%s", lines, want)
	}
	p.Failed = true
	if ops := p.Ops(); ops != nil {
		t.Fatalf("failed plan ops = %v, want nil", ops)
	}
	snap := Plan{Round: 3, At: t0, Added: []endpoint.Endpoint{c}, Kept: []endpoint.Endpoint{a}}.Snapshot()
	if snap.Round != 3 || !snap.At.Equal(t0) || !slices.Equal(addrs(snap.Endpoints), []string{"10.0.0.1:8000", "10.0.0.3:8002"}) {
		t.Fatalf("snapshot = %+v", snap)
	}
}

// TestSnapshotHalves: a snapshot of a plan with one half empty is that
// half (shared, not copied, and clipped so that an append to it cannot
// write into the plan); an empty plan's snapshot is empty, not nil.
func TestSnapshotHalves(t *testing.T) {
	a := endpoint.Endpoint{Addr: netip.MustParseAddrPort("10.0.0.1:8000")}
	b := endpoint.Endpoint{Addr: netip.MustParseAddrPort("10.0.0.2:8000")}
	for _, tc := range []struct {
		name        string
		added, kept []endpoint.Endpoint
		want        []string
	}{
		{"empty", nil, nil, []string{}},
		{"added only", []endpoint.Endpoint{a, b}, nil, []string{"10.0.0.1:8000", "10.0.0.2:8000"}},
		{"kept only", nil, []endpoint.Endpoint{a, b}, []string{"10.0.0.1:8000", "10.0.0.2:8000"}},
		{"both", []endpoint.Endpoint{b}, []endpoint.Endpoint{a}, []string{"10.0.0.1:8000", "10.0.0.2:8000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			added := append(make([]endpoint.Endpoint, 0, 8), tc.added...)
			kept := append(make([]endpoint.Endpoint, 0, 8), tc.kept...)
			snap := Plan{Added: added, Kept: kept}.Snapshot()
			if snap.Endpoints == nil || !slices.Equal(addrs(snap.Endpoints), tc.want) {
				t.Fatalf("snapshot = %v, want %v", snap.Endpoints, tc.want)
			}
			_ = append(snap.Endpoints, endpoint.Endpoint{Addr: netip.MustParseAddrPort("10.9.9.9:1")})
			if added[:cap(added)][len(added)].Addr.IsValid() || kept[:cap(kept)][len(kept)].Addr.IsValid() {
				t.Fatal("an append to the snapshot wrote into the plan's lists")
			}
		})
	}
}

func benchSeen(n int, offset int) []Seen {
	out := make([]Seen, n)
	for i := range out {
		v := uint32(0x0a000000) + uint32(i+offset)
		ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		out[i] = Seen{Addr: netip.AddrPortFrom(ip, 8000), Source: netip.AddrPortFrom(ip, 9999), Interface: "eth0"}
	}
	return out
}

// BenchmarkNext measures one round with 10,000 known endpoints.
func BenchmarkNext(b *testing.B) {
	const n = 10_000
	cfg := Config{MissedRounds: 3}
	b.Run("quiet", func(b *testing.B) {
		s := benchSeen(n, 0)
		st, _ := Next(cfg, State{}, Observation{Round: 1, At: t0, Seen: s})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			Next(cfg, st, Observation{Round: uint64(i + 2), At: t0, Seen: s})
		}
	})
	b.Run("churn10pct", func(b *testing.B) {
		st, _ := Next(cfg, State{}, Observation{Round: 1, At: t0, Seen: benchSeen(n, 0)})
		rounds := [][]Seen{benchSeen(n, 0), benchSeen(n, n/10)}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			st, _ = Next(Config{MissedRounds: 1}, st, Observation{Round: uint64(i + 2), At: t0, Seen: rounds[i%2]})
		}
	})
}

// guardStep is one round fed to Next with the removal guard on, and what the
// plan must say. Held removals are kept (in the snapshot) and listed in held.
type guardStep struct {
	failed   bool
	seen     []string
	removes  []string
	held     []string
	going    []string // unseen, due next round, during an episode: marked Held too
	since    uint64   // Guard.Since
	release  uint64   // Guard.Release
	released int
	returned int
	started  bool
	ended    bool
}

func TestNextRemovalGuard(t *testing.T) {
	const a, b, c, d, e, f = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000", "10.0.0.5:8000", "10.0.0.6:8000"
	all := []string{a, b, c, d, e, f}
	on := Config{MissedRounds: 2, MaxRemovalFraction: 0.5, GuardRounds: 3}
	tests := []struct {
		name  string
		cfg   Config
		first []string    // seen in round 1
		steps []guardStep // rounds 2, 3, ...
	}{
		{
			name: "all six silent: held for GuardRounds rounds after MissedRounds, then removed",
			cfg:  on, first: all,
			steps: []guardStep{
				{},
				{held: all, since: 3, release: 6, started: true},
				{held: all, since: 3, release: 6},
				{held: all, since: 3, release: 6},
				{removes: all, released: 6, ended: true},
				{},
			},
		},
		{
			name: "half of them (not more than the fraction) go at once",
			cfg:  on, first: all,
			steps: []guardStep{
				{seen: []string{d, e, f}},
				{seen: []string{d, e, f}, removes: []string{a, b, c}},
			},
		},
		{
			name: "four of six are held",
			cfg:  on, first: all,
			steps: []guardStep{
				{seen: []string{e, f}},
				{seen: []string{e, f}, held: []string{a, b, c, d}, since: 3, release: 6, started: true},
			},
		},
		{
			name: "one server alone is never held, even the only one",
			cfg:  on, first: []string{a},
			steps: []guardStep{
				{},
				{removes: []string{a}},
			},
		},
		{
			name: "both of two are held",
			cfg:  on, first: []string{a, b},
			steps: []guardStep{
				{},
				{held: []string{a, b}, since: 3, release: 6, started: true},
			},
		},
		{
			name: "one of two goes at once",
			cfg:  on, first: []string{a, b},
			steps: []guardStep{
				{seen: []string{b}},
				{seen: []string{b}, removes: []string{a}},
			},
		},
		{
			name: "hysteresis first: one silent round is no removal and no hold",
			cfg:  on, first: all,
			steps: []guardStep{
				{},
				{seen: all},
				{},
				{seen: all},
			},
		},
		{
			name: "servers that answer during the hold simply stay",
			cfg:  on, first: all,
			steps: []guardStep{
				{},
				{held: all, since: 3, release: 6, started: true},
				{seen: all, returned: 6, ended: true},
				{seen: all},
			},
		},
		{
			name: "some answer again: the others stay held until confirmed",
			cfg:  on, first: all,
			steps: []guardStep{
				{},
				{held: all, since: 3, release: 6, started: true},
				{seen: []string{a, b, c, d}, held: []string{e, f}, since: 3, release: 6, returned: 4},
				{seen: []string{a, b, c, d}, held: []string{e, f}, since: 3, release: 6},
				{seen: []string{a, b, c, d}, removes: []string{e, f}, released: 2, ended: true},
			},
		},
		{
			name: "a second wave during the hold joins it with its own confirmation rounds",
			cfg:  on, first: all,
			steps: []guardStep{
				{seen: []string{e, f}},
				{seen: []string{e, f}, held: []string{a, b, c, d}, since: 3, release: 6, started: true},
				{seen: []string{f}, held: []string{a, b, c, d}, going: []string{e}, since: 3, release: 6},
				{seen: []string{f}, held: []string{a, b, c, d, e}, since: 3, release: 6},
				{seen: []string{f}, held: []string{e}, removes: []string{a, b, c, d}, since: 3, release: 8, released: 4},
				{seen: []string{f}, held: []string{e}, since: 3, release: 8},
				{seen: []string{f}, removes: []string{e}, released: 1, ended: true},
			},
		},
		{
			name: "a single miss during a hold that shrank goes at once",
			cfg:  Config{MissedRounds: 2, MaxRemovalFraction: 0.5, GuardRounds: 4}, first: all,
			steps: []guardStep{
				{seen: []string{f}},
				{seen: []string{f}, held: []string{a, b, c, d, e}, since: 3, release: 7, started: true},
				{seen: []string{b, c, d, e, f}, held: []string{a}, since: 3, release: 7, returned: 4},
				{seen: []string{b, c, d, f}, held: []string{a}, going: []string{e}, since: 3, release: 7},
				// Due: a (held) and e (new): 2 of 6 is no mass removal, so
				// e goes; a stays held until confirmed.
				{seen: []string{b, c, d, f}, held: []string{a}, removes: []string{e}, since: 3, release: 7},
				{seen: []string{b, c, d, f}, removes: []string{a}, released: 1, ended: true},
			},
		},
		{
			name: "failed rounds confirm nothing",
			cfg:  on, first: all,
			steps: []guardStep{
				{},
				{held: all, since: 3, release: 6, started: true},
				{failed: true, held: all, since: 3, release: 7},
				{failed: true, held: all, since: 3, release: 8},
				{held: all, since: 3, release: 8},
				{held: all, since: 3, release: 8},
				{removes: all, released: 6, ended: true},
			},
		},
		{
			name: "servers added during the hold count in the denominator, held ones still wait",
			cfg:  on, first: []string{a, b},
			steps: []guardStep{
				{},
				{seen: []string{c, d, e, f}, held: []string{a, b}, since: 3, release: 6, started: true},
				{seen: []string{c, d, e, f}, held: []string{a, b}, since: 3, release: 6},
				{seen: []string{c, d, e, f}, held: []string{a, b}, since: 3, release: 6},
				{seen: []string{c, d, e, f}, removes: []string{a, b}, released: 2, ended: true},
			},
		},
		{
			name: "max_removal_fraction 1 turns the guard off",
			cfg:  Config{MissedRounds: 2, MaxRemovalFraction: 1, GuardRounds: 3}, first: all,
			steps: []guardStep{
				{},
				{removes: all},
			},
		},
		{
			name: "removal_guard_rounds 0 turns the guard off",
			cfg:  Config{MissedRounds: 2, MaxRemovalFraction: 0.5}, first: all,
			steps: []guardStep{
				{},
				{removes: all},
			},
		},
		{
			// A silence that begins while round 2's replies arrive: a, b
			// and c miss round 2, d, e and f answered it. Judged per
			// round, a, b and c (3 of 6) would go in round 3 and only the
			// second wave be held; the window makes it one episode.
			name: "a silence straddling a round boundary is one episode",
			cfg:  on, first: all,
			steps: []guardStep{
				{seen: []string{d, e, f}},
				{held: []string{a, b, c}, going: []string{d, e, f}, since: 3, release: 6, started: true},
				{held: all, since: 3, release: 6},
				{held: all, since: 3, release: 6},
				{held: []string{d, e, f}, removes: []string{a, b, c}, since: 3, release: 7, released: 3},
				{removes: []string{d, e, f}, released: 3, ended: true},
			},
		},
		{
			name: "with missed_rounds 3 the window is the servers at 2 misses",
			cfg:  Config{MissedRounds: 3, MaxRemovalFraction: 0.5, GuardRounds: 1}, first: all,
			steps: []guardStep{
				{seen: []string{d, e, f}},
				{},
				{held: []string{a, b, c}, going: []string{d, e, f}, since: 4, release: 5, started: true},
				{held: []string{d, e, f}, removes: []string{a, b, c}, since: 4, release: 6, released: 3},
			},
		},
		{
			name: "servers at a single miss are not in the window of missed_rounds 3",
			cfg:  Config{MissedRounds: 3, MaxRemovalFraction: 0.5, GuardRounds: 1}, first: all,
			steps: []guardStep{
				{seen: []string{d, e, f}},
				{seen: []string{d, e, f}},
				{removes: []string{a, b, c}},
			},
		},
		{
			name: "a second episode starts afresh",
			cfg:  Config{MissedRounds: 1, MaxRemovalFraction: 0.5, GuardRounds: 1}, first: all,
			steps: []guardStep{
				{held: all, since: 2, release: 3, started: true},
				{seen: all, returned: 6, ended: true},
				{held: all, since: 4, release: 5, started: true},
				{removes: all, released: 6, ended: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := Next(tt.cfg, State{}, Observation{Round: 1, At: t0, Seen: seen(tt.first...)})
			// The first servers have answered long enough to be
			// established (TestNextEstablished tests how they become so).
			st = established(st)
			known := slices.Clone(tt.first)
			for i, s := range tt.steps {
				round := uint64(i + 2)
				var p Plan
				st, p = Next(tt.cfg, st, Observation{Round: round, At: t0.Add(time.Duration(i+1) * time.Second), Failed: s.failed, Seen: seen(s.seen...)})
				check := func(what string, got []endpoint.Endpoint, want []string) {
					t.Helper()
					if want == nil {
						want = []string{}
					}
					w := slices.Clone(want)
					slices.Sort(w)
					if g := addrs(got); !slices.Equal(g, w) {
						t.Errorf("round %d %s = %v, want %v", round, what, g, w)
					}
				}
				if !s.failed {
					for _, a := range s.seen {
						if !slices.Contains(known, a) {
							known = append(known, a)
						}
					}
					known = slices.DeleteFunc(known, func(a string) bool { return slices.Contains(s.removes, a) })
				}
				check("removes", p.Removed, s.removes)
				check("held", p.Guard.Held, s.held)
				check("snapshot", p.Snapshot().Endpoints, known)
				check("state", st.Endpoints(), known)
				g := p.Guard
				if g.Since != s.since || g.Release != s.release || g.Released != s.released || g.Returned != s.returned || g.Started != s.started || g.Ended != s.ended {
					t.Errorf("round %d guard = since %d release %d released %d returned %d started %v ended %v; want %d %d %d %d %v %v",
						round, g.Since, g.Release, g.Released, g.Returned, g.Started, g.Ended,
						s.since, s.release, s.released, s.returned, s.started, s.ended)
				}
				for _, h := range p.Guard.Held {
					if !slices.ContainsFunc(p.Kept, func(k endpoint.Endpoint) bool { return k.Addr == h.Addr }) {
						t.Errorf("round %d: held %v not in Kept", round, h.Addr)
					}
				}
				// Endpoint.Held marks exactly the held ones, in the plan's
				// snapshot and in the state's (what a health transition
				// between rounds hands the sinks).
				for _, snap := range []endpoint.Snapshot{p.Snapshot(), st.Snapshot(round, t0)} {
					for _, e := range snap.Endpoints {
						if want := slices.Contains(s.held, e.Addr.String()) || slices.Contains(s.going, e.Addr.String()); e.Held != want {
							t.Errorf("round %d: %v Held = %v, want %v", round, e.Addr, e.Held, want)
						}
					}
				}
			}
		})
	}
}

func TestConfigExceeds(t *testing.T) {
	tests := []struct {
		fraction   float64
		rounds     int
		due, known int
		want       bool
	}{
		{0.5, 10, 4, 6, true},
		{0.5, 10, 3, 6, false}, // exactly the fraction is allowed
		{0.5, 10, 1, 1, false}, // one alone never
		{0.5, 10, 2, 2, true},
		{0.5, 10, 2, 3, true},
		{0.5, 10, 2, 4, false},
		{0.01, 10, 2, 100, true},
		{0.1, 10, 2, 100, false},
		{0.99, 10, 100, 100, true},
		{1, 10, 100, 100, false},  // off
		{0.5, 0, 100, 100, false}, // off
		{0, 10, 100, 100, false},  // zero Config: off
	}
	for _, tt := range tests {
		cfg := Config{MissedRounds: 1, MaxRemovalFraction: tt.fraction, GuardRounds: tt.rounds}
		if got := cfg.Exceeds(tt.due, tt.known); got != tt.want {
			t.Errorf("Config{fraction %g, rounds %d}.Exceeds(%d, %d) = %v, want %v", tt.fraction, tt.rounds, tt.due, tt.known, got, tt.want)
		}
	}
}

func TestGuardOpsAndReason(t *testing.T) {
	cfg := Config{MissedRounds: 1, MaxRemovalFraction: 0.5, GuardRounds: 10}
	st, _ := Next(cfg, State{}, Observation{Round: 1, At: t0, Seen: seen("10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000")})
	_, p := Next(cfg, st, Observation{Round: 2, At: t0, Seen: seen("10.0.0.3:8000")})
	var lines []string
	for _, op := range p.Ops() {
		js, _ := json.Marshal(op)
		lines = append(lines, string(js))
	}
	want := []string{
		`{"op":"noop","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:40000","interface":"eth0","round":2,"held":true}`,
		`{"op":"noop","ip":"10.0.0.2","port":8000,"source_address":"10.0.0.2:40000","interface":"eth0","round":2,"held":true}`,
		`{"op":"noop","ip":"10.0.0.3","port":8000,"source_address":"10.0.0.3:40000","interface":"eth0","round":2}`,
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("ops =\n%s\nwant\n%s", lines, want)
	}
	const wantReason = "removal guard: holding 2 removals of 3 known servers since round 2 (more than max_removal_fraction 0.5 unseen for missed_rounds); they go ahead in 10 more rounds (round 12) if still unseen"
	if r := p.Guard.Reason(p.Round, cfg.MaxRemovalFraction); r != wantReason {
		t.Fatalf("reason = %q\nwant     %q", r, wantReason)
	}
	if r := (Guard{}).Reason(2, 0.5); r != "" {
		t.Fatalf("reason with nothing held = %q", r)
	}
}

// established returns st with every endpoint established, as if each had
// answered MissedRounds rounds in a row.
func established(st State) State {
	held := maps.Clone(st.held)
	for k, e := range held {
		e.established = true
		held[k] = e
	}
	return State{held: held, holdSince: st.holdSince}
}

// TestNextEstablished: an endpoint counts for the removal guard once
// MissedRounds complete rounds in a row saw it. A flood's identities that
// came once, or came and went, are removed when due and hold nothing.
func TestNextEstablished(t *testing.T) {
	cfg := Config{MissedRounds: 3, MaxRemovalFraction: 0.5, GuardRounds: 10}
	honest := []string{"10.0.0.1:8000", "10.0.0.2:8000"}
	var fakes []string
	for i := range 20 {
		fakes = append(fakes, fmt.Sprintf("10.0.9.%d:8000", i+1))
	}
	var st State
	var p Plan
	round := uint64(0)
	next := func(s ...string) {
		round++
		st, p = Next(cfg, st, Observation{Round: round, At: t0.Add(time.Duration(round) * time.Second), Seen: seen(s...)})
	}
	for range 3 {
		next(honest...)
	}
	if e := st.held[ap(honest[0])]; !e.established {
		t.Fatalf("after 3 rounds in a row: %+v, want established", e)
	}
	// A flood: twenty identities for two rounds (never three in a row).
	next(append(slices.Clone(honest), fakes...)...)
	next(append(slices.Clone(honest), fakes...)...)
	if p.Guard.Known != 2 {
		t.Errorf("guard known %d during the flood, want the 2 established", p.Guard.Known)
	}
	// The flood stops: its identities are removed when due (3 misses),
	// all at once, and the guard holds none of them.
	next(honest...)
	next(honest...)
	next(honest...)
	if got := addrs(p.Removed); len(got) != 20 || len(p.Guard.Held) != 0 || p.Guard.Started {
		t.Fatalf("removed %d, held %v, started %v: want the 20 fakes removed, nothing held", len(got), addrs(p.Guard.Held), p.Guard.Started)
	}
	// A miss resets a streak: seen, missed, seen, seen is not established.
	const late = "10.0.0.3:8000"
	next(append(slices.Clone(honest), late)...)
	next(honest...)
	next(append(slices.Clone(honest), late)...)
	next(append(slices.Clone(honest), late)...)
	if e := st.held[ap(late)]; e.established {
		t.Errorf("%s established after a broken streak: %+v", late, e)
	}
	next(append(slices.Clone(honest), late)...)
	if e := st.held[ap(late)]; !e.established {
		t.Errorf("%s not established after 3 rounds in a row: %+v", late, e)
	}
	// The established servers silenced together are held, as before.
	next()
	next()
	next()
	if len(p.Guard.Held) != 3 || !p.Guard.Started {
		t.Errorf("held %v, want the 3 established servers", addrs(p.Guard.Held))
	}
}

func TestNextLimits(t *testing.T) {
	src := func(ip string, addrs ...string) []Seen {
		var out []Seen
		for _, a := range addrs {
			out = append(out, Seen{Addr: ap(a), Source: ap(ip + ":9999")})
		}
		return out
	}
	cfg := Config{MissedRounds: 3, Limits: Limits{MaxServers: 5, MaxPerSource: 2}}
	st, p := Next(cfg, State{}, Observation{Round: 1, At: t0, Seen: append(
		src("10.0.0.66", "10.0.1.1:1", "10.0.1.2:1", "10.0.1.3:1", "10.0.1.4:1"),
		src("10.0.0.7", "10.0.0.7:8000")...)})
	if got := addrs(p.Added); !slices.Equal(got, []string{"10.0.0.7:8000", "10.0.1.1:1", "10.0.1.2:1"}) || p.Refused != (Refused{MaxPerSource: 2}) {
		t.Fatalf("added %v, refused %+v: want two of .66's and .7's, 2 refused per source", got, p.Refused)
	}
	// The total cap: 3 held, room for 2 more.
	st, p = Next(cfg, st, Observation{Round: 2, At: t0, Seen: append(append(
		src("10.0.0.7", "10.0.0.7:8000"),
		src("10.0.0.8", "10.0.0.8:8000")...),
		src("10.0.0.9", "10.0.0.9:8000", "10.0.0.9:8001")...)})
	if got := addrs(p.Added); !slices.Equal(got, []string{"10.0.0.8:8000", "10.0.0.9:8000"}) || p.Refused != (Refused{MaxServers: 1}) {
		t.Fatalf("added %v, refused %+v: want .8 and one of .9's, 1 refused at max_servers", got, p.Refused)
	}
	// Held servers stay at the cap, seen or not; a refused one is not held.
	_, p = Next(cfg, st, Observation{Round: 3, At: t0, Seen: src("10.0.0.9", "10.0.0.9:8001")})
	if len(p.Kept) != 5 || len(p.Added) != 0 || p.Refused.MaxServers != 1 {
		t.Errorf("kept %v added %v refused %+v", addrs(p.Kept), addrs(p.Added), p.Refused)
	}
	// Arrive refuses as Next does.
	_, added, refused := Arrive(st, src("10.0.0.10", "10.0.0.10:1"), t0, cfg.Limits)
	if len(added) != 0 || refused.MaxServers != 1 {
		t.Errorf("arrive added %v refused %+v", addrs(added), refused)
	}
}

// TestNextLimitsRotatingFlood: one source answering every round with fresh
// identities holds exactly MaxPerSource of them in every round: those
// removed in a round (MissedRounds misses) make room for that round's.
func TestNextLimitsRotatingFlood(t *testing.T) {
	cfg := Config{MissedRounds: 3, MaxRemovalFraction: 0.5, GuardRounds: 10, Limits: Limits{MaxServers: 100, MaxPerSource: 4}}
	var st State
	for round := uint64(1); round <= 12; round++ {
		var seen []Seen
		for i := range 50 {
			seen = append(seen, Seen{Addr: ap(fmt.Sprintf("10.0.0.66:%d", int(round)*100+i)), Source: ap("10.0.0.66:9999")})
		}
		var p Plan
		st, p = Next(cfg, st, Observation{Round: round, At: t0.Add(time.Duration(round) * time.Second), Seen: seen})
		if st.Len() != 4 || len(p.Guard.Held) != 0 {
			t.Fatalf("round %d: %d held (%d held by the guard), want 4 every round", round, st.Len(), len(p.Guard.Held))
		}
	}
}
