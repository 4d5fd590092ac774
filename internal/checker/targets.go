package checker

import (
	"container/heap"
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// This file is the loop's side: the held set in (SetTargets,
// SetInitialTargets and the start-up verdicts), the health out (Decorate,
// Changed, Explain).

// settleOneLocked counts one initial target's first verdict (or its
// drop) and closes settled with the last.
func (c *Checks) settleOneLocked() {
	c.unsettled--
	if c.unsettled == 0 {
		close(c.settled)
	}
}

// Settled is closed once every server SetInitialTargets handed over
// (the servers held when the bridge started) had its first check's
// result, or left the set. The loop holds
// its first snapshot until then (or a deadline), so that a restarted
// bridge hands its sinks each server's verdict, not "pending" for all:
// those servers are ready at their first passing check.
func (c *Checks) Settled() <-chan struct{} { return c.settled }

// setGauges sets the gauge of each state to the tracker's count (c.mu
// held: the counts the gauges show are never older than those they
// replace).
func (c *Checks) setGauges() {
	for _, h := range healths {
		c.m.servers[h].Set(float64(c.tr.count[h]))
	}
}

// SetTargets makes eps (the planner's held set) the servers checked: a
// new one starts pending, its first check due within Interval × Jitter;
// one no longer listed is dropped (the result of a check of it still in
// flight is ignored). It costs O(len(eps)) and one lock, and never waits
// for a check.
func (c *Checks) SetTargets(eps []endpoint.Endpoint) {
	c.mu.Lock()
	now := c.clock.Now()
	c.epoch++
	c.setTargetsLocked(eps, now, false)
	c.setGauges()
	c.pokeLocked()
	c.mu.Unlock()
}

// SetInitialTargets is SetTargets for the servers held when the bridge
// starts (its first complete round): each is checked at once and turns
// ready at its first passing check (not app_check_rise), since a restart
// is no news about a server, and Settled is closed once each had its
// first result. Called after SetTargets, or a second time, it is
// SetTargets.
func (c *Checks) SetInitialTargets(eps []endpoint.Endpoint) {
	c.mu.Lock()
	now := c.clock.Now()
	c.epoch++
	c.setTargetsLocked(eps, now, !c.started)
	c.setGauges()
	c.pokeLocked()
	c.mu.Unlock()
}

// setTargetsLocked makes eps the targets (c.mu held, epoch advanced);
// initial marks the new ones as held at start-up.
func (c *Checks) setTargetsLocked(eps []endpoint.Endpoint, now time.Time, initial bool) {
	listed, added := 0, 0
	c.started = c.started || initial || len(eps) > 0
	for _, e := range eps {
		t, isNew := c.tr.add(e.Addr, now)
		if t.seen == c.epoch {
			continue // listed twice
		}
		t.seen = c.epoch
		listed++
		if isNew {
			added++
			first := c.firstGap()
			if initial {
				// Held at start-up: checked at once (the loop waits for
				// these verdicts), ready at the first pass.
				t.initial, first = true, 0
				c.unsettled++
			}
			heap.Push(&c.due, dueEntry{at: int64(now.Sub(c.base) + first), t: t})
		}
	}
	if initial && c.unsettled == 0 {
		close(c.settled)
	}
	if listed < len(c.tr.targets) {
		for addr, t := range c.tr.targets {
			if t.seen != c.epoch {
				if t.initial && !t.verdict {
					c.settleOneLocked()
				}
				c.tr.drop(addr)
				heap.Remove(&c.due, t.index)
			}
		}
	}
	c.m.transitions[endpoint.Pending].Add(float64(added))
}

// Decorate returns a copy of s whose endpoints carry their Check: the
// tracker's, or pending for an address it does not follow (yet). s is
// shared and never modified. O(len(s.Endpoints)), one lock.
func (c *Checks) Decorate(s endpoint.Snapshot) endpoint.Snapshot {
	out := s
	out.Endpoints = make([]endpoint.Endpoint, len(s.Endpoints))
	copy(out.Endpoints, s.Endpoints)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range out.Endpoints {
		e := &out.Endpoints[i]
		if t, ok := c.tr.targets[e.Addr]; ok {
			e.Check = t.check
		} else {
			e.Check = endpoint.Check{State: endpoint.Pending, Output: c.tr.pendingOutput, Since: s.At}
		}
	}
	return out
}

// Changed is signalled (one slot, never blocking) after servers changed
// state; Decorate then shows the new states. Transitions are published
// in batches: the first after a quiet second at once, those that follow
// within a second of it together at its end (flushEvery), so a fleet that
// turns over several seconds signals a few times, not once per server.
// Decorate shows each state as soon as it is recorded.
func (c *Checks) Changed() <-chan struct{} { return c.changed }

// Explain tells addr's health, its counts toward rise and fall and its
// latest results; ok is false for an address not checked.
func (c *Checks) Explain(addr netip.AddrPort) (History, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.tr.history(addr)
	if ok {
		_, h.Checking = c.busy[addr]
	}
	return h, ok
}
