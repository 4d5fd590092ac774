package catalog

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// acquired runs p.acquire in the background and reports its result.
func acquired(p *writePacer) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.acquire(context.Background()) }()
	return ch
}

// The pacer tests run in a synctest bubble: once every goroutine of the
// bubble is blocked (synctest.Wait), an acquire that has not returned
// waits for the clock or a release, and only the test moves either.

// returned reports whether an acquire has returned, and its error, once it
// can do no more without the clock or a release.
func returned(ch <-chan error) (bool, error) {
	synctest.Wait()
	select {
	case err := <-ch:
		return true, err
	default:
		return false, nil
	}
}

// waitAcquired checks that an acquire has returned without the clock
// moving, and succeeded.
func waitAcquired(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	switch ok, err := returned(ch); {
	case !ok:
		t.Fatalf("%s: acquire still waiting", what)
	case err != nil:
		t.Fatalf("%s: %v", what, err)
	}
}

// blocked reports whether an acquire is still waiting (it consumes the
// result of one that returned).
func blocked(ch <-chan error) bool {
	ok, _ := returned(ch)
	return !ok
}

// pumpAcquired advances clk in 250ms steps, each once the acquire waits,
// until it returns (1000 steps at most).
func pumpAcquired(t *testing.T, clk *clocktest.Clock, ch <-chan error, what string) {
	t.Helper()
	for range 1000 {
		synctest.Wait()
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return
		default:
		}
		clk.Advance(250 * time.Millisecond)
	}
	t.Fatalf("%s: acquire still waiting after 1000 steps of 250ms", what)
}

// TestPacerWindow: refusals halve the window in flight (once per pause,
// however many of a burst are refused) down to 1; successes grow it back.
func TestPacerWindow(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		clk := clocktest.New(testStart)
		p := newWritePacer(clk, consulclient.DefaultParallel, 0, nil)
		for range consulclient.DefaultParallel {
			waitAcquired(t, acquired(p), "within the window")
		}
		ch := acquired(p)
		if !blocked(ch) {
			t.Fatal("a ninth transaction was let through with 8 in flight")
		}
		// A burst of refusals is one signal: 8 -> 4.
		for range 3 {
			p.release(refused(0), true)
		}
		if w, _ := p.state(); w != 4 {
			t.Errorf("window after one burst of refusals = %d, want 4", w)
		}
		clk.Advance(rateLimitPause)
		if !blocked(ch) {
			t.Fatal("a transaction went out with 5 in flight and a window of 4")
		}
		for range consulclient.DefaultParallel - 3 {
			p.release(nil, true) // 4 -> about 5
		}
		pumpAcquired(t, clk, ch, "after the in-flight ones ended")
		for _, want := range []int{2, 1, 1} {
			clk.Advance(rateLimitPause)
			p.release(refused(0), true)
			if w, _ := p.state(); w != want {
				t.Errorf("window = %d, want %d", w, want)
			}
			pumpAcquired(t, clk, acquired(p), "after the pause")
		}
		// Window 1, one in flight: the next waits until it ends.
		ch = acquired(p)
		clk.Advance(10 * time.Second)
		if !blocked(ch) {
			t.Fatal("a second transaction went out with a window of 1")
		}
		p.release(nil, true)
		pumpAcquired(t, clk, ch, "after the one in flight ended")
		for range 20 {
			p.release(nil, true)
			pumpAcquired(t, clk, acquired(p), "recovering")
		}
		if w, _ := p.state(); w < 4 {
			t.Errorf("window after 20 successes = %d, want it grown back (>= 4)", w)
		}
		// A long quiet lifts the learned rate.
		p.release(nil, true)
		clk.Advance(2 * consulclient.RateLimitQuiet)
		waitAcquired(t, acquired(p), "after a long quiet")
		if w, l := p.state(); w != consulclient.DefaultParallel || l != rate.Inf {
			t.Errorf("after %s without refusals: window %d, rate %v; want %d, none", 2*consulclient.RateLimitQuiet, w, l, consulclient.DefaultParallel)
		}
	})
}

// TestPacerRetryAfter: after a refusal nothing goes out before its
// Retry-After (or rateLimitPause without one) has passed on the clock.
func TestPacerRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		ra   time.Duration
		want time.Duration
	}{
		{"Retry-After", 3 * time.Second, 3 * time.Second},
		{"none", 0, rateLimitPause},
		{"shorter than the pause", 100 * time.Millisecond, rateLimitPause},
	} {
		t.Run(tc.name, bubble(func(t *testing.T) {
			clk := clocktest.New(testStart)
			p := newWritePacer(clk, consulclient.DefaultParallel, 0, nil)
			waitAcquired(t, acquired(p), "first")
			p.release(refused(tc.ra), true)
			ch := acquired(p)
			clk.Advance(tc.want - time.Millisecond)
			if !blocked(ch) {
				t.Fatalf("sent %s after a refusal; want a pause of %s", tc.want-time.Millisecond, tc.want)
			}
			clk.Advance(time.Millisecond)
			waitAcquired(t, ch, "after the pause")
		}))
	}
}

// TestPacerRate: the first refusal sets the rate to half of what landed in
// the last 5s, and it grows slowly from there; consul_write_rate caps it
// from the start.
func TestPacerRate(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		clk := clocktest.New(testStart)
		p := newWritePacer(clk, consulclient.DefaultParallel, 0, nil)
		for range 6 {
			waitAcquired(t, acquired(p), "burst")
			p.release(nil, true)
		}
		waitAcquired(t, acquired(p), "seventh")
		p.release(refused(0), true)
		if _, l := p.state(); l != 0.6 {
			t.Errorf("learned rate after 6 landed in a second and a refusal = %v, want 0.6 (half of 6 in 5s)", l)
		}
		// It grows by rateGrowth a second.
		clk.Advance(10 * time.Second)
		pumpAcquired(t, clk, acquired(p), "after the pause")
		p.release(nil, true)
		if _, l := p.state(); l < 0.6+10*rateGrowth-0.001 || l > 0.6+11*rateGrowth {
			t.Errorf("learned rate 10s after the refusal = %v, want about %v", l, 0.6+10*rateGrowth)
		}

		capped := newWritePacer(clk, consulclient.DefaultParallel, 2, nil)
		waitAcquired(t, acquired(capped), "first")
		capped.release(nil, true)
		ch := acquired(capped)
		if !blocked(ch) {
			t.Fatal("second transaction at once with consul_write_rate 2")
		}
		clk.Advance(400 * time.Millisecond)
		if !blocked(ch) {
			t.Fatal("second transaction 400ms after the first with consul_write_rate 2")
		}
		clk.Advance(100 * time.Millisecond)
		waitAcquired(t, ch, "500ms after the first")
		if _, l := capped.state(); l != rate.Inf {
			t.Errorf("learned rate without refusals = %v, want none", l)
		}
	})
}

// TestPacerHeld: while a renewal of the bridge's session is refused, the
// leader sends nothing.
func TestPacerHeld(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		clk := clocktest.New(testStart)
		var held atomic.Bool
		held.Store(true)
		p := newWritePacer(clk, consulclient.DefaultParallel, 0, held.Load)
		ch := acquired(p)
		for range 5 {
			if !blocked(ch) {
				t.Fatal("a transaction went out while a renewal was refused")
			}
			clk.Advance(heldPoll)
		}
		if !blocked(ch) {
			t.Fatal("a transaction went out while a renewal was refused")
		}
		held.Store(false)
		clk.Advance(heldPoll)
		waitAcquired(t, ch, "after the renewal went through")
	})
}

// TestCatalogInFlight: the leader keeps Catalog.InFlight (consul_parallel)
// transactions in flight.
func TestCatalogInFlight(t *testing.T) {
	c, err := New(Config{SharedConfig: consulclient.SharedConfig{BridgeID: "b1", Client: consulclient.ClientConfig{Addr: "127.0.0.1:1"}},
		Catalog: Settings{InFlight: 3}}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := c.pace.state(); w != 3 {
		t.Errorf("catalog with consul_parallel 3: pacer window %d", w)
	}
}
