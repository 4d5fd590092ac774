// Package runner is the sidecar loop of `bridge run`: it runs a discovery
// round every interval, turns each round into a plan with internal/plan, and hands
// the resulting snapshot to every sink through a per-sink worker that never
// holds up the loop or the other sinks. While a round runs, the servers it
// reports as they arrive are added at once (early.go). With an app check,
// every snapshot carries each server's health and a health transition
// reaches the sinks between rounds (appcheck.go).
//
// It also implements --once and --dry-run, graceful shutdown, the loop's
// Prometheus metrics and the /healthz and /readyz endpoints.
package runner

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

type runner struct {
	cfg   Config
	d     Discoverer
	log   zerolog.Logger
	clock clock.Clock
	names []string // per sink, unique

	round        uint64
	lastStart    time.Time // start of the previous round (zero before the first)
	state        plan.State
	failedRounds int // consecutive failed rounds
	out          Outcome

	workers    []*worker // the loop's, one per sink (none with DryRun or Once)
	addedEarly int       // servers added as they arrived in the current round
	completed  bool      // a round completed since start-up (early adds are on)
	lastRound  uint64    // the last completed round (health transitions are posted with it)
	limiting   bool      // the last completed round refused new servers at a limit
	// initialDone: the first completed round's held set went to the
	// Checker (initialTargets).
	initialDone bool
}

// Run runs the loop until ctx is cancelled (or one round with Once).
//
// Rounds start every Interval measured from the previous scheduled start, the
// first at once; a round that overruns is followed at once by the next.
// Every completed round reaches the sinks, each through its own worker with
// a one-slot "latest snapshot" mailbox, retried with capped exponential
// backoff. With a Discoverer that is a Notifier, a server's first reply in
// a round also reaches them at once, from the second round after start-up
// on (the first complete round is the first full view): arrivals are
// gathered for AddWindow and handed over as one snapshot of the round in
// progress (adds as they arrive); removals wait for the round's end. Once
// and DryRun hand over only the round's end. On cancellation the in-flight round is abandoned, each worker
// finishes its current Apply and applies the newest snapshot it has not
// applied yet (together bounded by ShutdownTimeout), then every sink is
// closed once; Run returns a nil error.
//
// The returned error is non-nil for an invalid Config (wrapping
// ErrInvalidConfig) and, with Once, when a sink's Apply, Plan or Close failed
// or the dry-run output could not be written.
func Run(ctx context.Context, d Discoverer, cfg Config) (Outcome, error) {
	cfg, err := cfg.withDefaults()
	if d == nil {
		err = errors.Join(err, fmt.Errorf("%w: no discoverer", ErrInvalidConfig))
	}
	if err != nil {
		return Outcome{}, err
	}
	r := &runner{cfg: cfg, d: d, log: cfg.Log, clock: cfg.Clock, names: sinkNames(cfg.Sinks)}
	if cfg.Once {
		return r.once(ctx)
	}
	return r.loop(ctx)
}

// sinkNames returns each sink's Name, suffixed with "#<index>" when an
// earlier sink has the same name, for logs, metrics and readiness.
func sinkNames(sinks []sink.Sink) []string {
	seen := map[string]bool{}
	names := make([]string, len(sinks))
	for i, s := range sinks {
		if s == nil {
			continue
		}
		n := s.Name()
		if seen[n] {
			n = fmt.Sprintf("%s#%d", n, i)
		}
		seen[n] = true
		names[i] = n
	}
	return names
}

func (r *runner) loop(ctx context.Context) (Outcome, error) {
	stop := make(chan struct{})
	sinkCtx, cancelSinks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSinks()
	var wg sync.WaitGroup
	if !r.cfg.DryRun {
		for i, s := range r.cfg.Sinks {
			w := r.newWorker(s, r.names[i])
			r.workers = append(r.workers, w)
			wg.Go(func() { w.run(sinkCtx, stop) })
		}
	}
	r.log.Info().Str("interval", r.cfg.Interval.String()).Int("missed_rounds", r.cfg.MissedRounds).
		Float64("max_removal_fraction", r.cfg.MaxRemovalFraction).Int("removal_guard_rounds", r.cfg.RemovalGuardRounds).
		Bool("dry_run", r.cfg.DryRun).Bool("encryption", r.cfg.Encryption).Strs("sinks", r.names).Msg("loop started")
	r.logScanPlan()
	r.cfg.Metrics.started(r.cfg.Interval)

	next := r.clock.Now()
	for r.wait(ctx, next) == nil {
		p, ok := r.doRound(ctx)
		if ctx.Err() != nil && !ok {
			break
		}
		if ok {
			snap := p.Snapshot()
			if !r.initialDone {
				r.initialDone = true
				r.initialTargets(ctx, snap.Endpoints)
			} else {
				r.setTargets(snap.Endpoints)
			}
			r.drainChanged()
			snap = r.decorate(snap)
			if r.cfg.DryRun {
				_ = r.dryRun(ctx, p)
			} else {
				for _, w := range r.workers {
					w.post(snap)
				}
			}
			if r.cfg.Inventory != nil {
				r.cfg.Inventory.Round(snap)
			}
		}
		if r.cfg.AfterRound != nil {
			r.cfg.AfterRound()
		}
		next = next.Add(r.cfg.Interval)
		if now := r.clock.Now(); next.Before(now) {
			r.log.Debug().Uint64("round", r.round).Dur("late_by", now.Sub(next)).Msg("round overran the interval; starting the next at once")
			next = now
		}
	}

	r.log.Info().Uint64("rounds", r.round).Msg("shutting down")
	if r.cfg.DryRun {
		return r.out, nil
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := r.clock.NewTimer(r.cfg.ShutdownTimeout)
	select {
	case <-done:
		t.Stop()
	case <-t.C():
		r.log.Warn().Dur("timeout", r.cfg.ShutdownTimeout).Msg("sinks did not finish in time; cancelling their applies")
		cancelSinks()
		<-done
	}
	_ = r.closeSinks(ctx)
	r.log.Info().Msg("stopped")
	return r.out, nil
}

// wait blocks until the clock reaches at or ctx is done. Meanwhile it
// hands every health transition of the app checks to the sinks
// (postHealth).
func (r *runner) wait(ctx context.Context, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := at.Sub(r.clock.Now())
	if d <= 0 {
		return nil
	}
	t := r.clock.NewTimer(d)
	changed := r.changed()
	for {
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
			return nil
		case <-changed:
			r.postHealth()
		}
	}
}

// doRound runs one round and plans it. ok is true for a completed round.
func (r *runner) doRound(ctx context.Context) (p plan.Plan, ok bool) {
	r.round++
	r.out.Rounds = r.round
	r.cfg.Health.tick()
	if ka, ok := r.d.(KeepAliver); ok {
		// Only a server whose advertised address is its reply's source
		// earns a keep-alive: a forged reply naming another address never
		// steers the bridge's probes.
		sources := make([]netip.AddrPort, 0, r.state.Len())
		for _, e := range r.state.Endpoints() {
			if e.Source.IsValid() && e.Source.Addr().Unmap() == e.Addr.Addr().Unmap() {
				sources = append(sources, e.Source)
			}
		}
		ka.KeepAlive(sources)
	}
	start := r.clock.Now()
	skipped := r.skippedRounds(start)
	r.lastStart = start
	res, err := r.discoverRound(ctx)
	end := r.clock.Now()
	if err == nil {
		err = r.staleRound(end.Sub(start))
	}
	if err != nil && ctx.Err() != nil {
		r.log.Debug().Uint64("round", r.round).Err(err).Msg("round abandoned at shutdown")
		r.out.Failed, r.out.RoundErr = true, err
		return plan.Plan{Round: r.round, At: end, Failed: true}, false
	}
	cfg := r.planConfig()
	if err != nil {
		r.failedRounds++
		r.out.Failed, r.out.RoundErr = true, err
		r.cfg.Metrics.round(false, end.Sub(start), res.Stats)
		r.cfg.Health.round(fmt.Errorf("round %d: %w", r.round, err))
		if r.cfg.Inventory != nil {
			r.cfg.Inventory.Failed(fmt.Errorf("round %d: %w", r.round, err))
		}
		if r.failedRounds == 1 {
			r.log.Warn().Uint64("round", r.round).Str("reason", reason(err)).Err(err).
				Msg("discovery round failed; no endpoint counts as missed until a round completes")
		}
		r.log.Debug().Uint64("round", r.round).Int("consecutive", r.failedRounds).Err(err).Msg("discovery round failed")
		r.state, p = plan.Next(cfg, r.state, plan.Observation{Round: r.round, At: end, Failed: true})
		r.setTargets(p.Kept) // every held endpoint: unchanged, as a failed round changes nothing
		return p, false
	}
	if r.failedRounds > 0 {
		r.log.Info().Uint64("round", r.round).Int("failed_rounds", r.failedRounds).Msg("discovery rounds complete again")
		r.failedRounds = 0
	}
	r.out.Failed, r.out.RoundErr, r.out.Found = false, nil, len(res.Servers)

	if skipped > 0 {
		r.log.Warn().Uint64("round", r.round).Int("skipped_rounds", skipped).
			Msg("rounds were skipped (the process was paused or starved); they count as misses of every server this round did not see")
	}
	obs := plan.Observation{Round: r.round, At: end, Skipped: skipped, Seen: make([]plan.Seen, 0, len(res.Servers))}
	for _, s := range res.Servers {
		obs.Seen = append(obs.Seen, seenOf(s))
	}
	// The planner needs obs only: let the round's list go before it builds
	// the next state (10,000 servers are 2 MiB).
	res.Servers = nil
	r.state, p = plan.Next(cfg, r.state, obs)
	r.completed, r.lastRound = true, r.round
	r.cfg.Metrics.round(true, end.Sub(start), res.Stats)
	r.cfg.Metrics.planned(r.state.Len(), len(p.Added), len(p.Removed))
	r.cfg.Health.round(nil)
	r.reportGuard(p)
	r.reportLimits(p, r.state.Len())
	r.logChanges(p)
	r.log.Debug().Uint64("round", r.round).Int("servers", r.out.Found).Int("held", r.state.Len()).
		Int("added", len(p.Added)).Int("added_early", r.addedEarly).Int("removed", len(p.Removed)).Dur("duration", end.Sub(start)).Msg("round complete")
	return p, true
}

// ErrStaleRound marks a round that took far longer than its deadline: the
// process was paused (SIGSTOP, a frozen container) or starved while it ran,
// so its replies may be older than the round claims. It counts as a failed
// round: nothing is added, nothing missed, nothing handed to the sinks.
var ErrStaleRound = errors.New("stale round")

// staleRound returns an ErrStaleRound error when a round that took took is
// stale: longer than twice RoundTimeout and at least a second over it.
func (r *runner) staleRound(took time.Duration) error {
	limit := r.cfg.RoundTimeout + max(r.cfg.RoundTimeout, time.Second)
	if r.cfg.RoundTimeout <= 0 || took <= limit {
		return nil
	}
	return fmt.Errorf("%w: the round took %s against its %s deadline (the process was paused or starved); its replies are not used",
		ErrStaleRound, took.Round(time.Millisecond), r.cfg.RoundTimeout)
}

// skippedRounds is how many rounds should have started between the
// previous round's start and start but did not: rounds start every
// Interval (at once after an overrun, and a round never outlasts
// Interval), so a gap of more than two intervals means the loop was paused.
func (r *runner) skippedRounds(start time.Time) int {
	if r.cfg.RoundTimeout <= 0 || r.cfg.Interval <= 0 || r.lastStart.IsZero() {
		return 0
	}
	gap := start.Sub(r.lastStart)
	if gap <= 2*r.cfg.Interval {
		return 0
	}
	return int(gap/r.cfg.Interval) - 1
}

// logScanPlan logs, when the Discoverer scans subnets, how long one scan
// cycle takes: hosts ÷ (rate × round time) rounds, each starting every
// Interval. The cycle's start and progress are in the metrics.
func (r *runner) logScanPlan() {
	sp, ok := r.d.(ScanPlanner)
	if !ok {
		return
	}
	p := sp.ScanPlan()
	if p.Hosts == 0 {
		return
	}
	r.cfg.Metrics.scanPlanned(p.Hosts)
	ev := r.log.Info().Int("hosts", p.Hosts).Int("rate", p.Rate).Float64("scan_seconds", p.Seconds).
		Int("cycle_rounds", p.Rounds).Str("cycle", (time.Duration(p.Rounds) * r.cfg.Interval).String())
	if p.OnLink > 0 {
		ev = ev.Int("onlink_hosts", p.OnLink).Float64("onlink_rate", p.OnLinkRate).Int("neigh_limit", p.NeighLimit)
	}
	ev.Msg("subnet scan: every host is probed once per cycle")
}

// reason is a short, bounded label for a failed round.
func reason(err error) string {
	switch {
	case errors.Is(err, discover.ErrNoInterfaces):
		return "no_interfaces"
	case errors.Is(err, discover.ErrNoProbeSent):
		return "no_probe_sent"
	default:
		return "error"
	}
}
