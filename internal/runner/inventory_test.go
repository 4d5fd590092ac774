package runner_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// TestInventoryFollowsRounds: the http_sd list answers 503 until a round
// completes, the round's servers after it, 503 again while rounds fail
// (so Prometheus keeps its targets) and the list once they complete.
func TestInventoryFollowsRounds(t *testing.T) {
	h := newHarness(t,
		roundScript{err: discover.ErrNoInterfaces},
		roundScript{servers: []string{"10.0.0.1:8000", "10.0.0.2:8000"}},
		roundScript{err: discover.ErrNoProbeSent},
		roundScript{servers: []string{"10.0.0.2:8000"}},
	)
	tg := promsd.NewTargets(promsd.Identity{BridgeID: "n1"}, promsd.Ready)
	srv := tg.Handler(nil, zerolog.Nop())
	cfg := h.config(newSink("stdout"))
	cfg.Inventory = tg
	h.start(cfg)
	both := `[{"targets":["10.0.0.1:8000","10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_interface":"eth0"}}]`
	for i, want := range []struct {
		code int
		body string
	}{
		{http.StatusServiceUnavailable, discover.ErrNoInterfaces.Error()},
		{http.StatusOK, both},
		{http.StatusServiceUnavailable, discover.ErrNoProbeSent.Error()},
		{http.StatusOK, both}, // 10.0.0.1 missed one round of missed_rounds 2: still held
	} {
		if i > 0 {
			h.clock.Advance(10 * time.Second)
		}
		h.d.nextRound(t)
		h.idle()
		code, body := get(t, srv, promsd.Path)
		if code != want.code || !strings.Contains(body, want.body) {
			t.Fatalf("round %d: %d %q, want %d with %q", i+1, code, body, want.code, want.body)
		}
	}
	h.stop()
}
