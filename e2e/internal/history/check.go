package history

import (
	"time"
)

// The invariants Check judges. R is a round, slack the config's, and a
// server is seen while it answers a bridge of its segment that is live (up,
// not paused, cut neither from its segment nor from the registry). The
// README gives the rationale of each bound.
const (
	// NoLiveRemoval (no-live-removal): a server is listed (passing or
	// critical) in every ok read of a sink at a time it is protected,
	// once a read of that sink listed it during the protection and since
	// the registry's last wipe. Reads while the registry is down are not
	// judged: a restarting registry may answer from a partly replayed
	// log (Consul, seen by the soak: a read at index 20 listing only what
	// was written by then, a second before the cluster was ready), which
	// no bridge wrote. A server is protected from R + slack
	// after a seen stretch of at least a round begins until missed_rounds
	// × R after it ends.
	NoLiveRemoval = "no-live-removal"
	// UnobservedNotReady (unobserved-not-ready): a server is not passing
	// in a read at t while a term acts (its bridge up, not paused, not cut
	// from the registry) and the registry is up (not down, not limited)
	// once t passes max(U + window + hold, σ + grace + hold) + slack,
	// where U is when the fleet lost it (no observation of a bridge can
	// hold it since: missed_rounds+1 rounds after its last reply to a
	// bridge that can publish, or twice the session TTL after such a
	// bridge stopped publishing), σ when the leader settled (the latest
	// of a term's start, a wipe, and the start of the stretch in which a
	// term acts with the registry up) and grace the leader's grace (R +
	// min(max(R, 1s), 5s)). The window (window_rounds × R) and hold
	// (removal_guard_rounds × R) count only with the guard on and held
	// servers kept passing.
	UnobservedNotReady = "unobserved-not-ready"
	// SingleWriter (single-writer): no two bridges' terms act at once for
	// longer than slack (a term acts while its bridge is up, not paused
	// and not cut from the registry; a bridge going down ends its term);
	// every write of a bridge is within slack of one of its own terms, and
	// none falls in another bridge's acting term more than slack from
	// either end.
	SingleWriter = "single-writer"
	// MassSilenceHeld (mass-silence-held): when established servers go
	// silent cleanly within (window_rounds − 1) × R of one another, at
	// least 2 and more than max_removal_fraction of every server the
	// leader could count, each stays listed (passing unless
	// removal_guard_held is unobserved) from missed_rounds+1 rounds +
	// slack after the silence that crossed the fraction until
	// (missed_rounds − 1 + removal_guard_rounds) × R after the first
	// silence (at least the brief's missed_rounds + removal_guard_rounds
	// rounds − slack, as slack is a round or more), or until it is seen
	// again. Only with the guard on, and one term acting with the
	// registry up from a window before the silence to the end of the
	// hold.
	MassSilenceHeld = "mass-silence-held"
	// QuietNoWrites (quiet-no-writes): between two consecutive reads of a
	// sink that are both quiet, the registry's index does not change, and
	// no write of 1 or more operations happens from slack after a run of
	// quiet reads begins to its last read. A read is quiet when no
	// answers, bridge, registry or fault event happened for the quiet
	// threshold before it and nothing is due: it lists exactly the seen
	// servers, all passing.
	QuietNoWrites = "quiet-no-writes"
	// ForeignUntouched (foreign-untouched): a foreign entry, once a read
	// of a sink lists it, is listed by every later read of that sink that
	// reads foreign entries, with the same modify index, until the
	// registry is wiped.
	ForeignUntouched = "foreign-untouched"
	// Converges (converges): once the last answers, bridge, registry or
	// fault event is the convergence bound (max(2 × session TTL, grace,
	// missed_rounds+1 rounds) + grace + window + hold + slack) behind, and
	// no fault is still open, the registry up and a bridge live at the
	// end, every ok read lists the seen servers passing and no other
	// server passing, and a term acts (else "no leader"); reads within
	// grace + hold + slack of σ are skipped.
	Converges = "converges"
	// InvalidHistory is the one violation of a history Validate refuses.
	InvalidHistory = "valid-history"
)

// Invariants are the invariants' names, in the order of the README.
var Invariants = []string{NoLiveRemoval, UnobservedNotReady, SingleWriter, MassSilenceHeld, QuietNoWrites, ForeignUntouched, Converges}

// Check judges a history against every invariant and summarizes it. A
// history Validate refuses gets one violation, InvalidHistory.
func Check(events []Event) Verdict {
	if err := Validate(events); err != nil {
		v := Verdict{Violations: []Violation{{Invariant: InvalidHistory, Why: err.Error()}}}
		if len(events) > 0 {
			v.Start, v.Violations[0].At = events[0].At, events[0].At
		}
		v.Summary.Violations = map[string]int{InvalidHistory: 1}
		return v
	}
	m := build(events)
	r := &report{start: m.start}
	for _, sink := range m.sinks {
		noLiveRemoval(m, r, sink)
		unobservedNotReady(m, r, sink)
		foreignUntouched(m, r, sink)
		converges(m, r, sink)
	}
	singleWriter(m, r)
	massSilenceHeld(m, r)
	quietNoWrites(m, r)
	v := Verdict{Start: m.start, Violations: r.violations(), Notes: r.notes}
	v.Summary = summarize(m, v.Violations)
	return v
}

func noLiveRemoval(m *model, r *report, sink string) {
	listed := map[string]time.Time{} // the last ok read that listed each server
	for i, rd := range m.ok[sink] {
		wipe, wiped := lastAt(m.wipes, rd.at)
		down := !m.regAnswers.contains(rd.at)
		for _, s := range m.servers {
			if _, ok := rd.r.Servers[s]; ok {
				listed[s] = rd.at
				continue
			}
			if down {
				continue
			}
			k := m.protect[s].find(rd.at)
			if k < 0 {
				continue
			}
			p := m.protect[s][k]
			l, ok := listed[s]
			if !ok || l.Before(p.from) || (wiped && !l.After(wipe)) {
				continue
			}
			seg := m.segOf[s]
			how := "answers a live bridge of segment " + seg
			bridge := m.liveBridge(seg, rd.at)
			if end, ok := m.seen[s].lastEnd(rd.at); ok && bridge == "" {
				how = "answered a live bridge of segment " + seg + " until " + r.rel(end)
				bridge = m.liveBridge(seg, end.Add(-1))
			}
			until := ""
			if p.to.Before(m.forever) {
				until = " (protected until " + r.rel(p.to) + ")"
			}
			r.readFail(NoLiveRemoval, sink, i, rd.at, s, bridge, "absent, though it "+how+until+"; listed at "+r.rel(l))
		}
	}
}

func unobservedNotReady(m *model, r *report, sink string) {
	b := m.b
	for i, rd := range m.ok[sink] {
		sigma, acting := m.sigma(rd.at)
		if !acting {
			continue
		}
		for _, s := range sortedKeys(rd.r.Servers) {
			if rd.r.Servers[s] != Passing || m.support[s].contains(rd.at) {
				continue
			}
			due := sigma.Add(b.grace + b.passConfirm)
			lost, had := m.support[s].lastEnd(rd.at)
			if had {
				due = later(due, lost.Add(b.passHold))
			}
			due = due.Add(b.slack)
			if !rd.at.After(due) {
				continue
			}
			why := "passing, but no bridge ever observed it"
			switch _, known := m.segOf[s]; {
			case !known:
				why = "passing, but it is no server of the config"
			case had:
				why = "passing, but the fleet lost it by " + r.rel(lost)
				if q, ok := m.seen[s].lastEnd(rd.at); ok {
					why += " (no live bridge saw it after " + r.rel(q) + ")"
				}
			}
			r.readFail(UnobservedNotReady, sink, i, rd.at, s, "",
				why+"; due not passing by "+r.rel(due)+" (leader settled at "+r.rel(sigma)+")")
		}
	}
}

func converges(m *model, r *report, sink string) {
	b := m.b
	last := m.start
	if len(m.changes) > 0 {
		last = m.changes[len(m.changes)-1]
	}
	from := last.Add(b.conv)
	anyLive := false
	for _, br := range m.bridges {
		anyLive = anyLive || m.live[br].contains(m.end)
	}
	for _, f := range m.faults {
		if !f.to.Before(m.forever) {
			r.note("%s (%s): not checked: fault %s from %s never ends", Converges, sink, f.kind, r.rel(f.from))
			return
		}
	}
	if !m.regUp.contains(m.end) || !anyLive {
		r.note("%s (%s): not checked: at the end the registry is not up or no bridge is live", Converges, sink)
		return
	}
	checked := 0
	for i, rd := range m.ok[sink] {
		if rd.at.Before(from) {
			continue
		}
		sigma, acting := m.sigma(rd.at)
		if !acting {
			r.readFail(Converges, sink, i, rd.at, "", "", "no leader: no term acts, with the registry up and a live bridge, since "+r.rel(last))
			continue
		}
		if rd.at.Before(sigma.Add(b.grace + b.passConfirm + b.slack)) {
			continue
		}
		checked++
		for _, s := range m.servers {
			h, listed := rd.r.Servers[s]
			switch seen := m.seen[s].contains(rd.at); {
			case seen && h != Passing:
				why := "critical"
				if !listed {
					why = "absent"
				}
				r.readFail(Converges, sink, i, rd.at, s, m.liveBridge(m.segOf[s], rd.at), why+", though it answers a live bridge of its segment")
			case !seen && h == Passing:
				r.readFail(Converges, sink, i, rd.at, s, "", "passing, though no live bridge of its segment sees it")
			}
		}
		for _, s := range sortedKeys(rd.r.Servers) {
			if _, known := m.segOf[s]; !known && rd.r.Servers[s] == Passing {
				r.readFail(Converges, sink, i, rd.at, s, "", "passing, though it is no server of the config")
			}
		}
	}
	if checked == 0 {
		r.note("%s (%s): not checked: no read with a settled leader from %s (the last change at %s + the bound %s)",
			Converges, sink, r.rel(from), r.rel(last), b.conv)
	}
}
