package runner

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// worker applies snapshots to one sink. The loop posts into a one-slot
// mailbox that is overwritten, never queued: a slow sink skips straight to
// the newest snapshot.
type worker struct {
	r       *runner
	sink    sink.Sink
	name    string
	mailbox chan endpoint.Snapshot

	failing  bool
	failures int // consecutive failed applies
	started  bool
}

func (r *runner) newWorker(s sink.Sink, name string) *worker {
	r.cfg.Metrics.addSink(name)
	r.cfg.Health.addSink(name, s)
	if r.cfg.Board != nil {
		r.cfg.Board.AddSink(name, s)
	}
	return &worker{r: r, sink: s, name: name, mailbox: make(chan endpoint.Snapshot, 1)}
}

// post replaces the mailbox content with s. It never blocks: there is one
// sender at a time (the goroutine making a round's early adds, which stops
// before the round's end, then the loop), so after the drain the slot is
// free.
func (w *worker) post(s endpoint.Snapshot) {
	select {
	case <-w.mailbox:
	default:
	}
	w.mailbox <- s
}

// run applies the newest snapshot whenever one arrives, retrying failures
// with backoff (each retry takes the newest snapshot available then; a new
// snapshot cuts the backoff short, so a failing sink is retried at least
// once per round). When
// stop is closed it finishes the current Apply, applies the newest
// snapshot not yet applied (one attempt) and returns. ctx is cancelled only
// when the shutdown bound expires.
func (w *worker) run(ctx context.Context, stop <-chan struct{}) {
	w.start(ctx)
	var pending *endpoint.Snapshot
	newest := func() {
		select {
		case s := <-w.mailbox:
			pending = &s
		default:
		}
	}
	for {
		if pending == nil {
			select {
			case s := <-w.mailbox:
				pending = &s
			case <-stop:
				newest()
				if pending != nil && ctx.Err() == nil {
					_ = w.apply(ctx, *pending)
				}
				return
			}
		}
		newest()
		if w.apply(ctx, *pending) == nil {
			pending = nil
			continue
		}
		delay := w.r.backoff(w.failures)
		w.r.log.Debug().Str("sink", w.name).Int("attempt", w.failures).Dur("retry_in", delay).Msg("sink apply will be retried")
		t := w.r.clock.NewTimer(delay)
		select {
		case <-t.C():
		case s := <-w.mailbox:
			// A new round's snapshot ends the wait: a sink that failed
			// (Consul down) is retried at least once a round, so it is
			// level again within a round of the registry coming back,
			// however long the backoff grew during the outage.
			t.Stop()
			pending = &s
		case <-stop:
			t.Stop()
			newest()
			if ctx.Err() == nil { // the shutdown bound has not expired yet
				_ = w.apply(ctx, *pending)
			}
			return
		}
	}
}

// applyAttempts tries s up to attempts times with backoff in between (for
// Once) and returns the last error.
func (w *worker) applyAttempts(ctx context.Context, s endpoint.Snapshot, attempts int) error {
	w.start(ctx)
	var err error
	for i := range attempts {
		if err = w.apply(ctx, s); err == nil {
			return nil
		}
		if i == attempts-1 || ctx.Err() != nil {
			break
		}
		t := w.r.clock.NewTimer(w.r.backoff(w.failures))
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("sink %s: apply round %d: %w", w.name, s.Round, err)
		}
	}
	return fmt.Errorf("sink %s: apply round %d: %w", w.name, s.Round, err)
}

// start starts a sink that has background work (sink.Starter), once,
// before its first Apply.
func (w *worker) start(ctx context.Context) {
	st, ok := w.sink.(sink.Starter)
	if !ok || w.started {
		return
	}
	w.started = true
	if err := st.Start(ctx); err != nil {
		w.r.log.Warn().Str("sink", w.name).Err(err).Msg("sink start failed; its applies will fail until it recovers")
	}
}

// apply calls Apply once and records the outcome in logs, metrics and
// health. Logs: warn on healthy→failing, info on failing→healthy, debug per
// attempt.
func (w *worker) apply(ctx context.Context, s endpoint.Snapshot) error {
	log := w.r.log
	// Writes are counted as the sink makes them (sink.Wrote), so the
	// metric moves during a long apply; the rest of Result.Writes is added
	// when Apply returns.
	var reported atomic.Int64
	pctx := sink.WithProgress(ctx, func(n int) {
		reported.Add(int64(n))
		w.r.cfg.Metrics.sinkWrote(w.name, n)
	})
	res, err := w.sink.Apply(pctx, s)
	if w.r.cfg.Board != nil {
		w.r.cfg.Board.Applied(w.name, s, err)
	}
	now := w.r.clock.Now()
	failures := 0
	if err != nil {
		failures = w.failures + 1
	}
	w.r.cfg.Metrics.sinkApply(w.name, max(res.Writes-int(reported.Load()), 0), err, now, failures)
	w.r.cfg.Health.sinkApply(w.name, err)
	if err != nil {
		w.failures++
		log.Debug().Str("sink", w.name).Uint64("round", s.Round).Int("attempt", w.failures).Err(err).Msg("sink apply failed")
		if !w.failing {
			w.failing = true
			log.Warn().Str("sink", w.name).Uint64("round", s.Round).Err(err).Msg("sink failing; retrying with backoff")
		}
		return err
	}
	if w.failing {
		log.Info().Str("sink", w.name).Uint64("round", s.Round).Int("attempts", w.failures+1).Msg("sink recovered")
		w.failing = false
	}
	w.failures = 0
	log.Debug().Str("sink", w.name).Uint64("round", s.Round).Int("writes", res.Writes).
		Int("added", len(res.Diff.Added)).Int("removed", len(res.Diff.Removed)).Msg("sink applied")
	return nil
}

// backoff returns the delay after the n-th consecutive failure (n >= 1):
// Min·2^(n-1) capped at Max, with "equal jitter" (uniform in [d/2, d]) so
// that bridges restarted together do not retry in lockstep.
func (r *runner) backoff(n int) time.Duration {
	d := r.cfg.Backoff.Min
	for i := 1; i < n && d < r.cfg.Backoff.Max; i++ {
		d *= 2
	}
	d = min(d, r.cfg.Backoff.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}
