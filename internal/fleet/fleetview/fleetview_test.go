package fleetview

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

var consul = Words{Ready: "passing in Consul", Unobserved: "critical in Consul"}

// holding is a record of a leader whose guard holds three of four servers
// since t0, for 5 minutes, kept ready or not.
func holding(ready bool) *fleet.GuardRecord {
	var r fleet.GuardRecord
	held := []string{"10.0.0.1:8000", "10.0.0.2:80", "10.0.0.2:8000"}
	rep := fleet.GuardReport{
		State:           fleet.GuardState{Held: held, Going: 3, Known: 4, Since: t0, Release: t0.Add(5 * time.Minute)},
		Config:          fleet.GuardConfig{MaxFraction: 0.5, Confirm: 5 * time.Minute, HeldReady: ready},
		DeregisterAfter: time.Minute,
	}
	for _, k := range held {
		rep.Holds = append(rep.Holds, fleet.GuardHold{Key: k, Addr: netip.MustParseAddrPort(k), Until: t0.Add(5 * time.Minute)})
	}
	r.Keep(rep)
	return &r
}

func nothingHeld() *fleet.GuardRecord {
	var r fleet.GuardRecord
	r.Keep(fleet.GuardReport{Config: fleet.GuardConfig{MaxFraction: 0.5, Confirm: time.Minute, HeldReady: true}})
	return &r
}

func view(rec *fleet.GuardRecord, leading bool) Guard {
	return Guard{Sink: "consul", Record: rec, Leading: leading, Clock: clocktest.New(t0.Add(time.Minute)),
		Metric: "udp_discovery_bridge_consul_catalog_removals_held", Words: consul}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		g    Guard
		addr string
		held bool
		want []string // in the detail
	}{
		{"held, kept ready", view(holding(true), true), "10.0.0.1:8000", true, []string{
			"the fleet's removal guard holds its removal since 2026-12-07T12:00:00Z until 2026-12-07T12:05:00Z (in 4m0s",
			"3 of the fleet's 4 established servers went unobserved at once, more than max_removal_fraction 0.5, and the leader holds 3 of them",
			"consumers see it passing in Consul, as when observed (removal_guard_held: ready)",
			"still unobserved at 2026-12-07T12:05:00Z, it turns critical in Consul then and is removed deregister_after (1m0s) later",
		}},
		{"held, unobserved", view(holding(false), true), "10.0.0.2:80", true, []string{
			"until 2026-12-07T12:05:00Z",
			"consumers see it critical in Consul, but it is not removed (removal_guard_held: unobserved)",
			"Observed again, it is passing in Consul again",
		}},
		{"another port of a held address", view(holding(true), true), "10.0.0.1:80", false, nil},
		{"not held", view(holding(true), true), "10.0.0.9:8000", false, nil},
		{"nothing held", view(nothingHeld(), true), "10.0.0.1:8000", false, nil},
		{"no report: not leading", view(&fleet.GuardRecord{}, false), "10.0.0.1:8000", false, nil},
		{"the zero Guard", Guard{}, "10.0.0.1:8000", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, ok := tt.g.Explain(netip.MustParseAddrPort(tt.addr))
			if ok != tt.held {
				t.Fatalf("Explain = %+v, %v; want held %v", x, ok, tt.held)
			}
			if !ok {
				return
			}
			if x.Sink != "consul" || x.State != sink.ExplainHeld {
				t.Errorf("Explain = %+v, want consul held", x)
			}
			for _, w := range tt.want {
				if !strings.Contains(x.Detail, w) {
					t.Errorf("detail lacks %q:\n%s", w, x.Detail)
				}
			}
		})
	}
}

func TestAt(t *testing.T) {
	tests := []struct {
		name  string
		g     Guard
		ip    string
		port  uint16
		holds []string
		note  string // in the note, when nothing is held there
	}{
		{"leader, two held at the address", view(holding(true), true), "10.0.0.2", 0, []string{"10.0.0.2:80", "10.0.0.2:8000"}, ""},
		{"leader, one port asked", view(holding(true), true), "10.0.0.2", 8000, []string{"10.0.0.2:8000"}, ""},
		{"leader, none held there", view(holding(true), true), "10.0.0.9", 0, nil,
			"this bridge leads the fleet: its removal guard holds no server at 10.0.0.9 (it holds 3 others: see /readyz)"},
		{"leader, nothing held", view(nothingHeld(), true), "10.0.0.9", 80, nil, "its removal guard holds no server at 10.0.0.9:80"},
		{"leader before its first plan", view(&fleet.GuardRecord{}, true), "10.0.0.1", 0, nil, "has not planned yet"},
		{"not leading", view(&fleet.GuardRecord{}, false), "10.0.0.1", 0, nil,
			"this bridge does not lead the fleet: whether the fleet's removal guard holds a server at 10.0.0.1 only the leader knows; " +
				"while it holds removals, the leader's /readyz names the hold (its notes) and its udp_discovery_bridge_consul_catalog_removals_held counts the servers held"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.g.At(netip.MustParseAddr(tt.ip), tt.port)
			if got.Sink != "consul" || got.Leading != tt.g.Leading {
				t.Errorf("At = %+v, want sink consul, leading %v", got, tt.g.Leading)
			}
			var holds []string
			for _, h := range got.Holds {
				holds = append(holds, h.Address)
				if h.Since != t0 || h.Until != t0.Add(5*time.Minute) || h.Unobserved != 3 || h.Established != 4 || h.Held != 3 ||
					h.RemovalGuardHeld != "ready" || !strings.Contains(h.Detail, "holds its removal since") {
					t.Errorf("hold %+v", h)
				}
			}
			if strings.Join(holds, " ") != strings.Join(tt.holds, " ") {
				t.Errorf("holds %v, want %v", holds, tt.holds)
			}
			if (tt.note == "") != (got.Note == "") || !strings.Contains(got.Note, tt.note) {
				t.Errorf("note %q, want %q", got.Note, tt.note)
			}
		})
	}
}

func TestNotes(t *testing.T) {
	tests := []struct {
		name string
		g    Guard
		want string
	}{
		{"holding", view(holding(true), true),
			"fleet removal guard: holding 3 of 4 servers since 2026-12-07T12:00:00Z, kept passing (removal_guard_held: ready) " +
				"(more than max_removal_fraction 0.5 went unobserved across the fleet); they go ahead in 4m0s (at 2026-12-07T12:05:00Z) if still unobserved"},
		{"holding, unobserved", view(holding(false), true), "unobserved but not removed (removal_guard_held: unobserved)"},
		{"nothing held", view(nothingHeld(), true), ""},
		{"no report", view(&fleet.GuardRecord{}, false), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.g.Notes()
			if tt.want == "" {
				if len(got) != 0 {
					t.Errorf("Notes = %q, want none", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], tt.want) {
				t.Errorf("Notes = %q, want one with %q", got, tt.want)
			}
		})
	}
}
