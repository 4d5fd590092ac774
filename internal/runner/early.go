package runner

import (
	"context"
	"sync"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// This file is adds as they arrive: while a round runs, the servers it
// reports are gathered for AddWindow, added to the planner's state
// (plan.Arrive) and handed to the sinks as an early snapshot, without
// waiting for the round's end. Removals and the hysteresis stay at the
// round's end (plan.Next).

// Notifier is implemented by a Discoverer that reports each new server of
// a round as its first valid reply arrives (discover.Client.RoundNotify).
// With one, the loop adds servers as they arrive; without, adds wait for
// the round's end.
type Notifier interface {
	RoundNotify(ctx context.Context, onServer func(discover.Server)) (discover.Result, error)
}

// DefaultAddWindow is how long the loop gathers arriving servers before it
// hands them to the sinks as one snapshot: a burst of 10,000 replies is a
// few applies, while a lone new server waits no more than this.
const DefaultAddWindow = 5 * time.Millisecond

// arrivals gathers the servers a round reports, from the goroutine reading
// replies, for the goroutine making the early adds.
type arrivals struct {
	mu   sync.Mutex
	seen []plan.Seen
	wake chan struct{} // one token: something arrived since the last take
}

func newArrivals() *arrivals { return &arrivals{wake: make(chan struct{}, 1)} }

// add records s. It is called on the receive path and costs a lock and an
// append.
func (a *arrivals) add(s discover.Server) {
	a.mu.Lock()
	a.seen = append(a.seen, seenOf(s))
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take returns what arrived since the last take.
func (a *arrivals) take() []plan.Seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.seen
	a.seen = nil
	return s
}

// seenOf is a server as the planner needs it.
func seenOf(s discover.Server) plan.Seen {
	return plan.Seen{Addr: s.Endpoint(), Source: s.Source, Interface: s.Interface, Network: s.Network, At: s.Received}
}

// earlyAdds reports whether this round adds servers as they arrive: the
// loop (not Once, not DryRun, whose outputs stay one per round), a
// Discoverer that reports arrivals, an AddWindow that is not negative, and
// a round completed since start-up. Before that the state is empty while
// the registries may still hold every server a previous run registered: an
// early snapshot would be a partial view, and a sink that brings its
// registry in line with it would remove the servers that had not answered
// yet, only to add them back at the round's end. From the first complete
// round on, an early snapshot is the last round's set plus the new servers,
// so a sink only ever adds.
func (r *runner) earlyAdds() (Notifier, bool) {
	n, ok := r.d.(Notifier)
	return n, ok && r.completed && !r.cfg.Once && !r.cfg.DryRun && r.cfg.AddWindow >= 0
}

// discoverRound runs one round. When servers are added as they arrive, a
// goroutine makes the early adds while the round runs; it owns r.state
// until it has stopped, which happens before discoverRound returns, so the
// round's end plans on a state that holds every early add. Arrivals still
// in the window when the round ends are left to the round's end, which
// adds them.
func (r *runner) discoverRound(ctx context.Context) (discover.Result, error) {
	r.addedEarly = 0
	n, ok := r.earlyAdds()
	if !ok {
		return r.d.Round(ctx)
	}
	a := newArrivals()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		r.addArrivals(a, stop)
	}()
	res, err := n.RoundNotify(ctx, a.add)
	close(stop)
	<-done
	return res, err
}

// addArrivals makes the early adds of one round until stop is closed: at
// the first arrival it waits AddWindow, then adds every server that
// arrived meanwhile and that the state does not hold, and posts the
// resulting snapshot (stamped with the round in progress) to every
// sink's mailbox. A known server's reply changes nothing here.
func (r *runner) addArrivals(a *arrivals, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-a.wake:
		}
		woke := r.clock.Now()
		if !clock.Sleep(r.clock, r.cfg.AddWindow, stop) {
			return
		}
		select { // what arrived until now is taken below
		case <-a.wake:
		default:
		}
		seen := a.take()
		now := r.clock.Now()
		if err := r.staleRound(now.Sub(woke)); err != nil {
			// The process was paused inside the window: these replies
			// are old. The round's end judges them (a stale round adds
			// nothing).
			r.log.Debug().Uint64("round", r.round).Int("servers", len(seen)).Err(err).Msg("early adds dropped")
			continue
		}
		// What the limits refuse here, the round's end refuses again and
		// counts (Next sees every server of the round).
		next, added, _ := plan.Arrive(r.state, seen, now, r.cfg.Limits)
		r.log.Debug().Uint64("round", r.round).Int("arrived", len(seen)).Int("added", len(added)).Msg("arrivals gathered")
		if len(added) == 0 {
			continue
		}
		r.state = next
		r.addedEarly += len(added)
		snap := next.Snapshot(r.round, now)
		r.setTargets(snap.Endpoints)
		snap = r.decorate(snap)
		for _, w := range r.workers {
			w.post(snap)
		}
		if r.cfg.Inventory != nil {
			r.cfg.Inventory.Arrived(snap)
		}
		r.cfg.Metrics.arrived(next.Len(), len(added))
		r.logChange(r.round, added, nil, next.Len(), true)
	}
}
