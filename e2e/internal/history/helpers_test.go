package history

import (
	"slices"
	"time"
)

// t0 is when test histories start.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus sec seconds.
func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// hist builds a test history; events may be added in any order (events
// sorts them, stably, by time).
type hist struct {
	cfg Config
	ev  []Event
}

// testHist is a history of the test lab: rounds of 1 s, missed_rounds 2,
// a guard of 4 rounds at 0.5 (held servers kept passing), deregister_after
// 5 s, a window of 3 rounds, a session TTL of 2 s and a slack of 1 s;
// segment a with bridges a1 a2 and servers s1 s2, segment b with bridge b1
// and server s3. Its bounds: grace 2 s, stale 4 s, the fleet loses a server
// 3 s after its last reply, held servers pass 7 s more, established after
// 7 s, quiet after 7 s, converged 14 s after the last change.
func testHist() *hist {
	return &hist{cfg: Config{Seed: 1, Round: Duration(time.Second), MissedRounds: 2, RemovalGuardRounds: 4,
		MaxRemovalFraction: 0.5, DeregisterAfter: Duration(5 * time.Second), WindowRounds: 3,
		SessionTTL: Duration(2 * time.Second), Slack: Duration(time.Second),
		Segments: []Segment{
			{Name: "a", Bridges: []string{"a1", "a2"}, Servers: []string{"s1", "s2"}},
			{Name: "b", Bridges: []string{"b1"}, Servers: []string{"s3"}},
		}}}
}

func (h *hist) add(sec float64, e Event) *hist {
	e.At = at(sec)
	h.ev = append(h.ev, e)
	return h
}

func (h *hist) answers(sec float64, s string, on bool) *hist {
	return h.add(sec, Event{Answers: &Answers{Server: s, Answering: on}})
}

func (h *hist) bridge(sec float64, b string, st BridgeState) *hist {
	return h.add(sec, Event{Bridge: &BridgeChange{Bridge: b, State: st}})
}

func (h *hist) back(sec float64, b string, st BridgeState) *hist {
	return h.add(sec, Event{Bridge: &BridgeChange{Bridge: b, State: st, Back: true}})
}

func (h *hist) registry(sec float64, st RegistryState) *hist {
	return h.add(sec, Event{Registry: &RegistryChange{State: st}})
}

func (h *hist) fault(sec float64, id, kind string) *hist {
	return h.add(sec, Event{Fault: &Fault{ID: id, Kind: kind}})
}

func (h *hist) faultEnd(sec float64, id, kind string) *hist {
	return h.add(sec, Event{Fault: &Fault{ID: id, Kind: kind, End: true}})
}

func (h *hist) term(sec float64, b string) *hist { return h.add(sec, Event{Term: &Term{Bridge: b}}) }

func (h *hist) termEnd(sec float64, b string) *hist {
	return h.add(sec, Event{Term: &Term{Bridge: b, End: true}})
}

func (h *hist) write(sec float64, b string, ops int) *hist {
	return h.add(sec, Event{Write: &LeaderWrite{Bridge: b, Ops: ops}})
}

// read adds a read of sink "consul" listing servers, with index 1 and no
// foreign entry read.
func (h *hist) read(sec float64, servers map[string]Health) *hist {
	return h.add(sec, Event{Read: &SinkRead{Sink: "consul", Servers: servers, Index: 1}})
}

func (h *hist) readErr(sec float64, msg string) *hist {
	return h.add(sec, Event{Read: &SinkRead{Sink: "consul", Err: msg}})
}

// reads adds a read every step seconds in [from, to] listing what list
// says at each time.
func (h *hist) reads(from, to, step float64, list func(sec float64) map[string]Health) *hist {
	for i := 0; ; i++ {
		sec := from + float64(i)*step
		if sec > to+1e-9 {
			return h
		}
		h.read(sec, list(sec))
	}
}

// steady starts every bridge and server at 0 with a1 leading from 0.5.
func (h *hist) steady() *hist {
	for _, b := range []string{"a1", "a2", "b1"} {
		h.bridge(0, b, BridgeUp)
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		h.answers(0, s, true)
	}
	return h.term(0.5, "a1")
}

func (h *hist) events() []Event {
	cfg := h.cfg
	out := append([]Event{{At: t0, Config: &cfg}}, h.ev...)
	slices.SortStableFunc(out[1:], func(a, b Event) int { return a.At.Compare(b.At) })
	return out
}

// list is a read's servers: each name passing, or critical with a "!"
// prefix.
func list(names ...string) map[string]Health {
	m := map[string]Health{}
	for _, n := range names {
		if n[0] == '!' {
			m[n[1:]] = Critical
		} else {
			m[n] = Passing
		}
	}
	return m
}
