package runner_test

import (
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// initialChecker is a fakeChecker that is a runner.InitialChecker.
type initialChecker struct {
	*fakeChecker
	settled chan struct{}
	initial [][]string
}

func (c *initialChecker) SetInitialTargets(eps []endpoint.Endpoint) {
	var addrs []string
	for _, e := range eps {
		addrs = append(addrs, e.Addr.String())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initial = append(c.initial, addrs)
}

func (c *initialChecker) Settled() <-chan struct{} { return c.settled }

// TestFirstVerdicts: the first completed round's held set goes to
// SetInitialTargets, and its snapshot waits for Settled, so the sinks get
// each server's verdict, not "pending" for all; later rounds use
// SetTargets. Without Settled within FirstVerdictWait the snapshot goes
// with what there is.
func TestFirstVerdicts(t *testing.T) {
	const a, b = "10.0.0.1:8000", "10.0.0.2:8000"
	for _, settles := range []bool{true, false} {
		ck := &initialChecker{fakeChecker: newFakeChecker(), settled: make(chan struct{})}
		h := newHarness(t, roundScript{servers: []string{a, b}}, roundScript{servers: []string{a, b}})
		s := newSink("fake")
		cfg := h.config(s)
		cfg.Checker, cfg.FirstVerdictWait = ck, 3*time.Second
		h.start(cfg)
		h.d.nextRound(t)
		h.waitTimers(1) // the loop waits on its verdict timer
		select {
		case c := <-s.applied:
			t.Fatalf("applied round %d before the first verdicts", c.round)
		case <-time.After(20 * time.Millisecond): // a wrong post would be applied by now
		}
		ck.flip(a, endpoint.Ready)
		ck.flip(b, endpoint.Failing)
		want := []string{"ready", "failing"}
		if settles {
			close(ck.settled)
		} else {
			ck.flip(b, endpoint.Pending)
			want = []string{"ready", "pending"}
			h.clock.Advance(3 * time.Second)
		}
		c := s.nextApply(t)
		if c.round != 1 || !slices.Equal(c.health, want) {
			t.Fatalf("settles %v: first apply round %d %v, want round 1 %v", settles, c.round, c.health, want)
		}
		h.idle()
		h.clock.Advance(10 * time.Second)
		h.d.nextRound(t)
		s.nextApply(t)
		h.idle()
		h.stop()
		if len(ck.initial) != 1 || len(ck.targetCalls()) != 1 {
			t.Errorf("settles %v: SetInitialTargets %v, SetTargets %v: want the first round's set once, then the second's", settles, ck.initial, ck.targetCalls())
		}
	}
}
