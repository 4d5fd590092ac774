package catalog

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Pacing of the leader's transactions. Consul's write limit is per server
// and shared with everything else that writes (every bridge's session
// renewals and observations go through the same budget on the raft
// leader), so a refusal is back-pressure, not a failure to retry at once:
//
//   - the transactions in flight follow AIMD: halved at a refusal, one more
//     per window of successes, between 1 and consul_parallel;
//   - the send rate is learned the same way: at the first refusal it drops to
//     half of what landed in the last landedWindow (a burst that went out at
//     once says nothing of the budget), halves again at every later refusal
//     and grows by rateGrowth a second since; consulclient.RateLimitQuiet x 2 without a
//     refusal lifts it;
//   - a refusal pauses every send for its Retry-After, or rateLimitPause
//     doubled for every refusal in a row (up to 8 s), which leaves the
//     budget to the renewals of the other bridges, whose refusals the leader
//     does not see;
//   - consul_write_rate caps the rate whatever was learned;
//   - while a renewal of this bridge's own session is refused, nothing is
//     sent: the renewal goes first.
const (
	// rateLimitPause is the pause after a refusal without Retry-After: a
	// write_rate of 1 has refilled one token by then.
	rateLimitPause = time.Second
	// minWriteRate is the floor of the learned rate (writes/s).
	minWriteRate = 0.2
	// rateGrowth is the learned rate's additive increase, per second since
	// the last decrease (writes/s per s): slow, so that the leader stays
	// below the budget the renewals of the fleet need for long.
	rateGrowth = 0.02
	// landedWindow is how far back the landed rate is measured.
	landedWindow = 5 * time.Second
	// maxPauseShift caps the pause after refusals in a row at
	// rateLimitPause x 2^maxPauseShift.
	maxPauseShift = 3
	// heldPoll is how often a send held for a refused renewal looks again.
	heldPoll = 100 * time.Millisecond
)

// writePacer paces the leader's transactions; safe for concurrent use. The
// zero value is not usable: see newWritePacer.
type writePacer struct {
	clock clock.Clock
	max   int
	limit rate.Limit  // consul_write_rate (rate.Inf: none)
	held  func() bool // a renewal of this bridge's session is being refused

	mu         sync.Mutex
	window     float64 // transactions allowed in flight, 1..max
	inFlight   int
	lim        *rate.Limiter // min(limit, learned)
	learned    rate.Limit    // rate.Inf until a refusal
	pauseUntil time.Time
	lastCut    time.Time // last multiplicative decrease
	lastReject time.Time
	refusals   int         // refusal bursts since the last success
	sent       []time.Time // send times within the last second
	landed     []time.Time // successes within the last landedWindow
	base       rate.Limit  // learned rate at the last decrease
	freed      chan struct{}
}

// newWritePacer paces at most maxInFlight transactions and writeRate per
// second (0: no cap).
func newWritePacer(clk clock.Clock, maxInFlight int, writeRate float64, held func() bool) *writePacer {
	limit := rate.Inf
	if writeRate > 0 {
		limit = rate.Limit(writeRate)
	}
	if held == nil {
		held = func() bool { return false }
	}
	return &writePacer{clock: clk, max: maxInFlight, limit: limit, held: held,
		window: float64(maxInFlight), lim: rate.NewLimiter(limit, 1), learned: rate.Inf, freed: make(chan struct{})}
}

// acquire waits for a slot to send one transaction: room in the window, no
// pause, no refused renewal, and the rate's next token. It fails only when
// ctx ends; every nil return must be matched by one release.
func (p *writePacer) acquire(ctx context.Context) error {
	for {
		p.mu.Lock()
		now := p.clock.Now()
		p.recoverLocked(now)
		var (
			wait  time.Duration
			freed <-chan struct{}
		)
		switch {
		case p.inFlight >= int(p.window):
			freed = p.freed
		case now.Before(p.pauseUntil):
			wait = p.pauseUntil.Sub(now)
		case p.held():
			wait = heldPoll
		default:
			p.inFlight++
			d := p.lim.ReserveN(now, 1).DelayFrom(now)
			p.sent = append(p.recentLocked(now), now.Add(d))
			p.mu.Unlock()
			if d > 0 && !clock.Sleep(p.clock, d, ctx.Done()) {
				p.release(nil, false)
				return ctx.Err()
			}
			return nil
		}
		p.mu.Unlock()
		if freed != nil {
			select {
			case <-freed:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else if !clock.Sleep(p.clock, wait, ctx.Done()) {
			return ctx.Err()
		}
	}
}

// release frees the slot of a transaction that ended with err; counted
// says it was sent (a refusal or a success adjusts the pacing, other
// failures leave it).
func (p *writePacer) release(err error, counted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	close(p.freed)
	p.freed = make(chan struct{})
	if !counted {
		return
	}
	now := p.clock.Now()
	if ra, ok := consulclient.RateLimited(err); ok {
		p.lastReject = now
		// One decrease per pause: the refusals of one burst are one signal.
		cut := p.lastCut.IsZero() || now.Sub(p.lastCut) >= rateLimitPause
		if cut {
			p.refusals++
		}
		pause := rateLimitPause << min(max(p.refusals, 1)-1, maxPauseShift)
		if until := now.Add(max(ra, pause)); until.After(p.pauseUntil) {
			p.pauseUntil = until
		}
		if cut {
			p.lastCut = now
			p.window = max(1, p.window/2)
			p.landedLocked(now)
			cur := min(rate.Limit(len(p.recentLocked(now))), rate.Limit(float64(len(p.landed))/landedWindow.Seconds()))
			if p.learned < cur {
				cur = p.learned
			}
			p.learned = max(minWriteRate, cur/2)
			p.base = p.learned
			p.lim.SetLimitAt(now, min(p.limit, p.learned))
		}
		return
	}
	if err != nil {
		return
	}
	p.refusals = 0
	p.window = min(float64(p.max), p.window+1/p.window)
	p.landed = append(p.landedLocked(now), now)
	if p.learned != rate.Inf {
		p.learned = p.base + rate.Limit(rateGrowth*now.Sub(p.lastCut).Seconds())
		p.lim.SetLimitAt(now, min(p.limit, p.learned))
	}
}

// recoverLocked lifts the learned rate and window after a long quiet.
func (p *writePacer) recoverLocked(now time.Time) {
	if p.learned == rate.Inf || now.Sub(p.lastReject) < 2*consulclient.RateLimitQuiet {
		return
	}
	p.learned, p.window = rate.Inf, float64(p.max)
	p.lim.SetLimitAt(now, p.limit)
}

// recentLocked drops the send times older than a second.
func (p *writePacer) recentLocked(now time.Time) []time.Time {
	i := 0
	for i < len(p.sent) && now.Sub(p.sent[i]) > time.Second {
		i++
	}
	p.sent = p.sent[i:]
	return p.sent
}

// landedLocked drops the success times older than landedWindow.
func (p *writePacer) landedLocked(now time.Time) []time.Time {
	i := 0
	for i < len(p.landed) && now.Sub(p.landed[i]) > landedWindow {
		i++
	}
	p.landed = p.landed[i:]
	return p.landed
}

// state is the window and learned rate, for tests and logs.
func (p *writePacer) state() (window int, learned rate.Limit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.window), p.learned
}
