package runner

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// This file is the loop's side of the app checks (app_check): the
// scheduler that checks every held server (internal/checker) is told the
// held set after every change of it, every snapshot handed to the sinks
// carries each server's health, and a health transition between rounds is
// handed to the sinks at once. Discovery decides which servers are held,
// the app check whether they are ready; /readyz says how the bridge
// itself is, never how the apps are.

// Checker is the app check scheduler as the loop uses it
// (internal/checker's *Checks). Its methods must not block: the loop
// calls them.
type Checker interface {
	// SetTargets tells it the servers the planner holds: a new one starts
	// pending, one no longer held is no longer checked.
	SetTargets(eps []endpoint.Endpoint)
	// Decorate returns a copy of s whose endpoints carry their Check; s
	// is shared and is not modified.
	Decorate(s endpoint.Snapshot) endpoint.Snapshot
	// Changed is signalled (one slot) after any health transition.
	Changed() <-chan struct{}
}

// Probe checks the app of the server at addr once and returns that one
// result's verdict: ready when it passed, failing when not, with the
// check's output and when it started (cmd/bridge makes it of an
// *appcheck.Checker). Once uses it: with one check per server there is no
// rise or fall.
type Probe func(ctx context.Context, addr netip.AddrPort) endpoint.Check

// setTargets hands the planner's held set (eps, sorted) to the Checker,
// and the planner's state to the Board.
func (r *runner) setTargets(eps []endpoint.Endpoint) {
	if r.cfg.Checker != nil {
		r.cfg.Checker.SetTargets(eps)
	}
	if r.cfg.Board != nil {
		r.cfg.Board.Planned(r.round, r.state)
	}
}

// decorate returns s with each endpoint's health (s itself without a
// Checker).
func (r *runner) decorate(s endpoint.Snapshot) endpoint.Snapshot {
	if r.cfg.Checker == nil {
		return s
	}
	s = r.cfg.Checker.Decorate(s)
	for i, e := range s.Endpoints {
		if e.Held {
			s.Endpoints[i].Check = heldCheck(e, r.cfg.HeldUnobserved)
		}
	}
	return s
}

// heldCheck is the verdict the sinks get for e, whose removal the guard
// holds (it stopped answering during a mass silence): ready, its app check
// set aside, by default (fail open: the silence is far more often the
// bridge's network than every server at once, and the app check crosses
// the same network); failing with unobserved.
func heldCheck(e endpoint.Endpoint, unobserved bool) endpoint.Check {
	since := e.LastSeen
	if unobserved {
		return endpoint.Check{State: endpoint.Failing, Since: since,
			Output: "removal guard: unseen since " + since.UTC().Format(time.RFC3339) + ", its removal held (removal_guard_held: unobserved)"}
	}
	if e.Check.State.IsReady() {
		since = e.Check.Since
	}
	return endpoint.Check{State: endpoint.Ready, Since: since,
		Output: "removal guard: unseen, its removal held; kept ready, its app check set aside (removal_guard_held: ready)"}
}

// changed returns the channel the loop's wait selects on for health
// transitions: nil (never ready) without a Checker and with DryRun, whose
// output is one plan per round.
func (r *runner) changed() <-chan struct{} {
	if r.cfg.Checker == nil || r.cfg.DryRun {
		return nil
	}
	return r.cfg.Checker.Changed()
}

// drainChanged consumes a pending transition signal: the snapshot about
// to be decorated carries it, so it needs no post of its own. A transition
// after the drain signals again, and is posted (perhaps once more than
// needed, which every sink shrugs off: nothing changed for it).
func (r *runner) drainChanged() {
	select {
	case <-r.changed():
	default:
	}
}

// postHealth hands the sinks and the Inventory the held set as it is now,
// decorated, after a health transition between rounds. Its Round is the
// last completed round's: a sink sees the transition as Diff.Changed
// between two snapshots of the same set (a re-post of the same round with
// the same health changes nothing). A transition during a round is posted
// right after the round, when the loop waits again: the round's own
// snapshot carries it then.
func (r *runner) postHealth() {
	if !r.completed {
		return // nothing was handed to the sinks yet: the first round's end will be
	}
	snap := r.decorate(r.state.Snapshot(r.lastRound, r.clock.Now()))
	for _, w := range r.workers {
		w.post(snap)
	}
	if r.cfg.Inventory != nil {
		r.cfg.Inventory.Arrived(snap)
	}
	r.cfg.Metrics.healthSnapshot()
	r.log.Debug().Uint64("round", r.lastRound).Int("held", len(snap.Endpoints)).Msg("health transition handed to the sinks")
}

// checkOnce is Once's app check: each server of snap is checked once
// (Config.Probe, at most ProbeConcurrency at a time) and that one result
// makes it ready or failing for the one apply (no rise or fall: there is
// no second check). It returns a copy of snap; snap is not modified.
func (r *runner) checkOnce(ctx context.Context, snap endpoint.Snapshot) endpoint.Snapshot {
	eps := slices.Clone(snap.Endpoints)
	sem := make(chan struct{}, max(r.cfg.ProbeConcurrency, 1))
	var wg sync.WaitGroup
	for i := range eps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			eps[i].Check = r.cfg.Probe(ctx, eps[i].Addr)
		})
	}
	wg.Wait()
	failing := 0
	for _, e := range eps {
		if !e.Check.State.IsReady() {
			failing++
			r.log.Debug().Str("ip", e.Addr.Addr().String()).Uint16("port", e.Addr.Port()).Str("check", e.Check.Output).Msg("app check failed")
		}
	}
	r.log.Info().Uint64("round", snap.Round).Int("ready", len(eps)-failing).Int("failing", failing).Msg("app checks (one per server)")
	snap.Endpoints = eps
	return snap
}

// InitialChecker is a Checker that treats the servers held at start-up
// apart (internal/checker): checked at once, ready at their first passing
// check, and Settled closed once each had its first result.
type InitialChecker interface {
	SetInitialTargets(eps []endpoint.Endpoint)
	Settled() <-chan struct{}
}

// initialTargets hands the first completed round's held set to the
// Checker and, when it is an InitialChecker, waits up to
// FirstVerdictWait (not with DryRun) for each server's first verdict
// before the round's snapshot goes to the sinks. A restarted bridge then
// hands its registries each server's verdict, not "pending" for all of
// them, which in Consul would take every server out of ?passing until its
// checks rose again.
func (r *runner) initialTargets(ctx context.Context, eps []endpoint.Endpoint) {
	ic, ok := r.cfg.Checker.(InitialChecker)
	if !ok {
		r.setTargets(eps)
		return
	}
	ic.SetInitialTargets(eps)
	if r.cfg.Board != nil {
		r.cfg.Board.Planned(r.round, r.state)
	}
	if r.cfg.DryRun || r.cfg.FirstVerdictWait <= 0 || len(eps) == 0 {
		return
	}
	start := r.clock.Now()
	t := r.clock.NewTimer(r.cfg.FirstVerdictWait)
	defer t.Stop()
	settled := true
	select {
	case <-ic.Settled():
	case <-t.C():
		settled = false
	case <-ctx.Done():
		return
	}
	s := r.decorate(endpoint.Snapshot{Endpoints: eps})
	var n [3]int
	for _, e := range s.Endpoints {
		if int(e.Check.State) < len(n) {
			n[e.Check.State]++
		}
	}
	ev := r.log.Info()
	if !settled {
		ev = r.log.Warn()
	}
	ev.Uint64("round", r.round).Int("servers", len(eps)).Int("ready", n[endpoint.Ready]).Int("failing", n[endpoint.Failing]).
		Int("pending", n[endpoint.Pending]).Dur("took", r.clock.Now().Sub(start)).Bool("all_checked", settled).
		Msg("first app check verdicts of the servers held at start-up (ready at their first passing check); handing the round to the sinks")
}
