package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// progressEvery is how often a long batch of writes logs its progress.
const progressEvery = 5 * time.Second

// errNotTried marks writes skipped after a fatal error in the same round.
var errNotTried = errors.New("not tried: an earlier write of this round could not reach Consul")

// writer runs a batch of writes with at most parallel in flight.
type writer struct {
	parallel int
	clock    clock.Clock
	log      zerolog.Logger
}

// run calls op for every ID and returns the error of each (nil on
// success). Once an op fails in a way that makes the rest pointless (Consul
// unreachable, ctx done), the ops not yet started are skipped with
// errNotTried. Only the caller's goroutine sees the results, so the caller's
// cache stays consistent with what succeeded.
//
// tick is called between dispatches on the caller's goroutine (for the
// heartbeat of long batches); a batch that runs longer than progressEvery
// logs how far it got every progressEvery.
func (w writer) run(ctx context.Context, what string, ids []string, tick func(), op func(context.Context, string) error) []error {
	errs := make([]error, len(ids))
	if len(ids) == 0 {
		return errs
	}
	var (
		wg         sync.WaitGroup
		stop       atomic.Bool
		done       atomic.Int64
		sem        = make(chan struct{}, w.parallel)
		start      = w.clock.Now()
		lastReport = start
	)
	for i, id := range ids {
		sem <- struct{}{}
		if i%64 == 63 {
			tick()
			if now := w.clock.Now(); now.Sub(lastReport) >= progressEvery {
				lastReport = now
				w.log.Info().Str("op", what).Int64("done", done.Load()).Int("total", len(ids)).
					Dur("elapsed", now.Sub(start)).Msg("consul writes in progress")
			}
		}
		if stop.Load() {
			<-sem
			errs[i] = fmt.Errorf("%s: %w", id, errNotTried)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; done.Add(1); wg.Done() }()
			if err := op(ctx, id); err != nil {
				errs[i] = err
				if fatalForRound(ctx, err) {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	if lastReport != start {
		w.log.Info().Str("op", what).Int("total", len(ids)).Dur("elapsed", w.clock.Now().Sub(start)).Msg("consul writes done")
	}
	return errs
}

// fatalForRound reports whether err means Consul is unreachable (or the
// round was cancelled) or refuses writes for its rate limit, so trying the
// remaining writes is pointless. Other HTTP status errors concern one
// service and the round goes on.
func fatalForRound(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	if errors.Is(err, errNotTried) {
		return true
	}
	if _, ok := consulclient.RateLimited(err); ok {
		return true // back-pressure: the runner's sink backoff retries the round
	}
	var se api.StatusError
	return !errors.As(err, &se)
}
