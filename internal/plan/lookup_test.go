package plan

import (
	"net/netip"
	"testing"
	"time"
)

func TestLookup(t *testing.T) {
	cfg := Config{MissedRounds: 2, MaxRemovalFraction: 0.5, GuardRounds: 3}
	a, b, c := netip.MustParseAddrPort("10.0.0.1:8000"), netip.MustParseAddrPort("10.0.0.2:8000"), netip.MustParseAddrPort("10.0.0.1:9000")
	at := time.Unix(1000, 0)
	seen := func(addrs ...netip.AddrPort) []Seen {
		var s []Seen
		for _, x := range addrs {
			s = append(s, Seen{Addr: x, Source: netip.AddrPortFrom(x.Addr(), 9999)})
		}
		return s
	}
	var st State
	st, _ = Next(cfg, st, Observation{Round: 1, At: at, Seen: seen(a, b, c)})
	st, _ = Next(cfg, st, Observation{Round: 2, At: at, Seen: seen(a, b, c)})
	in, ok := st.Lookup(cfg, a)
	if !ok || in.Misses != 0 || !in.Established || in.Held || in.RoundsLeft != 2 {
		t.Fatalf("after two rounds: %+v %v", in, ok)
	}
	// Round 3 sees only c: a and b miss once.
	st, _ = Next(cfg, st, Observation{Round: 3, At: at, Seen: seen(c)})
	if in, _ := st.Lookup(cfg, a); in.Misses != 1 || in.RoundsLeft != 1 || in.Held {
		t.Fatalf("one miss: %+v", in)
	}
	// Round 4: a and b are due (2 of 3 established > 0.5): held.
	st, p := Next(cfg, st, Observation{Round: 4, At: at, Seen: seen(c)})
	if len(p.Guard.Held) != 2 {
		t.Fatalf("guard held %d, want 2", len(p.Guard.Held))
	}
	in, _ = st.Lookup(cfg, b)
	if !in.Held || in.HoldSince != 4 || in.RoundsLeft != 3 {
		t.Fatalf("held: %+v", in)
	}
	if _, ok := st.Lookup(cfg, netip.MustParseAddrPort("10.9.9.9:1")); ok {
		t.Fatal("unknown address found")
	}
	got := st.Lookups(cfg, netip.MustParseAddr("10.0.0.1"))
	if len(got) != 2 || got[0].Endpoint.Addr != a || got[1].Endpoint.Addr != c {
		t.Fatalf("Lookups by IP: %+v", got)
	}
}
