package checker

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Prober checks one server once. It must honour its own deadline (the
// app check's timeout) and ctx: a worker waits for it.
type Prober interface {
	Check(ctx context.Context, addr netip.AddrPort) appcheck.Result
}

// Config configures Checks.
type Config struct {
	// Options are the app check's: Interval, Jitter, Rise, Fall and
	// Concurrency drive the schedule and the state machine; the rest the
	// checks themselves. Options.Enabled must be true.
	Options appcheck.Options
	// Prober runs the checks; nil: appcheck.New(Options).
	Prober Prober
	// Clock times the schedule and the states' Since; nil: the real
	// clock.
	Clock clock.Clock
	// Log receives a line per transition (the zero Logger: none).
	Log zerolog.Logger
	// Registerer receives the metrics; nil: no metrics.
	Registerer prometheus.Registerer
	// Rand is the jitter's source of numbers in [0, 1); nil: math/rand/v2.
	Rand func() float64
}

// Checks schedules the app checks of the held servers and follows their
// health with rise/fall hysteresis. Its methods are safe for concurrent
// use; SetTargets, Decorate, Changed and Explain never wait for a check.
type Checks struct {
	o      appcheck.Options
	prober Prober
	clock  clock.Clock
	log    zerolog.Logger
	rand   func() float64
	m      *metrics
	// slack lets one wakeup start the checks due within it too, so that
	// 1,000 checks a second are a few dozen wakeups, not 1,000.
	slack time.Duration

	mu sync.Mutex
	tr *tracker
	// due orders the targets by due time; every target is in it. Due
	// times are nanoseconds since base.
	due  dueHeap
	base time.Time
	// busy holds the addresses whose check is in flight (at most
	// Concurrency; a dropped target's too until its result is in).
	busy map[netip.AddrPort]struct{}
	// epoch counts SetTargets calls (target.seen).
	epoch uint64
	// fullAt is the last time a due check found every worker busy: the
	// checks due by then started late. starved says the scheduler waits
	// for a worker: the next result wakes it.
	fullAt  int64 // since base; -1: never
	starved bool
	// pending are the transitions recorded and not yet published (logged,
	// counted, signalled); lastFlush is when they last were.
	pending   []transition
	lastFlush time.Time
	// pokes counts wakes sent to the scheduler, seen those it has seen;
	// idle and armed say it waits in select with its timer set for armed
	// (zero: none). Tests read them (quiet).
	pokes, seen uint64
	idle        bool
	armed       time.Time

	// started is set by SetInitialTargets, or the first SetTargets with
	// targets (after which no target is initial). unsettled counts the
	// initial targets without a result yet; settled is closed when none
	// is left.
	started   bool
	unsettled int
	settled   chan struct{}

	jobs    chan job // to the workers; never more than Concurrency in it
	wake    chan struct{}
	changed chan struct{}
}

// flushEvery spaces the publications of transitions: the first of a
// quiet spell is published at once, those that follow within flushEvery
// together at its end. Checks are spread over the interval, so a fleet
// that fails at once turns over seconds: this makes it a few batches (a
// few summary lines, a few Changed signals and decorated snapshots), not
// one per server.
const flushEvery = time.Second

// maxSlack bounds the slack (Interval / 100).
const maxSlack = 50 * time.Millisecond

// job is one check to run: addr in the life gen of its target.
type job struct {
	addr netip.AddrPort
	gen  uint64
}

// New returns Checks for cfg; call Run to start checking.
func New(cfg Config) (*Checks, error) {
	o := cfg.Options
	if !o.Enabled() {
		return nil, fmt.Errorf("app check scheduler: %w", appcheck.ErrDisabled)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := cfg.Prober
	if p == nil {
		c, err := appcheck.New(o)
		if err != nil {
			return nil, err
		}
		p = c
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Float64
	}
	c := &Checks{
		o: o, prober: p, clock: clock.OrReal(cfg.Clock), log: cfg.Log, rand: r,
		m:       newMetrics(cfg.Registerer),
		slack:   min(o.Interval/100, maxSlack),
		tr:      newTracker(o.Rise, o.Fall),
		base:    clock.OrReal(cfg.Clock).Now(),
		busy:    make(map[netip.AddrPort]struct{}, o.Concurrency),
		jobs:    make(chan job, o.Concurrency),
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}, 1),
		settled: make(chan struct{}),
		fullAt:  -1,
	}
	if o.InsecureSkipVerify {
		c.log.Warn().Str("key", "app_check_tls_insecure").Msg("https app checks do not verify the servers' certificates")
	}
	return c, nil
}

// Run checks the targets until ctx ends: one scheduling goroutine and
// Options.Concurrency workers. It returns once they all stopped. Call it
// once.
func (c *Checks) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range c.o.Concurrency {
		wg.Go(func() { c.work(ctx) })
	}
	c.schedule(ctx)
	close(c.jobs)
	wg.Wait()
}

// work runs the checks it is handed and records their results.
func (c *Checks) work(ctx context.Context) {
	// The checks' contexts hang from the worker's own: ctx's list of
	// children is not a lock all workers take twice a check.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for j := range c.jobs {
		if wctx.Err() != nil {
			c.mu.Lock()
			delete(c.busy, j.addr)
			c.mu.Unlock()
			continue
		}
		c.record(j, c.prober.Check(wctx, j.addr))
	}
}

// record applies the result r of job j. It wakes the scheduler only when
// it has something to do: a transition to publish, or a worker to hand a
// due check that waits.
func (c *Checks) record(j job, r appcheck.Result) {
	if r.OK {
		c.m.pass.Inc()
	} else {
		c.m.fail.Inc()
	}
	c.m.duration.Observe(r.Latency.Seconds())
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.busy, j.addr)
	wake := c.starved
	c.starved = false
	t := c.tr.targets[j.addr]
	unsettled := t != nil && t.gen == j.gen && t.initial && !t.verdict
	if tn, changed, _ := c.tr.record(j.addr, j.gen, r, c.clock.Now()); changed {
		c.pending = append(c.pending, tn)
		wake = wake || len(c.pending) == 1
	}
	if unsettled {
		c.settleOneLocked()
	}
	if wake {
		c.pokeLocked()
	}
}

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

// quiet reports (to tests) whether the scheduler waits, having seen
// every wake, with inFlight checks in flight and no timer due at the
// clock's now: only the test can move it on.
func (c *Checks) quiet(inFlight int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idle && c.seen == c.pokes && len(c.busy) == inFlight &&
		(c.armed.IsZero() || c.armed.After(c.clock.Now())) && (len(c.pending) == 0 || !c.armed.IsZero())
}
