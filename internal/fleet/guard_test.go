package fleet

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// guardFleet is a leader's view over time: the registry's entries, written
// as each plan says, and the guard.
type guardFleet struct {
	t       *testing.T
	g       Guard
	current map[string]Entry[spec]
	now     time.Time
	dereg   time.Duration
}

func newGuardFleet(t *testing.T, cfg GuardConfig, servers int) *guardFleet {
	f := &guardFleet{t: t, g: Guard{Config: cfg}, current: map[string]Entry[spec]{}, now: t0, dereg: time.Minute}
	for _, a := range f.servers(servers) { // registered before the term: established
		ap := netip.MustParseAddrPort(a)
		f.current[a] = Entry[spec]{Key: a, Spec: shape{}.Spec(a, ap, Observed{Segments: []string{"s"}, Bridges: 1}), Passing: true}
	}
	return f
}

func (f *guardFleet) servers(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("10.0.0.%d:8000", i+1))
	}
	return out
}

// step moves the clock by d, plans with observed as the desired set, writes
// the plan and returns what the guard did.
func (f *guardFleet) step(d time.Duration, observed ...string) GuardState {
	f.t.Helper()
	f.now = f.now.Add(d)
	desired := map[netip.AddrPort]Observed{}
	for _, a := range observed {
		desired[netip.MustParseAddrPort(a)] = Observed{Segments: []string{"s"}, Bridges: 1}
	}
	p := Reconcile(shape{}, desired, f.current, f.now, f.dereg, false)
	p, st := GuardPlan(&f.g, f.now, p, f.current, desiredKeys(shape{}, desired))
	for _, e := range slices.Concat(p.Register, p.Update, p.Pass, p.Fail) {
		f.current[e.Key] = e
	}
	for _, e := range p.Pass {
		e.Passing, e.Since = true, time.Time{}
		f.current[e.Key] = e
	}
	for _, e := range p.Remove {
		delete(f.current, e.Key)
	}
	return st
}

// passing lists the passing entries, unobserved the others.
func (f *guardFleet) state() (passing, unobserved []string) {
	for _, k := range slices.Sorted(maps.Keys(f.current)) {
		if f.current[k].Passing {
			passing = append(passing, k)
		} else {
			unobserved = append(unobserved, k)
		}
	}
	return passing, unobserved
}

func (f *guardFleet) want(what string, passing, unobserved int) {
	f.t.Helper()
	p, u := f.state()
	if len(p) != passing || len(u) != unobserved {
		f.t.Errorf("%s: %d passing %v, %d unobserved %v; want %d and %d", what, len(p), p, len(u), u, passing, unobserved)
	}
}

var guardOn = GuardConfig{MaxFraction: 0.5, Confirm: 10 * time.Second, Window: 5 * time.Second, Established: 3 * time.Second, HeldReady: true}

// TestGuardSmallSegments is the hole of a per-bridge guard: four servers on
// two bridges (3 + 1) silenced together. The lone bridge's server goes
// unobserved a round before the others (it holds no guard of its own); the
// fleet's guard counts the four together and holds them all, passing.
func TestGuardSmallSegments(t *testing.T) {
	f := newGuardFleet(t, guardOn, 4)
	all := f.servers(4)
	f.step(time.Second, all...)
	st := f.step(time.Second, all[:3]...) // the lone server: 1 of 4, no mass silence yet
	if len(st.Held) != 0 {
		t.Fatalf("one of four held: %+v", st)
	}
	f.want("one of four unobserved", 3, 1)
	st = f.step(2 * time.Second) // the three others, within the window
	if !st.Started || len(st.Held) != 4 || st.Going != 4 || st.Known != 4 {
		t.Fatalf("guard = %+v, want an episode holding 4 of 4", st)
	}
	f.want("held: all passing (fail open), the lone one passed again", 4, 0)
	for i := range 8 {
		st = f.step(time.Second)
		if len(st.Held) != 4 || st.Started || st.Ended {
			t.Fatalf("second %d of the hold: %+v", i+1, st)
		}
		f.want("during the hold", 4, 0)
	}
	st = f.step(2 * time.Second) // confirmed: unobserved from now
	if !st.Ended || st.Released != 4 || len(st.Held) != 0 {
		t.Fatalf("after Confirm: %+v, want the episode ended with 4 released", st)
	}
	f.want("released", 0, 4)
	st = f.step(time.Second) // released ones are never held again
	if len(st.Held) != 0 || st.Started {
		t.Fatalf("released servers held again: %+v", st)
	}
	f.step(f.dereg)
	f.want("removed deregister_after after their release", 0, 0)
}

func TestGuardRules(t *testing.T) {
	t.Run("half of them go at once, unheld", func(t *testing.T) {
		f := newGuardFleet(t, guardOn, 6)
		all := f.servers(6)
		if st := f.step(time.Second, all[3:]...); len(st.Held) != 0 {
			t.Fatalf("3 of 6 held: %+v", st)
		}
		f.want("3 of 6", 3, 3)
	})
	t.Run("outside the window two silences are judged apart", func(t *testing.T) {
		f := newGuardFleet(t, guardOn, 6)
		all := f.servers(6)
		f.step(time.Second, all[3:]...)
		if st := f.step(guardOn.Window+time.Second, all[4:]...); len(st.Held) != 0 || st.Known != 3 {
			t.Fatalf("held across windows: %+v", st)
		}
		f.want("two separate waves, 3 then 1 of the 3 left", 2, 4)
	})
	t.Run("within the window the same waves are one silence", func(t *testing.T) {
		f := newGuardFleet(t, guardOn, 6)
		all := f.servers(6)
		f.step(time.Second, all[3:]...)
		if st := f.step(guardOn.Window-time.Second, all[4:]...); len(st.Held) != 4 || st.Known != 6 {
			t.Fatalf("4 of 6 within the window: %+v", st)
		}
		f.want("one silence, held passing", 6, 0)
	})
	t.Run("observed again during the hold: it simply stays", func(t *testing.T) {
		f := newGuardFleet(t, guardOn, 4)
		all := f.servers(4)
		f.step(time.Second)
		st := f.step(time.Second, all...)
		if st.Returned != 4 || !st.Ended {
			t.Fatalf("%+v, want 4 returned and the episode ended", st)
		}
		f.want("back", 4, 0)
	})
	t.Run("unobserved mode: held servers turn unobserved but are not removed", func(t *testing.T) {
		cfg := guardOn
		cfg.HeldReady = false
		f := newGuardFleet(t, cfg, 4)
		f.dereg = 2 * time.Second
		st := f.step(time.Second)
		if len(st.Held) != 4 {
			t.Fatalf("%+v, want 4 held", st)
		}
		f.want("held, unobserved", 0, 4)
		f.step(5 * time.Second)
		f.want("past deregister_after, still held", 0, 4)
		f.step(5 * time.Second) // released
		f.step(time.Millisecond)
		f.want("removed once released", 0, 0)
	})
	t.Run("servers observed only briefly never hold the guard", func(t *testing.T) {
		f := newGuardFleet(t, guardOn, 2)
		all := f.servers(2)
		fakes := []string{"10.9.0.1:8000", "10.9.0.2:8000", "10.9.0.3:8000", "10.9.0.4:8000"}
		f.step(time.Second, slices.Concat(all, fakes)...)
		if st := f.step(time.Second, all...); len(st.Held) != 0 || st.Known != 2 {
			t.Fatalf("a flood's identities held: %+v", st)
		}
		f.want("fakes unobserved", 2, 4)
	})
	t.Run("released, observed again, silenced again: held again", func(t *testing.T) {
		f := newGuardFleet(t, guardOn, 4)
		all := f.servers(4)
		f.step(time.Second)
		f.step(guardOn.Confirm) // released
		f.want("released", 0, 4)
		f.step(time.Second, all...) // back
		f.step(time.Second, all...)
		if st := f.step(time.Second); !st.Started || len(st.Held) != 4 {
			t.Fatalf("second silence: %+v, want 4 held again", st)
		}
		f.want("held again", 4, 0)
	})
	t.Run("off: nothing held", func(t *testing.T) {
		f := newGuardFleet(t, GuardConfig{MaxFraction: 1, Confirm: time.Second}, 4)
		if st := f.step(time.Second); len(st.Held) != 0 {
			t.Fatalf("%+v", st)
		}
		f.want("off", 0, 4)
	})
}

func TestGuardReason(t *testing.T) {
	st := GuardState{Held: []string{"a", "b"}, Known: 4, Since: t0, Release: t0.Add(10 * time.Second)}
	r := st.Reason(t0.Add(3*time.Second), 0.5, true)
	for _, want := range []string{"holding 2 of 4 servers", "since 2026-12-01T06:00:00Z", "kept passing", "max_removal_fraction 0.5", "in 7s (at 2026-12-01T06:00:10Z)"} {
		if !strings.Contains(r, want) {
			t.Errorf("Reason = %q, lacks %q", r, want)
		}
	}
	if (GuardState{}).Reason(t0, 0.5, true) != "" {
		t.Error("Reason with nothing held is not empty")
	}
}

func TestGuardReportAt(t *testing.T) {
	hold := func(a string) GuardHold { return GuardHold{Key: a, Addr: netip.MustParseAddrPort(a)} }
	rep := GuardReport{Holds: []GuardHold{hold("10.0.0.1:80"), hold("10.0.0.2:80"), hold("10.0.0.2:8000"), hold("10.0.0.3:80")}}
	tests := []struct {
		ip   string
		port uint16
		want []string
	}{
		{"10.0.0.2", 0, []string{"10.0.0.2:80", "10.0.0.2:8000"}},
		{"10.0.0.2", 8000, []string{"10.0.0.2:8000"}},
		{"10.0.0.2", 9000, nil},
		{"10.0.0.1", 0, []string{"10.0.0.1:80"}},
		{"10.0.0.3", 80, []string{"10.0.0.3:80"}},
		{"::ffff:10.0.0.3", 0, []string{"10.0.0.3:80"}},
		{"10.0.0.4", 0, nil},
		{"10.0.0.0", 0, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, h := range rep.At(netip.MustParseAddr(tt.ip), tt.port) {
			got = append(got, h.Key)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("At(%s, %d) = %v, want %v", tt.ip, tt.port, got, tt.want)
		}
	}
	if got := (GuardReport{}).At(netip.MustParseAddr("10.0.0.1"), 0); got != nil {
		t.Errorf("At on an empty report = %v", got)
	}
}

func TestGuardRecord(t *testing.T) {
	var nilRec *GuardRecord
	nilRec.Keep(GuardReport{})
	nilRec.Clear()
	if _, ok := nilRec.Last(); ok {
		t.Error("a nil record has a report")
	}
	var r GuardRecord
	if _, ok := r.Last(); ok {
		t.Error("a new record has a report")
	}
	r.Keep(GuardReport{State: GuardState{Held: []string{"a"}}})
	if rep, ok := r.Last(); !ok || len(rep.State.Held) != 1 {
		t.Errorf("Last = %+v %v", rep, ok)
	}
	r.Clear()
	if _, ok := r.Last(); ok {
		t.Error("a cleared record has a report")
	}
}
