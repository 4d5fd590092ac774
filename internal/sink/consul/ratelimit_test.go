package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// Consul's rate-limit answers as back-pressure (issue 17, item 6): their
// recognition, the leader's pacing and the renewals going first.

// consulRefusal is Consul's 429 message (agent/consul/rate.ErrRetryElsewhere).
const consulRefusal = "rate limit exceeded, try again later or against a different server"

func refused(retryAfter time.Duration) error {
	return &RateLimitError{Status: 429, RetryAfter: retryAfter, Err: errors.New("Failed request: " + consulRefusal)}
}

func TestParseRetryAfter(t *testing.T) {
	date := "Wed, 21 Oct 2015 07:28:00 GMT"
	for _, tc := range []struct {
		v, date string
		want    time.Duration
	}{
		{"", date, 0},
		{"3", "", 3 * time.Second},
		{" 0 ", "", 0},
		{"120", "", maxRetryAfter},
		{"-1", "", 0},
		{"soon", "", 0},
		{"Wed, 21 Oct 2015 07:28:05 GMT", date, 5 * time.Second},
		{"Wed, 21 Oct 2015 07:27:00 GMT", date, 0}, // in the past
		{"Wed, 21 Oct 2015 07:28:05 GMT", "", 0},   // no Date to measure from
		{"Wed, 21 Oct 2015 09:00:00 GMT", date, maxRetryAfter},
	} {
		if got := parseRetryAfter(tc.v, tc.date); got != tc.want {
			t.Errorf("parseRetryAfter(%q, %q) = %s, want %s", tc.v, tc.date, got, tc.want)
		}
	}
}

func TestRateLimited(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
		ra   time.Duration
	}{
		{"nil", nil, false, 0},
		{"typed", refused(2 * time.Second), true, 2 * time.Second},
		{"wrapped", fmt.Errorf("consul txn: %w", refused(0)), true, 0},
		{"agent status", api.StatusError{Code: 429, Body: consulRefusal}, true, 0},
		{"leader only", errors.New("Unexpected response code: 503 (rate limit exceeded for operation that can only be performed by the leader, try again later)"), true, 0},
		{"no leader", api.StatusError{Code: 503, Body: "No cluster leader"}, false, 0},
		{"permission", api.StatusError{Code: 403, Body: "Permission denied"}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra, ok := rateLimited(tc.err)
			if ok != tc.ok || ra != tc.ra {
				t.Errorf("rateLimited(%v) = %s, %v; want %s, %v", tc.err, ra, ok, tc.ra, tc.ok)
			}
		})
	}
}

// TestRateLimitTransport: consul/api flattens a refused renewal to
// "Unexpected response code: 429"; the transport notes the status and the
// Retry-After, and a 503 that is not a rate limit stays a plain error.
func TestRateLimitTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/session/renew/limited":
			w.Header().Set("Retry-After", "4")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, consulRefusal)
		case "/v1/session/renew/leader":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "rate limit exceeded for operation that can only be performed by the leader, try again later")
		case "/v1/txn":
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, consulRefusal)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "No cluster leader")
		}
	}))
	defer srv.Close()
	client, err := ClientConfig{Addr: srv.URL}.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	a := apiCatalog{c: client.API}
	w := (&api.WriteOptions{}).WithContext(context.Background())
	for _, tc := range []struct {
		id     string
		status int
		ra     time.Duration
	}{
		{"limited", 429, 4 * time.Second},
		{"leader", 503, 0},
		{"other", 0, 0},
	} {
		_, err := a.RenewSession(tc.id, w)
		rl, ok := errors.AsType[*RateLimitError](err)
		switch {
		case tc.status == 0 && ok:
			t.Errorf("renew %s: %v is a rate-limit error; want a plain one", tc.id, err)
		case tc.status != 0 && (!ok || rl.Status != tc.status || rl.RetryAfter != tc.ra):
			t.Errorf("renew %s: %#v; want a rate-limit error with status %d, Retry-After %s", tc.id, err, tc.status, tc.ra)
		}
	}
	_, _, err = a.Txn(api.TxnOps{}, (&api.QueryOptions{}).WithContext(context.Background()))
	if rl, ok := errors.AsType[*RateLimitError](err); !ok || rl.Status != 429 {
		t.Errorf("txn: %v; want a 429 rate-limit error", err)
	}
}

// acquired runs p.acquire in the background and reports its result.
func acquired(p *writePacer) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.acquire(context.Background()) }()
	return ch
}

// waitAcquired waits (real time, 2s at most) for an acquire to return.
func waitAcquired(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: acquire still waiting", what)
	}
}

// blocked reports whether an acquire is still waiting after 20 ms.
func blocked(ch <-chan error) bool {
	select {
	case <-ch:
		return false
	case <-time.After(20 * time.Millisecond):
		return true
	}
}

// pumpAcquired advances clk in 250ms steps until an acquire returns (2s of
// real time at most).
func pumpAcquired(t *testing.T, clk *clocktest.Clock, ch <-chan error, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: acquire still waiting", what)
		}
		clk.Advance(250 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

// TestPacerWindow: refusals halve the window in flight (once per pause,
// however many of a burst are refused) down to 1; successes grow it back.
func TestPacerWindow(t *testing.T) {
	clk := clocktest.New(testStart)
	p := newWritePacer(clk, DefaultParallel, 0, nil)
	for range DefaultParallel {
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
	for range DefaultParallel - 3 {
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
	clk.Advance(2 * rateLimitQuiet)
	waitAcquired(t, acquired(p), "after a long quiet")
	if w, l := p.state(); w != DefaultParallel || l != rate.Inf {
		t.Errorf("after %s without refusals: window %d, rate %v; want %d, none", 2*rateLimitQuiet, w, l, DefaultParallel)
	}
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
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktest.New(testStart)
			p := newWritePacer(clk, DefaultParallel, 0, nil)
			waitAcquired(t, acquired(p), "first")
			p.release(refused(tc.ra), true)
			ch := acquired(p)
			clk.Advance(tc.want - time.Millisecond)
			if !blocked(ch) {
				t.Fatalf("sent %s after a refusal; want a pause of %s", tc.want-time.Millisecond, tc.want)
			}
			clk.Advance(time.Millisecond)
			waitAcquired(t, ch, "after the pause")
		})
	}
}

// TestPacerRate: the first refusal sets the rate to half of what landed in
// the last 5s, and it grows slowly from there; consul_write_rate caps it
// from the start.
func TestPacerRate(t *testing.T) {
	clk := clocktest.New(testStart)
	p := newWritePacer(clk, DefaultParallel, 0, nil)
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

	capped := newWritePacer(clk, DefaultParallel, 2, nil)
	waitAcquired(t, acquired(capped), "first")
	capped.release(nil, true)
	ch := acquired(capped)
	clk.WaitForTimers(context.Background(), 1)
	clk.Advance(400 * time.Millisecond)
	if !blocked(ch) {
		t.Fatal("second transaction 400ms after the first with consul_write_rate 2")
	}
	clk.Advance(100 * time.Millisecond)
	waitAcquired(t, ch, "500ms after the first")
	if _, l := capped.state(); l != rate.Inf {
		t.Errorf("learned rate without refusals = %v, want none", l)
	}
}

// TestPacerHeld: while a renewal of the bridge's session is refused, the
// leader sends nothing.
func TestPacerHeld(t *testing.T) {
	clk := clocktest.New(testStart)
	var held atomic.Bool
	held.Store(true)
	p := newWritePacer(clk, DefaultParallel, 0, held.Load)
	ch := acquired(p)
	for range 5 {
		clk.WaitForTimers(context.Background(), 1)
		clk.Advance(heldPoll)
	}
	if !blocked(ch) {
		t.Fatal("a transaction went out while a renewal was refused")
	}
	held.Store(false)
	clk.WaitForTimers(context.Background(), 1)
	clk.Advance(heldPoll)
	waitAcquired(t, ch, "after the renewal went through")
}

// TestCatalogRateLimited: the observation publish is refused twice for
// the rate limit, the leader's transactions 12 times and a renewal once:
// every server still ends up registered (refused batches go again), each
// refusal is counted by op, and the WARN is logged once for the episode,
// never an INFO per refusal.
func TestCatalogRateLimited(t *testing.T) {
	h := newCatHarness(t)
	a := h.bridge("a", func(c *Config) { c.Catalog.StartupGrace = 0 })
	h.start(a)
	h.pump("a leads", 50*time.Millisecond, a.c.Leader)
	h.fc.FailNext("RenewSession", 1, refused(0))
	var addrs []string
	for i := range 100 {
		addrs = append(addrs, fmt.Sprintf("10.0.%d.%d:8000", i/200, 1+i%200))
	}
	// The first 2 publishes are refused, then 12 of the leader's
	// transactions (a catalog write is guarded by a session check).
	const pubRefusals, txnRefusals = 2, 12
	pub, lead := 0, 0
	h.fc.mu.Lock()
	h.fc.refuseTxn = func(ops api.TxnOps) error {
		switch {
		case ops[0].KV != nil && ops[0].KV.Verb == api.KVCheckSession && lead < txnRefusals:
			lead++
		case ops[0].KV != nil && ops[0].KV.Verb == api.KVLock && pub < pubRefusals:
			pub++
		default:
			return nil
		}
		return refused(0)
	}
	h.fc.mu.Unlock()
	for range pubRefusals {
		if _, err := a.c.Apply(context.Background(), snap(1, addrs...)); err == nil {
			t.Fatal("publish refused for the rate limit: Apply returned no error")
		} else if _, ok := rateLimited(err); !ok {
			t.Fatalf("Apply: %v; want a rate-limit error", err)
		}
	}
	h.apply(a, snap(1, addrs...))
	h.pump("every server registered", time.Second, func() bool {
		for _, ad := range addrs {
			if _, _, c, ok := h.server(ad); !ok || c.Status != api.HealthPassing {
				return false
			}
		}
		return true
	})
	h.pump("the renewal retried", time.Second, func() bool { return testutil.ToFloat64(a.c.metrics.sessionRenewals) >= 1 })
	for op, want := range map[string]float64{"publish": pubRefusals, "txn": txnRefusals, "renew": 1} {
		if got := testutil.ToFloat64(a.c.metrics.rateLimited.WithLabelValues(op)); got != want {
			t.Errorf("rate_limited_total{op=%q} = %v, want %v", op, got, want)
		}
	}
	warns := 0
	for _, l := range a.logs.Lines() {
		if strings.Contains(l, "consul is rate-limiting") {
			warns++
			if !strings.Contains(l, `"level":"warn"`) {
				t.Errorf("rate-limit line not at WARN: %s", l)
			}
		}
		if strings.Contains(l, `"level":"info"`) && strings.Contains(l, rateLimitText) {
			t.Errorf("rate limit logged at INFO: %s", l)
		}
	}
	if warns != 1 {
		t.Errorf("rate-limit WARN logged %d times in one episode, want once", warns)
	}
	// Quiet for rateLimitQuiet: the next success ends the episode.
	h.pump("episode over", 5*time.Second, func() bool {
		for _, l := range a.logs.Lines() {
			if strings.Contains(l, "consul rate limiting over") {
				return true
			}
		}
		return false
	})
	if h.session(a) == "" {
		t.Error("the session was lost")
	}
}

// TestCatalogRenewalFirst: while a renewal of the leader's own session is
// refused for the rate limit, the leader writes nothing; the renewal
// retries within a second and, once it goes through, the writes follow.
// The session survives refusals for longer than its TTL (Consul keeps it
// until twice the TTL).
func TestCatalogRenewalFirst(t *testing.T) {
	h := newCatHarness(t)
	a := h.bridge("a", func(c *Config) { c.Catalog.StartupGrace = 0 })
	h.start(a)
	h.pump("a leads", 50*time.Millisecond, a.c.Leader)
	h.apply(a, snap(1, "10.0.0.1:8000"))
	h.eventually("first server registered", func() bool { return h.observed("10.0.0.1:8000", api.HealthPassing, "1") })
	sess := h.session(a)

	// Refused for 12 s, more than the 10 s TTL.
	h.fc.FailNext("RenewSession", 12, refused(0))
	h.pump("renewal refused", 500*time.Millisecond, func() bool {
		return testutil.ToFloat64(a.c.metrics.rateLimited.WithLabelValues("renew")) >= 1
	})
	h.apply(a, snap(2, "10.0.0.1:8000", "10.0.0.2:8000"))
	time.Sleep(50 * time.Millisecond) // the leader plans and waits
	if _, _, _, ok := h.server("10.0.0.2:8000"); ok {
		t.Fatal("the leader wrote while its renewal was refused for the rate limit")
	}
	// 11 more refusals, a second apart: nothing is written meanwhile.
	wrote := false
	h.pump("12 renewals refused", 200*time.Millisecond, func() bool {
		n := testutil.ToFloat64(a.c.metrics.rateLimited.WithLabelValues("renew"))
		if _, _, _, ok := h.server("10.0.0.2:8000"); ok && n < 12 {
			wrote = true
		}
		return n >= 12
	})
	if wrote {
		t.Fatal("the leader wrote while its renewals were refused")
	}
	h.pump("renewal through, new server written", time.Second, func() bool { return h.observed("10.0.0.2:8000", api.HealthPassing, "1") })
	if got := h.session(a); got != sess {
		t.Errorf("session %q replaced by %q: refused renewals cost the session", sess, got)
	}
	if got := testutil.ToFloat64(a.c.metrics.rateLimited.WithLabelValues("renew")); got != 12 {
		t.Errorf("rate_limited_total{op=renew} = %v, want 12", got)
	}
}
