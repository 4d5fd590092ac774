package checker

import (
	"container/heap"
	"context"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// This file is the scheduler: one goroutine that hands due checks to the
// workers in order of due time, spaces each server's checks by the
// interval and its jitter, and publishes the transitions in batches.

// pokeLocked wakes the scheduler (c.mu held).
func (c *Checks) pokeLocked() {
	c.pokes++
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// schedule is the scheduling goroutine: it starts the checks that are due
// while workers are free, publishes the transitions the workers recorded,
// and sleeps until the next check or publication is due, or a worker or
// SetTargets wakes it.
func (c *Checks) schedule(ctx context.Context) {
	var (
		timer  clock.Timer
		timerC <-chan time.Time
		armed  time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		next, ok, tns := c.step()
		if len(tns) > 0 {
			c.publish(tns)
		}
		if !ok || !next.Equal(armed) {
			if timer != nil {
				timer.Stop()
				timer, timerC, armed = nil, nil, time.Time{}
			}
			if ok {
				timer = c.clock.NewTimer(next.Sub(c.clock.Now()))
				timerC, armed = timer.C(), next
			}
		}
		c.setIdle(true, armed)
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timerC:
			timer, timerC, armed = nil, nil, time.Time{}
		}
		c.setIdle(false, armed)
	}
}

func (c *Checks) setIdle(idle bool, armed time.Time) {
	c.mu.Lock()
	c.idle, c.armed = idle, armed
	c.mu.Unlock()
}

// step does what is due now: it takes the transitions to publish when
// flushEvery has passed since the last publication (and sets the gauges
// of the states), and hands the due checks to the workers. next is when
// it has something to do again; ok is false for never (a worker or
// SetTargets wakes it).
func (c *Checks) step() (next time.Time, ok bool, tns []transition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = c.pokes
	now := c.clock.Now()
	if len(c.pending) > 0 {
		if at := c.lastFlush.Add(flushEvery); c.lastFlush.IsZero() || !at.After(now) {
			tns, c.pending, c.lastFlush = c.pending, nil, now
			c.setGauges()
		} else {
			next, ok = at, true
		}
	}
	if due, more := c.dispatch(now); more && (!ok || due.Before(next)) {
		next, ok = due, true
	}
	return next, ok, tns
}

// dispatch hands the checks due by now (and within the slack after it)
// to the workers while some are free, and skips those whose previous
// check is still in flight. It returns when the next check is due; more
// is false when none is, or when every worker is busy (a worker's result
// wakes the scheduler then). c.mu is held.
func (c *Checks) dispatch(now time.Time) (next time.Time, more bool) {
	at := int64(now.Sub(c.base))
	horizon := at + int64(c.slack)
	for len(c.due) > 0 {
		e := &c.due[0]
		if e.at > horizon {
			return dueAt(c.base, e.at), true
		}
		t := e.t
		if _, inFlight := c.busy[t.addr]; inFlight {
			c.m.skipped.Inc()
			e.at = at + int64(c.gap())
			heap.Fix(&c.due, 0)
			continue
		}
		if len(c.busy) >= c.o.Concurrency {
			c.fullAt, c.starved = at, true
			return time.Time{}, false
		}
		if e.at <= c.fullAt {
			c.m.late.Observe(time.Duration(at - e.at).Seconds())
		}
		c.busy[t.addr] = struct{}{}
		c.jobs <- job{addr: t.addr, gen: t.gen}
		e.at = at + int64(c.gap())
		heap.Fix(&c.due, 0)
	}
	return time.Time{}, false
}

// gap is the time from one check's start to the next one's:
// Interval × (1 + Jitter × (2r − 1)) for r uniform in [0, 1), that is
// Interval moved by up to ±Jitter × Interval, but never less than
// Timeout (by then the previous check is over). The moves have no bias,
// so the mean stays Interval and the checks of many servers, spread at
// the start, stay spread.
func (c *Checks) gap() time.Duration {
	d := time.Duration(float64(c.o.Interval) * (1 + c.o.Jitter*(2*c.rand()-1)))
	return max(d, c.o.Timeout)
}

// firstGap is when a new target's first check is due: a random part of
// Interval × Jitter from now (at once with Jitter 0), so that thousands
// of servers found at once are not all checked at once.
func (c *Checks) firstGap() time.Duration {
	return time.Duration(float64(c.o.Interval) * c.o.Jitter * c.rand())
}

// publish counts, logs and signals a batch of transitions.
func (c *Checks) publish(tns []transition) {
	for _, tn := range tns {
		c.m.transitions[tn.to].Inc()
	}
	c.logTransitions(tns)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}
