package plan

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// TestArrive: a round's arrivals enter the state at once, only for servers
// the state does not hold; the round's end then reports no add for them,
// and removals still wait for MissedRounds.
func TestArrive(t *testing.T) {
	const a, b, c, d = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:9000", "10.0.0.4:8000"
	tests := []struct {
		name  string
		cfg   Config
		setup []step   // complete rounds before the round in progress
		early [][]Seen // arrival batches of the round in progress
		added [][]string
		end   step // the round's end: Next with its whole Seen
	}{
		{
			name:  "a new server is added as it arrives, not again at the round's end",
			cfg:   Config{MissedRounds: 3},
			early: [][]Seen{seen(b), seen(a)},
			added: [][]string{{b}, {a}},
			end:   step{seen: seen(b, a), unchanged: []string{a, b}},
		},
		{
			name:  "a known server arrives: nothing is added",
			cfg:   Config{MissedRounds: 3},
			setup: []step{{seen: seen(a)}},
			early: [][]Seen{seen(a), seen(a, c)},
			added: [][]string{nil, {c}},
			end:   step{seen: seen(a, c), unchanged: []string{a, c}},
		},
		{
			name:  "a server missing rounds arrives: not re-added, its misses reset at the end",
			cfg:   Config{MissedRounds: 2},
			setup: []step{{seen: seen(a, b)}, {seen: seen(b)}}, // a missed once
			early: [][]Seen{seen(a)},
			added: [][]string{nil},
			end:   step{seen: seen(a), unchanged: []string{a, b}}, // b's first miss
		},
		{
			name:  "removals still wait for missed_rounds while others arrive",
			cfg:   Config{MissedRounds: 2},
			setup: []step{{seen: seen(a, b)}, {seen: seen(a)}}, // b missed once
			early: [][]Seen{seen(c)},
			added: [][]string{{c}},
			end:   step{seen: seen(a, c), unchanged: []string{a, c}, removes: []string{b}},
		},
		{
			name:  "an arrival does not remove: a server unseen so far stays until the end",
			cfg:   Config{MissedRounds: 1},
			setup: []step{{seen: seen(a)}},
			early: [][]Seen{seen(b)},
			added: [][]string{{b}},
			end:   step{seen: seen(b), unchanged: []string{b}, removes: []string{a}},
		},
		{
			name:  "a removal the guard holds is kept, its server's reply adds nothing",
			cfg:   Config{MissedRounds: 1, MaxRemovalFraction: 0.5, GuardRounds: 3},
			setup: []step{{seen: seen(a, b, c)}, {seen: seen(c)}}, // a, b held
			early: [][]Seen{seen(a, d)},
			added: [][]string{{d}},
			end:   step{seen: seen(a, c, d), unchanged: []string{a, b, c, d}},
		},
		{
			name:  "invalid and duplicate entries: the first of an address wins",
			cfg:   Config{MissedRounds: 3},
			early: [][]Seen{append(append([]Seen{{}}, seen(a, a)...), seen(b)...)},
			added: [][]string{{a, b}},
			end:   step{seen: seen(a, b), unchanged: []string{a, b}},
		},
		{
			name:  "the round fails after an arrival: the arrival stays",
			cfg:   Config{MissedRounds: 3},
			early: [][]Seen{seen(a)},
			added: [][]string{{a}},
			end:   step{failed: true, unchanged: []string{a}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st State
			round := uint64(0)
			for _, s := range tt.setup {
				round++
				st, _ = Next(tt.cfg, st, Observation{Round: round, At: t0.Add(time.Duration(round) * time.Minute), Seen: s.seen})
			}
			round++
			for i, batch := range tt.early {
				before := st.Endpoints()
				next, added, _ := Arrive(st, batch, t0, tt.cfg.Limits)
				if got := addrs(added); !slices.Equal(got, orEmpty(tt.added[i])) {
					t.Errorf("batch %d added %v, want %v", i, got, orEmpty(tt.added[i]))
				}
				if !reflect.DeepEqual(st.Endpoints(), before) {
					t.Errorf("batch %d modified the state it was given", i)
				}
				want := append(addrs(before), addrs(added)...)
				slices.Sort(want)
				if got := addrs(next.Endpoints()); !slices.Equal(got, want) {
					t.Errorf("batch %d: state %v, want %v", i, got, want)
				}
				if snap := next.Snapshot(round, t0); snap.Round != round || !reflect.DeepEqual(snap.Endpoints, next.Endpoints()) {
					t.Errorf("batch %d: snapshot %+v, want round %d and the state's endpoints", i, snap, round)
				}
				st = next
			}
			_, p := Next(tt.cfg, st, Observation{Round: round, At: t0.Add(time.Hour), Failed: tt.end.failed, Seen: tt.end.seen})
			if got := addrs(p.Added); !slices.Equal(got, orEmpty(tt.end.adds)) {
				t.Errorf("round end adds %v, want %v", got, orEmpty(tt.end.adds))
			}
			if got := addrs(p.Removed); !slices.Equal(got, orEmpty(tt.end.removes)) {
				t.Errorf("round end removes %v, want %v", got, orEmpty(tt.end.removes))
			}
			if got := addrs(p.Kept); !slices.Equal(got, orEmpty(tt.end.unchanged)) {
				t.Errorf("round end kept %v, want %v", got, orEmpty(tt.end.unchanged))
			}
		})
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestArriveFields: an arrival is stamped with its reply's time (the
// batch's when unknown), and the round's end keeps that FirstSeen.
func TestArriveFields(t *testing.T) {
	a, b := ap("10.0.0.1:8000"), ap("10.0.0.2:8000")
	at, batch := t0.Add(time.Second), t0.Add(2*time.Second)
	st, added, _ := Arrive(State{}, []Seen{
		{Addr: a, Source: ap("10.0.0.1:9999"), Interface: "eth0", At: at},
		{Addr: b, Source: ap("10.0.0.2:9999"), Interface: "eth1"},
	}, batch, Limits{})
	want := []endpoint.Endpoint{
		{Addr: a, Source: ap("10.0.0.1:9999"), Interface: "eth0", FirstSeen: at, LastSeen: at},
		{Addr: b, Source: ap("10.0.0.2:9999"), Interface: "eth1", FirstSeen: batch, LastSeen: batch},
	}
	if !reflect.DeepEqual(added, want) {
		t.Fatalf("added %+v, want %+v", added, want)
	}
	if e := st.held[a]; e.misses != 0 {
		t.Errorf("misses %d, want 0", e.misses)
	}
	if same, none, _ := Arrive(st, []Seen{{Addr: a, At: t0.Add(time.Hour)}}, batch, Limits{}); none != nil || !reflect.DeepEqual(same.Endpoints(), want) {
		t.Errorf("a known arrival: added %v, state %+v; want nothing and the state unchanged", none, same.Endpoints())
	}
	end := t0.Add(5 * time.Second)
	_, p := Next(Config{MissedRounds: 3}, st, Observation{Round: 1, At: end, Seen: []Seen{{Addr: a, Source: ap("10.0.0.1:9999"), Interface: "eth0", At: at}}})
	if len(p.Added) != 0 || len(p.Kept) != 2 || !p.Kept[0].FirstSeen.Equal(at) || !p.Kept[1].FirstSeen.Equal(batch) {
		t.Errorf("round end plan %+v, want no add and the arrivals' FirstSeen kept", p)
	}
}
