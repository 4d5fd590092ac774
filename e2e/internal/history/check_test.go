package history

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// all lists s1 s2 s3 passing.
func all(float64) map[string]Health { return list("s1", "s2", "s3") }

// want is a violation as the tests spell it: "invariant +at server".
func spell(v Verdict) []string {
	var out []string
	for _, x := range v.Violations {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", x.Invariant, rel(v.Start, x.At), x.Server)))
	}
	return out
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *hist
		want []string
	}{
		{"steady", testHist().steady().reads(3, 20, 0.5, all), nil},

		// no-live-removal: protected until missed_rounds (2) rounds
		// after its last reply to a live bridge.
		{"removed at the live bound", testHist().steady().answers(10, "s1", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 12 {
					return all(s)
				}
				return list("s2", "s3")
			}), nil},
		{"removed inside the live bound", testHist().steady().answers(10, "s1", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 11.5 {
					return all(s)
				}
				return list("s2", "s3")
			}), []string{"no-live-removal +11.5s s1"}},
		{"never listed is not removed", testHist().steady().
			reads(3, 12, 0.5, func(float64) map[string]Health { return list("s2", "s3") }).
			reads(12.5, 20, 0.5, all), nil},
		{"a failed read is no read", testHist().steady().reads(3, 7.5, 0.5, all).readErr(8, "refused").reads(8.5, 20, 0.5, all), nil},
		{"a wipe empties the registry", testHist().steady().registry(10, RegistryWiped).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s >= 10 && s < 12 {
					return list()
				}
				return all(s)
			}), nil},
		{"a restarting registry answers a partial read", testHist().steady().registry(10, RegistryDown).registry(13, RegistryUp).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s == 12 {
					return list()
				}
				return all(s)
			}), nil},
		{"the same read with the registry up", testHist().steady().
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s == 12 {
					return list()
				}
				return all(s)
			}), []string{"no-live-removal +12s s1", "no-live-removal +12s s2", "no-live-removal +12s s3"}},
		{"a bridge cut from its segment", testHist().steady().bridge(10, "b1", BridgeCutSegment).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 11.5 {
					return all(s)
				}
				return list("s1", "s2")
			}), []string{"no-live-removal +11.5s s3"}},

		// unobserved-not-ready: the fleet loses s3 3 s after its last
		// reply (8 s); it may pass for the window and the hold (7 s)
		// and the slack (1 s) more.
		{"passing until the bound", testHist().steady().answers(5, "s3", false).reads(3, 16, 0.5, all), nil},
		{"passing past the bound", testHist().steady().answers(5, "s3", false).reads(3, 17, 0.5, all),
			[]string{"unobserved-not-ready +16.5s s3"}},
		{"guard off: no hold", testHist().mod(func(c *Config) { c.MaxRemovalFraction = 1 }).steady().
			answers(5, "s3", false).reads(3, 10, 0.5, all), []string{"unobserved-not-ready +9.5s s3"}},
		{"held unobserved: no hold", testHist().mod(func(c *Config) { c.RemovalGuardHeld = HeldUnobserved }).steady().
			answers(5, "s3", false).reads(3, 10, 0.5, all), []string{"unobserved-not-ready +9.5s s3"}},
		{"a paused bridge's observation stands", testHist().steady().bridge(10, "b1", BridgePaused).reads(3, 23, 0.5, all),
			[]string{"unobserved-not-ready +22.5s s3"}},
		{"no leader: excused", testHist().steady().answers(5, "s3", false).termEnd(6, "a1").reads(3, 20, 0.5, all),
			[]string{"converges +19s"}},
		{"registry down: excused, then the grace", testHist().steady().answers(5, "s3", false).
			registry(6, RegistryDown).registry(20, RegistryUp).
			reads(3, 5.5, 0.5, all).reads(20.5, 28, 0.5, all),
			[]string{"unobserved-not-ready +27.5s s3"}},
		{"an unknown server", testHist().steady().
			reads(3, 16, 0.5, func(float64) map[string]Health { return list("s1", "s2", "s3", "x9") }),
			[]string{"unobserved-not-ready +8s x9", "converges +14s x9"}},

		// single-writer.
		{"a hand-over within slack", testHist().steady().termEnd(10.5, "a1").term(10, "a2").write(10.2, "a1", 1).write(11, "a2", 1), nil},
		{"a hand-over beyond slack", testHist().steady().termEnd(11.5, "a1").term(10, "a2"), []string{"single-writer +10s"}},
		{"a paused leader leads no more", testHist().steady().bridge(10, "a1", BridgePaused).term(14, "a2").
			back(20, "a1", BridgePaused).termEnd(20.5, "a1"), nil},
		{"a killed leader's term ends", testHist().steady().bridge(10, "a1", BridgeDown).term(14, "a2").write(14.5, "a2", 2), nil},
		{"a write after the term", testHist().steady().termEnd(10, "a1").write(10.8, "a1", 1).write(11.5, "a1", 1),
			[]string{"single-writer +11.5s"}},
		{"a write in another's term", testHist().steady().write(5, "b1", 1), []string{"single-writer +5s", "single-writer +5s"}},

		// mass-silence-held: 2 of 3 servers silent at once are held
		// from 14 s (the silence + 3 rounds + slack) to 15 s (the
		// silence + 1 + 4 rounds).
		{"held", testHist().steady().answers(10, "s1", false).answers(10, "s2", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s <= 15 {
					return all(s)
				}
				return list("!s1", "!s2", "s3")
			}), nil},
		{"not held", testHist().steady().answers(10, "s1", false).answers(10, "s2", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 13 {
					return all(s)
				}
				return list("!s1", "!s2", "s3")
			}), []string{"mass-silence-held +14s s1", "mass-silence-held +14s s2"}},
		{"held unobserved: critical, not removed", testHist().mod(func(c *Config) { c.RemovalGuardHeld = HeldUnobserved }).steady().
			answers(10, "s1", false).answers(10, "s2", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				switch {
				case s < 13:
					return all(s)
				case s < 14.5:
					return list("!s1", "!s2", "s3")
				}
				return list("s3")
			}), []string{"mass-silence-held +14.5s s1", "mass-silence-held +14.5s s2"}},
		{"a minority", testHist().steady().answers(10, "s1", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 13 {
					return all(s)
				}
				return list("!s1", "s2", "s3")
			}), nil},
		{"not established", testHist().steady().answers(5, "s1", false).answers(5, "s2", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 8 {
					return all(s)
				}
				return list("!s1", "!s2", "s3")
			}), nil},
		{"two silences beyond the window", testHist().mod(func(c *Config) { c.RemovalGuardRounds = 8 }).steady().
			answers(10, "s1", false).answers(12.5, "s2", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 16 {
					return all(s)
				}
				return list("!s1", "!s2", "s3")
			}), nil},
		{"one silence within the window", testHist().mod(func(c *Config) { c.RemovalGuardRounds = 8 }).steady().
			answers(10, "s1", false).answers(11.5, "s2", false).
			reads(3, 20, 0.5, func(s float64) map[string]Health {
				if s < 16 {
					return all(s)
				}
				return list("!s1", "!s2", "s3")
			}), []string{"mass-silence-held +16s s1", "mass-silence-held +16s s2"}},

		// quiet-no-writes: quiet 7 s after the last change, from the
		// read that lists what is seen.
		{"a write before the quiet", testHist().steady().write(6.5, "a1", 3).reads(3, 20, 0.5, all), nil},
		{"a write of nothing", testHist().steady().write(12, "a1", 0).reads(3, 20, 0.5, all), nil},
		{"a write in the quiet", testHist().steady().write(12, "a1", 1).reads(3, 20, 0.5, all), []string{"quiet-no-writes +12s"}},

		// converges.
		{"converged", testHist().steady().answers(5, "s3", false).
			reads(3, 22, 0.5, func(s float64) map[string]Health {
				if s < 8 {
					return all(s)
				}
				return list("s1", "s2", "!s3")
			}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Check(tc.h.events())
			if got := spell(v); !slices.Equal(got, tc.want) {
				t.Errorf("violations %q; want %q\n%s", got, tc.want, v)
			}
		})
	}
}

func (h *hist) mod(f func(*Config)) *hist {
	f(&h.cfg)
	return h
}

func TestCheckNotes(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *hist
		want string
	}{
		{"an open fault", testHist().steady().fault(5, "f1", "partition").reads(3, 30, 0.5, all),
			"converges (consul): not checked: fault partition from +5s never ends"},
		{"too short", testHist().steady().reads(3, 10, 0.5, all),
			"converges (consul): not checked: no read with a settled leader from +14s"},
		{"no bridge at the end", testHist().steady().bridge(5, "a1", BridgeDown).bridge(5, "a2", BridgeDown).bridge(5, "b1", BridgeDown).
			reads(3, 30, 0.5, all), "converges (consul): not checked: at the end the registry is not up or no bridge is live"},
		{"a leader change in a silence", testHist().steady().answers(10, "s1", false).answers(10, "s2", false).term(11, "a2").termEnd(11, "a1").
			reads(3, 20, 0.5, all), "mass-silence-held: 1 candidate silence episodes not checked"},
		{"one episode of three servers, counted once", testHist().steady().answers(10, "s1", false).answers(10, "s2", false).answers(10, "s3", false).
			term(11, "a2").termEnd(11, "a1").reads(3, 20, 0.5, all), "mass-silence-held: 1 candidate silence episodes not checked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Check(tc.h.events())
			if !strings.Contains(strings.Join(v.Notes, "\n"), tc.want) {
				t.Errorf("notes %q; want one with %q", v.Notes, tc.want)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	// s1 is missing 10-12 s during a partition; s2 critical 30-31 s with
	// no fault near (the partition ended at 11 s, the bound is 14 s).
	v := Check(testHist().steady().fault(9, "p1", "partition").faultEnd(11, "p1", "partition").
		fault(9.5, "k1", "bridge-kill").faultEnd(9.5, "k1", "bridge-kill").
		readErr(20, "refused").
		reads(3, 40, 0.5, func(s float64) map[string]Health {
			switch {
			case s >= 10 && s < 12:
				return list("s2", "s3")
			case s >= 30 && s < 31:
				return list("s1", "!s2", "s3")
			}
			return all(s)
		}).events())
	s := v.Summary
	if s.Reads != 76 || s.ReadErrors != 1 || s.Faults["partition"] != 1 || s.Faults["bridge-kill"] != 1 {
		t.Errorf("reads %d (%d failed), faults %v; want 76 (1), partition 1, bridge-kill 1", s.Reads, s.ReadErrors, s.Faults)
	}
	got := fmt.Sprint(s.Disruption)
	want := []Disruption{
		{Kind: "", Total: sec(1), Gaps: 1, Worst: sec(1), WorstServer: "s2", WorstAt: at(30)},
		{Kind: "bridge-kill", Total: sec(2), Gaps: 1, Worst: sec(2), WorstServer: "s1", WorstAt: at(10)},
		{Kind: "partition", Total: sec(2), Gaps: 1, Worst: sec(2), WorstServer: "s1", WorstAt: at(10)},
	}
	if got != fmt.Sprint(want) {
		t.Errorf("disruption %s; want %s", got, fmt.Sprint(want))
	}
	if s.Violations[NoLiveRemoval] != 1 || s.Violations[Converges] != 1 || len(s.Violations) != 2 {
		t.Errorf("violations %v; want no-live-removal 1 (s1 missing), converges 1 (s2 critical)", s.Violations)
	}
}

func sec(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }
