package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Consul's rate-limit answers as back-pressure (issue 17, item 6): their
// recognition, the leader's pacing and the renewals going first.

// consulRefusal is Consul's 429 message (agent/consul/rate.ErrRetryElsewhere).
const consulRefusal = "rate limit exceeded, try again later or against a different server"

func refused(retryAfter time.Duration) error {
	return &consulclient.RateLimitError{Status: 429, RetryAfter: retryAfter, Err: errors.New("Failed request: " + consulRefusal)}
}

// TestRateLimitTransport: consul/api flattens a refused renewal to
// "Unexpected response code: 429"; the transport notes the status and the
// Retry-After, and a 503 that is not a rate limit stays a plain error.
func TestRateLimitTransport(t *testing.T) {
	inBubble(t, func(t *testing.T) {
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
		client, err := consulclient.ClientConfig{Addr: srv.URL}.NewClient()
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
			rl, ok := errors.AsType[*consulclient.RateLimitError](err)
			switch {
			case tc.status == 0 && ok:
				t.Errorf("renew %s: %v is a rate-limit error; want a plain one", tc.id, err)
			case tc.status != 0 && (!ok || rl.Status != tc.status || rl.RetryAfter != tc.ra):
				t.Errorf("renew %s: %#v; want a rate-limit error with status %d, Retry-After %s", tc.id, err, tc.status, tc.ra)
			}
		}
		_, _, err = a.Txn(api.TxnOps{}, (&api.QueryOptions{}).WithContext(context.Background()))
		if rl, ok := errors.AsType[*consulclient.RateLimitError](err); !ok || rl.Status != 429 {
			t.Errorf("txn: %v; want a 429 rate-limit error", err)
		}
	})
}

// TestCatalogRateLimited: the observation publish is refused twice for
// the rate limit, the leader's transactions 12 times and a renewal once:
// every server still ends up registered (refused batches go again), each
// refusal is counted by op, and the WARN is logged once for the episode,
// never an INFO per refusal.
func TestCatalogRateLimited(t *testing.T) {
	inBubble(t, func(t *testing.T) {
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
			} else if _, ok := consulclient.RateLimited(err); !ok {
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
			if strings.Contains(l, `"level":"info"`) && strings.Contains(l, "rate limit exceeded") {
				t.Errorf("rate limit logged at INFO: %s", l)
			}
		}
		if warns != 1 {
			t.Errorf("rate-limit WARN logged %d times in one episode, want once", warns)
		}
		// Quiet for consulclient.RateLimitQuiet: the next success ends the episode.
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
	})
}

// TestCatalogRenewalFirst: while a renewal of the leader's own session is
// refused for the rate limit, the leader writes nothing; the renewal
// retries within a second and, once it goes through, the writes follow.
// The session survives refusals for longer than its TTL (Consul keeps it
// until twice the TTL).
func TestCatalogRenewalFirst(t *testing.T) {
	inBubble(t, func(t *testing.T) {
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
		synctest.Wait() // the leader plans and waits
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
	})
}
