package checker

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// This file is the rise/fall state machine: pure (no clock, no goroutine,
// no lock; the times it records are passed in), driven by the scheduler
// under its lock.
//
//	new target                               -> pending
//	pending, rise passes in a row             -> ready
//	  (a target of the first held set, the bridge's start: at its first pass)
//	pending, fall failures in a row           -> failing
//	ready,   fall failures in a row           -> failing
//	failing, rise passes in a row             -> ready
//
// A pass resets the count of failures in a row, a failure the count of
// passes. A state's Check (its Output and Since) is set at the transition
// into it and stays until the next one, so sinks that write Check write
// once per transition.

// HistoryLen is how many results of each server the history keeps.
const HistoryLen = 16

// History is what Explain tells of one server.
type History struct {
	// State is the server's health; Since when it began; Output the
	// result that made the transition into it (for pending, what it waits
	// for).
	State  endpoint.Health
	Since  time.Time
	Output string
	// Passes and Fails are the passing and failing results in a row up to
	// now (one of them is 0): toward rise and fall.
	Passes, Fails int
	// Last are the latest results, oldest first, at most HistoryLen. Only
	// the newest carries its Output; the others keep At, OK, Status,
	// Latency and Reason, of which Output is made (16 results of 10,000
	// servers in 16 bytes each: 2.5 MB, not the 20 MB of whole Results).
	Last []appcheck.Result
	// Checking reports whether a check of the server is in flight.
	Checking bool
}

// transition is one change of a target's State.
type transition struct {
	addr     netip.AddrPort
	from, to endpoint.Health
	output   string
}

// record is one result as the history keeps it: 16 bytes.
type record struct {
	at      int64  // Result.At in Unix nanoseconds; 0 for the zero time
	latency uint32 // microseconds, saturated
	status  uint16 // HTTP status, okBit set when the check passed
	reason  uint16 // index into tracker.reasons
}

const okBit = 1 << 15

// history is a ring of the latest HistoryLen records.
type history struct {
	recs [HistoryLen]record
	n    uint8 // records held
	next uint8 // where the next one goes
}

func (h *history) push(r record) {
	h.recs[h.next] = r
	h.next = (h.next + 1) % HistoryLen
	h.n = min(h.n+1, HistoryLen)
}

// target is one server the tracker follows. The scheduling fields belong
// to the scheduler; the tracker carries them.
type target struct {
	addr  netip.AddrPort
	gen   uint64 // tells this life of addr from an earlier one
	check endpoint.Check
	// passes and fails in a row.
	passes, fails int
	hist          history
	lastOutput    string // the newest result's Output
	// initial marks a server of the first held set (the bridge's start):
	// its first pass makes it ready (rise 1), since a restart is no news
	// about a server; verdict says it had a result since.
	initial, verdict bool
	// scheduling
	index int    // in the due heap
	seen  uint64 // the SetTargets call that last listed it
}

// maxReasons bounds the distinct reasons the history keeps; the checker's
// own are a few dozen (codes, errors, redirect notes).
const maxReasons = 4096

// reasonLost stands for a reason once maxReasons distinct ones were seen.
const reasonLost = "(reason not kept)"

// tracker follows the health of the targets.
type tracker struct {
	rise, fall int
	// pendingOutput is the Output of a target that has not turned yet.
	pendingOutput string
	targets       map[netip.AddrPort]*target
	gen           uint64
	// count holds how many targets are in each Health.
	count [3]int
	// reasons interns the results' reasons, so that a history record is
	// 16 bytes and 10,000 servers' reasons are a few strings.
	reasons  []string
	reasonOf map[string]uint16
}

func newTracker(rise, fall int) *tracker {
	return &tracker{
		rise: max(rise, 1), fall: max(fall, 1),
		pendingOutput: "pending: the app check has not yet passed " + strconv.Itoa(max(rise, 1)) + " times in a row",
		targets:       make(map[netip.AddrPort]*target),
		reasons:       []string{"", reasonLost},
		reasonOf:      map[string]uint16{"": 0, reasonLost: 1},
	}
}

// add starts following addr, Pending since now; an addr already followed
// is left alone. It returns the target and whether it is new.
func (tr *tracker) add(addr netip.AddrPort, now time.Time) (*target, bool) {
	if t, ok := tr.targets[addr]; ok {
		return t, false
	}
	tr.gen++
	t := &target{addr: addr, gen: tr.gen, index: -1, check: endpoint.Check{State: endpoint.Pending, Output: tr.pendingOutput, Since: now}}
	tr.targets[addr] = t
	tr.count[endpoint.Pending]++
	return t, true
}

// drop stops following addr; a result of its checks that comes later is
// ignored, and an addr added again starts over, pending.
func (tr *tracker) drop(addr netip.AddrPort) (*target, bool) {
	t, ok := tr.targets[addr]
	if !ok {
		return nil, false
	}
	delete(tr.targets, addr)
	tr.count[t.check.State]--
	return t, true
}

// record applies the result r of a check of addr started for the life gen
// of it, at now. known is false when addr was dropped meanwhile (or
// dropped and added again): r is then ignored. changed reports a
// transition, described by tn.
func (tr *tracker) record(addr netip.AddrPort, gen uint64, r appcheck.Result, now time.Time) (tn transition, changed, known bool) {
	t, ok := tr.targets[addr]
	if !ok || t.gen != gen {
		return transition{}, false, false
	}
	t.hist.push(tr.compact(r))
	t.lastOutput = r.Output
	if r.OK {
		t.passes, t.fails = t.passes+1, 0
	} else {
		t.passes, t.fails = 0, t.fails+1
	}
	from, to := t.check.State, t.check.State
	rise := tr.rise
	if t.initial && from == endpoint.Pending {
		rise = 1 // a server held before the bridge started: ready at its first pass
	}
	t.verdict = true
	switch {
	case r.OK && from != endpoint.Ready && t.passes >= rise:
		to = endpoint.Ready
	case !r.OK && from != endpoint.Failing && t.fails >= tr.fall:
		to = endpoint.Failing
	}
	if to == from {
		return transition{}, false, true
	}
	t.check = endpoint.Check{State: to, Output: r.Output, Since: now}
	tr.count[from]--
	tr.count[to]++
	return transition{addr: addr, from: from, to: to, output: r.Output}, true, true
}

// compact turns r into a record, interning its reason.
func (tr *tracker) compact(r appcheck.Result) record {
	rec := record{latency: uint32(min(max(r.Latency.Microseconds(), 0), 1<<32-1)), status: uint16(min(max(r.Status, 0), okBit-1))}
	if !r.At.IsZero() {
		rec.at = r.At.UnixNano()
	}
	if r.OK {
		rec.status |= okBit
	}
	reason := r.Reason
	if len(reason) > appcheck.MaxReason {
		reason = reason[:appcheck.MaxReason]
	}
	idx, ok := tr.reasonOf[reason]
	if !ok {
		idx = 1
		if len(tr.reasons) < maxReasons {
			idx = uint16(len(tr.reasons))
			tr.reasons = append(tr.reasons, reason)
			tr.reasonOf[reason] = idx
		}
	}
	rec.reason = idx
	return rec
}

// result expands rec back into a Result (without Output).
func (tr *tracker) result(rec record) appcheck.Result {
	r := appcheck.Result{
		OK:      rec.status&okBit != 0,
		Status:  int(rec.status &^ okBit),
		Latency: time.Duration(rec.latency) * time.Microsecond,
		Reason:  tr.reasons[rec.reason],
	}
	if rec.at != 0 {
		r.At = time.Unix(0, rec.at)
	}
	return r
}

// history returns what the tracker holds of addr (Checking is the
// scheduler's to fill in).
func (tr *tracker) history(addr netip.AddrPort) (History, bool) {
	t, ok := tr.targets[addr]
	if !ok {
		return History{}, false
	}
	h := History{State: t.check.State, Since: t.check.Since, Output: t.check.Output, Passes: t.passes, Fails: t.fails}
	if t.hist.n > 0 {
		h.Last = make([]appcheck.Result, t.hist.n)
		first := (int(t.hist.next) - int(t.hist.n) + HistoryLen) % HistoryLen
		for i := range h.Last {
			h.Last[i] = tr.result(t.hist.recs[(first+i)%HistoryLen])
		}
		h.Last[len(h.Last)-1].Output = t.lastOutput
	}
	return h, true
}

func sortTransitions(tns []transition) {
	slices.SortFunc(tns, func(a, b transition) int { return a.addr.Compare(b.addr) })
}
