package fleet

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file is the fleet's removal guard: the leader's judgement of a
// mass silence across the whole fleet, whatever each bridge's share of it.
//
// Each bridge's planner holds removals when more than a fraction of the
// servers it knows stop answering at once, but a bridge that knows one
// server removes it: ten segments of one server each, silenced together
// by a switch reboot, would each lose their server. In a fleet the
// bridges therefore publish no server their own guard holds
// (endpoint.Endpoint.Held), and the leader judges the silence over the
// whole fleet: when the servers that went unobserved within Window of one
// another are at least 2 and more than MaxFraction of the fleet's
// established servers, their removal is held for Confirm. During the hold
// they stay passing (HeldReady, the default: fail open, as Envoy's panic
// threshold routes to every host once too many are unhealthy; a
// fleet-wide silence is far more often the bridges' network than every
// server at once), or turn unobserved as the bridges see them but are not
// removed. A held server observed again simply stays; one still unobserved
// at its release goes the usual way: unobserved since its release, removed
// deregister_after later.

// GuardConfig tunes the fleet's removal guard. The zero value is off.
type GuardConfig struct {
	// MaxFraction is max_removal_fraction: 0 or at least 1 turns the
	// guard off.
	MaxFraction float64
	// Confirm is how long a held server stays held if it stays
	// unobserved (removal_guard_rounds rounds); 0 turns the guard off.
	Confirm time.Duration
	// Window is how close together servers must go unobserved to count
	// as one silence: the bridges' rounds are not aligned, and a silence
	// that begins while a round's replies arrive reaches some servers a
	// round later.
	Window time.Duration
	// Established is how long a server must have been observed before
	// it counts: a flood's identities, observed for missed_rounds rounds
	// at most, never hold the guard.
	Established time.Duration
	// HeldReady keeps held servers passing (removal_guard_held: ready);
	// false turns them unobserved, still not removed (unobserved).
	HeldReady bool
}

func (c GuardConfig) on() bool {
	return c.Confirm > 0 && c.MaxFraction > 0 && c.MaxFraction < 1
}

// exceeds reports whether going of known established servers is a mass
// silence: at least 2, and more than MaxFraction of known.
func (c GuardConfig) exceeds(going, known int) bool {
	return going >= 2 && float64(going) > c.MaxFraction*float64(known)
}

// GuardState is what the fleet's guard did in one plan, for metrics, logs
// and readiness.
type GuardState struct {
	// Held are the keys whose removal is held, sorted.
	Held []string
	// Going is how many established servers went unobserved within the
	// window (the held ones included), Known how many established servers
	// the fleet had before they went.
	Going, Known int
	// Since is when the episode began (zero when none); Release when the
	// first held server goes if still unobserved.
	Since, Release time.Time
	// Released counts the held servers that went ahead in this plan,
	// Returned those observed again.
	Released, Returned int
	// Started and Ended mark the plans that began and ended an episode.
	Started, Ended bool
}

// Reason spells the state for /readyz and logs, "" when nothing is held.
func (s GuardState) Reason(now time.Time, fraction float64, heldReady bool) string {
	if len(s.Held) == 0 {
		return ""
	}
	as := "kept passing (removal_guard_held: ready)"
	if !heldReady {
		as = "unobserved but not removed (removal_guard_held: unobserved)"
	}
	return fmt.Sprintf("fleet removal guard: holding %d of %d servers since %s, %s (more than max_removal_fraction %g went unobserved across the fleet); they go ahead in %s (at %s) if still unobserved",
		len(s.Held), s.Known, s.Since.UTC().Format(time.RFC3339), as, fraction, max(s.Release.Sub(now), 0).Round(time.Second), s.Release.UTC().Format(time.RFC3339))
}

// Guard is the leader's removal guard for one term. The zero value, with
// Config set, is ready; a new term starts a new Guard (what it needs of
// the past, when each server went unobserved, the registry records).
type Guard struct {
	Config GuardConfig

	started bool
	// observed is when each key was first observed in this term (keys
	// the registry held passing when the term began count as
	// established); a key leaves it when the registry no longer holds
	// it.
	observed map[string]time.Time
	// held is the release time of each held key; released the keys
	// released in the current silence (never held again until observed).
	held     map[string]time.Time
	released map[string]struct{}
	since    time.Time
}

// GuardPlan applies g to p, the plan of now against current with the keys
// of the desired set in desired: it holds the removals of a mass silence
// (they are taken out of p.Remove, and out of p.Fail when held servers
// stay passing; a held server that went unobserved earlier in the window
// is passed again) and returns the plan to write and what the guard did.
// With the guard off it returns p unchanged.
func GuardPlan[S any](g *Guard, now time.Time, p Plan[S], current map[string]Entry[S], desired map[string]struct{}) (Plan[S], GuardState) {
	if !g.Config.on() {
		return p, GuardState{}
	}
	guardTrack(g, now, current, desired)
	failing := make(map[string]struct{}, len(p.Fail))
	for _, e := range p.Fail {
		failing[e.Key] = struct{}{}
	}
	// going: the established servers no longer observed that went
	// within the window (turning unobserved in this plan, or since a
	// time the registry records), and the held ones; known: those and
	// the established servers observed.
	var going []string
	known := 0
	for key, e := range current {
		if !g.established(key, now) {
			continue
		}
		_, want := desired[key]
		_, fails := failing[key]
		_, held := g.held[key]
		_, released := g.released[key]
		switch {
		case want:
			known++
		case held:
			known++
			going = append(going, key)
		case released:
			// went ahead after its confirmation: never held again
			// until observed again
		case fails || (!e.Passing && now.Sub(e.Since) <= g.Config.Window):
			known++
			going = append(going, key)
		}
	}
	slices.Sort(going)
	st := GuardState{Going: len(going), Known: known}
	for key, at := range g.held {
		switch _, want := desired[key]; {
		case want: // observed again: it simply stays
			delete(g.held, key)
			st.Returned++
		case !now.Before(at): // confirmed: it goes ahead
			delete(g.held, key)
			g.released[key] = struct{}{}
			st.Released++
		}
	}
	if g.Config.exceeds(len(going), known) {
		for _, key := range going {
			_, held := g.held[key]
			_, released := g.released[key]
			if !held && !released {
				g.held[key] = now.Add(g.Config.Confirm)
			}
		}
	}
	switch {
	case len(g.held) > 0 && g.since.IsZero():
		g.since, st.Started = now, true
	case len(g.held) == 0 && !g.since.IsZero():
		g.since, st.Ended = time.Time{}, true
	}
	st.Since = g.since
	for key, at := range g.held {
		st.Held = append(st.Held, key)
		if st.Release.IsZero() || at.Before(st.Release) {
			st.Release = at
		}
	}
	slices.Sort(st.Held)
	return guardApply(g, p, current), st
}

// Holds reports whether the guard holds key's removal.
func (g *Guard) Holds(key string) bool {
	_, ok := g.held[key]
	return ok
}

// established reports whether key was observed for Config.Established
// by now.
func (g *Guard) established(key string, now time.Time) bool {
	at, ok := g.observed[key]
	return ok && now.Sub(at) >= g.Config.Established
}

// guardTrack starts the term's bookkeeping (the servers the registry
// holds count as established: they were observed before the term) and
// keeps when each key was first observed, forgetting the keys the
// registry no longer holds.
func guardTrack[S any](g *Guard, now time.Time, current map[string]Entry[S], desired map[string]struct{}) {
	if !g.started {
		g.started = true
		g.observed = make(map[string]time.Time, len(current))
		g.held, g.released = map[string]time.Time{}, map[string]struct{}{}
		for key := range current {
			g.observed[key] = now.Add(-g.Config.Established)
		}
	}
	for key := range desired {
		if _, ok := g.observed[key]; !ok {
			g.observed[key] = now
		}
		// Observed again: a server released after a hold may be held in
		// a later silence.
		delete(g.released, key)
	}
	for key := range g.observed {
		if _, ok := current[key]; ok {
			continue
		}
		if _, want := desired[key]; !want {
			delete(g.observed, key)
			delete(g.held, key)
			delete(g.released, key)
		}
	}
}

// guardApply takes the held keys out of p's removals (and out of its
// failures when held servers stay passing, passing again those that went
// unobserved earlier in the window).
func guardApply[S any](g *Guard, p Plan[S], current map[string]Entry[S]) Plan[S] {
	if len(g.held) == 0 {
		return p
	}
	keep := func(l []Entry[S]) []Entry[S] {
		return slices.DeleteFunc(l, func(e Entry[S]) bool {
			if g.Holds(e.Key) {
				p.Unchanged++
				return true
			}
			return false
		})
	}
	p.Remove = keep(p.Remove)
	if !g.Config.HeldReady {
		return p
	}
	p.Fail = keep(p.Fail)
	for key := range g.held {
		if e, ok := current[key]; ok && !e.Passing {
			e.Passing, e.Since = true, time.Time{}
			p.Pass = append(p.Pass, e)
			p.Unchanged--
		}
	}
	slices.SortFunc(p.Pass, func(a, b Entry[S]) int { return strings.Compare(a.Key, b.Key) })
	return p
}

// NewGuardConfig is the fleet's guard for bridges that run rounds of round
// (interval + timeout), remove a server after missed rounds without a
// reply and tune their own guard with fraction (max_removal_fraction) and
// guardRounds (removal_guard_rounds); heldReady is removal_guard_held
// ready. The fleet holds for guardRounds rounds as a bridge does; servers
// that go unobserved within 3 rounds of one another are one silence (the
// bridges' rounds are not aligned, a silence that begins while replies
// arrive reaches some servers a round later, and the observations take a
// moment to reach the leader); a server counts once it was observed for
// missed+1 rounds, longer than a flood's one-shot identity stays observed.
func NewGuardConfig(round time.Duration, missed, guardRounds int, fraction float64, heldReady bool) GuardConfig {
	return GuardConfig{
		MaxFraction: fraction,
		Confirm:     time.Duration(guardRounds) * round,
		Window:      3 * round,
		Established: time.Duration(max(missed, 1)+1) * round,
		HeldReady:   heldReady,
	}
}
