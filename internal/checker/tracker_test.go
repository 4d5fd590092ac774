package checker

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

var (
	t0    = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	addrA = netip.MustParseAddrPort("192.0.2.1:8000")
	addrB = netip.MustParseAddrPort("192.0.2.2:8000")
)

func pass(out string) appcheck.Result {
	return appcheck.Result{OK: true, Status: 200, Reason: "200 OK", Output: out}
}
func fail(out string) appcheck.Result {
	return appcheck.Result{Status: 503, Reason: "503 Service Unavailable", Output: out}
}

// TestTrackerEdges walks every edge of the state machine from a fresh
// target: a string of results (P pass, F fail), and the state after each.
func TestTrackerEdges(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		results    string
		states     string // after each result: p(ending), r(eady), f(ailing)
	}{
		{"pending rises after rise passes", 2, 3, "PP", "pr"},
		{"pending rise 1", 1, 3, "P", "r"},
		{"pending falls after fall failures", 2, 3, "FFF", "ppf"},
		{"pending fall 1", 2, 1, "F", "f"},
		{"a failure resets the passes", 2, 3, "PFP", "ppp"},
		{"a pass resets the failures", 2, 3, "FFPFF", "ppppp"},
		{"ready falls after fall failures", 2, 3, "PPFFF", "prrrf"},
		{"ready stays through fewer failures", 2, 3, "PPFFPFF", "prrrrrr"},
		{"failing rises after rise passes", 2, 3, "FFFPP", "ppffr"},
		{"failing stays through fewer passes", 3, 2, "FFPPFPP", "pfffff" + "f"},
		{"failing stays failing", 2, 2, "FFFFF", "pffff"},
		{"ready stays ready", 2, 2, "PPPPP", "prrrr"},
		{"flapping faster than the hysteresis", 2, 2, "PPFPFPFPF", "prrrrrrrr"},
		{"a full cycle", 1, 1, "PFPF", "rfrf"},
	}
	health := map[byte]endpoint.Health{'p': endpoint.Pending, 'r': endpoint.Ready, 'f': endpoint.Failing}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tt.rise, tt.fall)
			tg, isNew := tr.add(addrA, t0)
			if !isNew || tg.check.State != endpoint.Pending || !tg.check.Since.Equal(t0) || tg.check.Output != tr.pendingOutput {
				t.Fatalf("a new target: %+v, want pending since t0", tg.check)
			}
			prev := tg.check
			for i := range len(tt.results) {
				now := t0.Add(time.Duration(i+1) * time.Second)
				out := fmt.Sprintf("check %d", i)
				r := fail(out)
				if tt.results[i] == 'P' {
					r = pass(out)
				}
				tn, changed, known := tr.record(addrA, tg.gen, r, now)
				want := health[tt.states[i]]
				if !known || tg.check.State != want {
					t.Fatalf("after %q: state %v (known %v), want %v", tt.results[:i+1], tg.check.State, known, want)
				}
				if changed != (want != prev.State) {
					t.Fatalf("after %q: changed %v, from %v to %v", tt.results[:i+1], changed, prev.State, want)
				}
				if changed {
					if tn != (transition{addr: addrA, from: prev.State, to: want, output: out}) {
						t.Errorf("transition %+v", tn)
					}
					if tg.check != (endpoint.Check{State: want, Output: out, Since: now}) {
						t.Errorf("check %+v, want the transition's output and time", tg.check)
					}
				} else if tg.check != prev {
					t.Errorf("check changed without a transition: %+v, was %+v", tg.check, prev)
				}
				prev = tg.check
				if tr.count[want] != 1 || tr.count[0]+tr.count[1]+tr.count[2] != 1 {
					t.Errorf("counts %v", tr.count)
				}
			}
		})
	}
}

func TestTrackerDrop(t *testing.T) {
	tr := newTracker(1, 1)
	a, _ := tr.add(addrA, t0)
	b, _ := tr.add(addrB, t0)
	if again, isNew := tr.add(addrA, t0.Add(time.Second)); isNew || again != a {
		t.Fatal("adding a followed address again made a new target")
	}
	tr.record(addrA, a.gen, pass("up"), t0)
	if _, ok := tr.drop(addrA); !ok {
		t.Fatal("drop of a followed address")
	}
	if _, ok := tr.drop(addrA); ok {
		t.Fatal("a second drop found it")
	}
	if _, ok := tr.history(addrA); ok {
		t.Fatal("a dropped target has a history")
	}
	// A late result for the dropped target: ignored.
	if _, changed, known := tr.record(addrA, a.gen, fail("late"), t0); changed || known {
		t.Fatal("a result for a dropped target was recorded")
	}
	// Added again: pending, a new life; the old life's result is ignored.
	a2, isNew := tr.add(addrA, t0.Add(time.Minute))
	if !isNew || a2.gen == a.gen || a2.check.State != endpoint.Pending || !a2.check.Since.Equal(t0.Add(time.Minute)) {
		t.Fatalf("re-added: %+v, gen %d (was %d)", a2.check, a2.gen, a.gen)
	}
	if _, _, known := tr.record(addrA, a.gen, pass("old life"), t0); known {
		t.Fatal("a result of the old life was recorded in the new one")
	}
	if h, _ := tr.history(addrA); len(h.Last) != 0 || h.Passes != 0 {
		t.Fatalf("the new life has history %+v", h)
	}
	if tr.count != [3]int{endpoint.Pending: 2} {
		t.Errorf("counts %v, want 2 pending", tr.count)
	}
	_ = b
}

func TestTrackerHistory(t *testing.T) {
	tr := newTracker(2, 2)
	tg, _ := tr.add(addrA, t0)
	for i := range HistoryLen + 3 {
		r := appcheck.Result{
			At: t0.Add(time.Duration(i) * time.Second), OK: i%3 != 0, Status: 200 + i, Latency: time.Duration(i) * time.Millisecond,
			Reason: fmt.Sprintf("reason %d", i%4), Output: fmt.Sprintf("output %d", i),
		}
		tr.record(addrA, tg.gen, r, t0)
	}
	h, ok := tr.history(addrA)
	if !ok || len(h.Last) != HistoryLen {
		t.Fatalf("history %v, %d results, want %d", ok, len(h.Last), HistoryLen)
	}
	for j, r := range h.Last {
		i := j + 3 // the first 3 fell out
		want := appcheck.Result{At: t0.Add(time.Duration(i) * time.Second), OK: i%3 != 0, Status: 200 + i,
			Latency: time.Duration(i) * time.Millisecond, Reason: fmt.Sprintf("reason %d", i%4)}
		if j == len(h.Last)-1 {
			want.Output = fmt.Sprintf("output %d", i)
		}
		if !r.At.Equal(want.At) || r.OK != want.OK || r.Status != want.Status || r.Latency != want.Latency || r.Reason != want.Reason || r.Output != want.Output {
			t.Errorf("Last[%d] = %+v, want %+v", j, r, want)
		}
	}
	if h.Passes != 0 || h.Fails != 1 { // result 18 failed, 16 and 17 passed
		t.Errorf("passes %d, fails %d", h.Passes, h.Fails)
	}
}

func TestTrackerReasons(t *testing.T) {
	tr := newTracker(1, 1)
	tg, _ := tr.add(addrA, t0)
	long := strings.Repeat("x", 300)
	tr.record(addrA, tg.gen, appcheck.Result{Reason: long}, t0)
	if h, _ := tr.history(addrA); h.Last[0].Reason != long[:appcheck.MaxReason] {
		t.Errorf("a long reason kept as %d bytes", len(h.Last[0].Reason))
	}
	for i := range maxReasons + 10 {
		tr.record(addrA, tg.gen, appcheck.Result{Reason: fmt.Sprint(i)}, t0)
	}
	if len(tr.reasons) != maxReasons {
		t.Errorf("%d reasons kept, want at most %d", len(tr.reasons), maxReasons)
	}
	if h, _ := tr.history(addrA); h.Last[len(h.Last)-1].Reason != reasonLost {
		t.Errorf("a reason beyond the bound reads %q", h.Last[len(h.Last)-1].Reason)
	}
}

// FuzzTracker drives the tracker with random adds, drops and results
// (some for an earlier life of a target) and checks it against the rules:
// a state changes only on a result, to ready only after rise passes in a
// row of the target's current life, to failing only after fall failures
// in a row, and always when those hold; Check changes only at a
// transition; dropped targets are gone; the counts add up.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{2, 3, 0, 4, 4, 8, 8, 12, 1, 0, 4})
	f.Add([]byte{1, 1, 0, 1, 2, 4, 5, 6, 8, 9, 10, 3, 0, 4, 7})
	f.Add([]byte{3, 2, 0, 4, 4, 4, 8, 8, 8, 8, 4, 4, 4, 3, 0, 12, 4})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 2 {
			return
		}
		rise, fall := int(ops[0]%4)+1, int(ops[1]%4)+1
		tr := newTracker(rise, fall)
		addrs := []netip.AddrPort{addrA, addrB, netip.MustParseAddrPort("192.0.2.3:80")}
		type life struct {
			gen     uint64
			results []bool
			check   endpoint.Check
		}
		model := map[netip.AddrPort]*life{}
		oldGens := map[netip.AddrPort]uint64{}
		now := t0
		for _, op := range ops[2:] {
			now = now.Add(time.Second)
			a := addrs[int(op>>2)%len(addrs)]
			switch op & 3 {
			case 0: // add
				tg, isNew := tr.add(a, now)
				if isNew != (model[a] == nil) {
					t.Fatalf("add %v: new %v, model holds %v", a, isNew, model[a] != nil)
				}
				if isNew {
					model[a] = &life{gen: tg.gen, check: tg.check}
					if tg.check.State != endpoint.Pending {
						t.Fatalf("a new target is %v", tg.check.State)
					}
				}
			case 1: // drop
				_, ok := tr.drop(a)
				if ok != (model[a] != nil) {
					t.Fatalf("drop %v: %v", a, ok)
				}
				if ok {
					oldGens[a] = model[a].gen
					delete(model, a)
				}
			default: // a result, pass (2) or fail (3); for a dropped life when there is one and op&16
				ok := op&3 == 2
				r := appcheck.Result{OK: ok, Output: fmt.Sprint("result at ", now)}
				m := model[a]
				gen, stale := oldGens[a], true
				if m != nil && (op&16 == 0 || gen == 0) {
					gen, stale = m.gen, false
				}
				tn, changed, known := tr.record(a, gen, r, now)
				if stale || m == nil {
					if known || changed {
						t.Fatalf("a result for a dropped life of %v was recorded", a)
					}
					break
				}
				m.results = append(m.results, ok)
				tail := func(n int, want bool) bool {
					if len(m.results) < n {
						return false
					}
					for _, v := range m.results[len(m.results)-n:] {
						if v != want {
							return false
						}
					}
					return true
				}
				prev := m.check.State
				wantTo := prev
				if ok && prev != endpoint.Ready && tail(rise, true) {
					wantTo = endpoint.Ready
				}
				if !ok && prev != endpoint.Failing && tail(fall, false) {
					wantTo = endpoint.Failing
				}
				if changed != (wantTo != prev) || (changed && (tn.from != prev || tn.to != wantTo || tn.output != r.Output)) {
					t.Fatalf("results %v from %v (rise %d, fall %d): changed %v %+v, want %v", m.results, prev, rise, fall, changed, tn, wantTo)
				}
				if changed {
					m.check = endpoint.Check{State: wantTo, Output: r.Output, Since: now}
				}
			}
			// Every target as the model says; no other changed.
			count := [3]int{}
			for _, a := range addrs {
				h, ok := tr.history(a)
				m := model[a]
				if ok != (m != nil) {
					t.Fatalf("%v: followed %v, model %v", a, ok, m != nil)
				}
				if !ok {
					continue
				}
				if h.State != m.check.State || !h.Since.Equal(m.check.Since) || h.Output != m.check.Output {
					t.Fatalf("%v: %v since %v %q, model %+v", a, h.State, h.Since, h.Output, m.check)
				}
				count[h.State]++
			}
			if count != tr.count || len(tr.targets) != len(model) {
				t.Fatalf("counts %v, targets %d; model %v, %d", tr.count, len(tr.targets), count, len(model))
			}
		}
	})
}
