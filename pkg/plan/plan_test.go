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

	"github.com/udp-discovery-bridge/bridge/pkg/endpoint"
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
		seed   []endpoint.Endpoint
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
			name:   "start-up grace with a seeded state",
			missed: 1,
			seed: []endpoint.Endpoint{
				{Addr: ap(a), FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(-time.Hour)},
				{Addr: ap(b), FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(-time.Hour)},
			},
			steps: []step{
				{failed: true, unchanged: []string{a, b}},
				{failed: true, unchanged: []string{a, b}},
				{seen: seen(a), unchanged: []string{a}, removes: []string{b}},
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
			cfg := Config{MissedRounds: tt.missed}
			st := State{}
			if tt.seed != nil {
				st = Seed(tt.seed)
			}
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
	if !st.Complete() {
		t.Fatal("state not complete after a complete round")
	}

	t.Run("miss keeps last seen fields", func(t *testing.T) {
		st2, p2 := Next(cfg, st, Observation{Round: 2, At: t0.Add(time.Minute)})
		if !reflect.DeepEqual(p2.Kept, []endpoint.Endpoint{want}) {
			t.Fatalf("unchanged = %+v, want %+v", p2.Kept, want)
		}
		if m, ok := st2.Misses(a); !ok || m != 1 {
			t.Fatalf("misses = %d, %v; want 1, true", m, ok)
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
		if m, _ := st3.Misses(a); m != 0 {
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
			complete := st.complete
			Next(cfg, st, o)
			Next(cfg, st, o)
			if !maps.Equal(before, st.held) || complete != st.complete {
				t.Fatalf("prev modified: %v -> %v", before, st.held)
			}
		})
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
