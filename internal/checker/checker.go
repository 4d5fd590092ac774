package checker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

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

// quiet reports (to tests) whether the scheduler waits, having seen
// every wake, with inFlight checks in flight and no timer due at the
// clock's now: only the test can move it on.
func (c *Checks) quiet(inFlight int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idle && c.seen == c.pokes && len(c.busy) == inFlight &&
		(c.armed.IsZero() || c.armed.After(c.clock.Now())) && (len(c.pending) == 0 || !c.armed.IsZero())
}
