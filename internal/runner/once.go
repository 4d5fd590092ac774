package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// This file is --once (one round, one apply per sink) and the shutdown
// of the sinks both modes share.

func (r *runner) once(ctx context.Context) (Outcome, error) {
	p, ok := r.doRound(ctx)
	var errs []error
	switch {
	case ok && r.cfg.DryRun:
		errs = r.dryRun(ctx, p)
	case ok:
		snap := p.Snapshot()
		if r.cfg.Probe != nil {
			snap = r.checkOnce(ctx, snap)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, s := range r.cfg.Sinks {
			w := r.newWorker(s, r.names[i])
			wg.Go(func() {
				if err := w.applyAttempts(ctx, snap, r.cfg.OnceAttempts); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if !r.cfg.DryRun {
		errs = append(errs, r.closeSinks(ctx))
	}
	return r.out, errors.Join(errs...)
}

// boundedContext returns a context that outlives parent's cancellation but
// is cancelled after ShutdownTimeout on the runner's clock.
func (r *runner) boundedContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	t := r.clock.NewTimer(r.cfg.ShutdownTimeout)
	go func() {
		select {
		case <-t.C():
			cancel()
		case <-ctx.Done():
			t.Stop()
		}
	}()
	return ctx, cancel
}

// closeSinks calls Close once on every sink, concurrently, bounded by
// ShutdownTimeout, and returns their errors joined.
func (r *runner) closeSinks(parent context.Context) error {
	ctx, cancel := r.boundedContext(parent)
	defer cancel()
	errs := make([]error, len(r.cfg.Sinks))
	var wg sync.WaitGroup
	for i, s := range r.cfg.Sinks {
		wg.Go(func() {
			if err := s.Close(ctx); err != nil {
				errs[i] = fmt.Errorf("sink %s: close: %w", r.names[i], err)
				r.log.Error().Str("sink", r.names[i]).Err(err).Msg("sink close failed")
				return
			}
			r.log.Debug().Str("sink", r.names[i]).Msg("sink closed")
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
