package plan

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// This file is the removal guard's configuration test and report.

// guarding reports whether the removal guard is on.
func (c Config) guarding() bool {
	return c.GuardRounds > 0 && c.MaxRemovalFraction > 0 && c.MaxRemovalFraction < 1
}

// Exceeds reports whether removing due of known endpoints in one round is
// a mass removal the guard holds: at least 2, and more than
// MaxRemovalFraction of known. It is false with the guard off.
func (c Config) Exceeds(due, known int) bool {
	return c.guarding() && due >= 2 && float64(due) > c.MaxRemovalFraction*float64(known)
}

// Guard reports the removal guard's state after a round. An episode is the
// run of rounds during which at least one removal is held: it starts in
// the round whose due removals exceed the fraction and ends in the first
// round that holds none (the held removals went ahead, or their servers
// answered again, or the removals due no longer exceed the fraction).
type Guard struct {
	// Held are the endpoints whose removal is held, sorted; each is also
	// in Kept (and so in the snapshot).
	Held []endpoint.Endpoint
	// Due is how many removals of established endpoints were due this
	// round (reached MissedRounds misses), held ones included, and Known
	// how many established endpoints were known before the round (the
	// fraction's denominator).
	Due, Known int
	// Going is how many established endpoints not yet due were unseen
	// long enough to be due next round if they stay unseen (the guard's
	// window: a silence that begins while a round's replies arrive
	// reaches them a round later); they count with Due against the
	// fraction.
	Going int
	// Since is the first round of the current episode, 0 when none.
	Since uint64
	// Release is the round in which the first held removal goes ahead if
	// its server stays unseen (0 when none is held).
	Release uint64
	// Released counts held removals that went ahead this round (they are
	// in Removed) and Returned held endpoints whose server answered again.
	Released, Returned int
	// Started and Ended mark the first and the last round of an episode.
	Started, Ended bool
}

// Reason spells the guard's state for /readyz and logs, "" when nothing
// is held. fraction is the configured max_removal_fraction.
func (g Guard) Reason(round uint64, fraction float64) string {
	if len(g.Held) == 0 {
		return ""
	}
	n, rounds := g.Release-round, "rounds"
	if n == 1 {
		rounds = "round"
	}
	return fmt.Sprintf("removal guard: holding %d removals of %d known servers since round %d "+
		"(more than max_removal_fraction %g unseen for missed_rounds); they go ahead in %d more %s (round %d) if still unseen",
		len(g.Held), g.Known, g.Since, fraction, n, rounds, g.Release)
}

// minRelease is the earlier of two release rounds, 0 meaning none.
func minRelease(a, b uint64) uint64 {
	if a == 0 || b < a {
		return b
	}
	return a
}
