package discover

import (
	"context"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Pacing constants of the scan.
const (
	// paceSlack is how far a sender that fell behind (a loaded machine, a
	// send that blocked) may catch up in a burst; beyond it the debt is
	// forgotten, so a stall never turns into a burst above the rate.
	paceSlack = 10 * time.Millisecond
	// paceMinSleep: a send due sooner than this goes at once (the schedule
	// is kept, so the average rate holds). Timers are not precise below a
	// millisecond; sleeping for every 20 µs gap would lower high rates.
	paceMinSleep = time.Millisecond
)

// pacer spaces events at a fixed rate: event k is due at start + k/rate,
// start being the first event. The schedule is absolute, so timer lateness
// does not accumulate into a lower rate; a sender behind by more than
// paceSlack restarts the schedule at now.
type pacer struct {
	interval time.Duration
	next     time.Time // due time of the next event; zero before the first
}

// newPacer returns a pacer for perSecond events per second (> 0).
func newPacer(perSecond float64) *pacer {
	return &pacer{interval: time.Duration(float64(time.Second) / perSecond)}
}

// take reserves the next event at now and returns how long to wait before
// it (0: go now).
func (p *pacer) take(now time.Time) time.Duration {
	if p.next.IsZero() || now.Sub(p.next) > paceSlack {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.interval)
	if d := at.Sub(now); d >= paceMinSleep {
		return d
	}
	return 0
}

// waitUntil sleeps on clk for d, unless that would reach deadline or ctx
// ends first; it reports whether the caller may send.
func waitUntil(ctx context.Context, clk clock.Clock, d time.Duration, deadline time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	if !clk.Now().Add(d).Before(deadline) {
		return false
	}
	if d <= 0 {
		return true
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
