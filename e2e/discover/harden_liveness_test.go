package discover_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestHardenLivenessUnderLANFlood: a bridge listens for /metrics on
// :9108 (every address, as by default) and a LAN neighbour keeps 150 idle
// TCP connections open to it, opening a new one as soon as the bridge
// closes one. Throughout, `bridge healthcheck` (loopback) passes 20 times
// in a row, a GET of /healthz from the bridge's own LAN address (remote ==
// local, as a kubelet probing a hostNetwork pod) passes 20 times, and a
// second LAN neighbour within its cap reads /metrics; the flooder is held to
// its per-client cap, the refusals are counted, and logged once.
func TestHardenLivenessUnderLANFlood(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 2, false)
	flooder, other := l.Servers[0], l.Servers[1] // 10.213.1.11, 10.213.1.12
	p := startBridge(t, l.Client, "run", "--sink", "stdout", "--metrics-addr", ":9108", "--whitelist", l.Client.Dev(l.Br), "--interval", "1s", "--timeout", "0.5")
	lan := "http://" + harness.ClientIP + ":9108"
	harness.Wait(t, 10*time.Second, "/healthz", func() (bool, string) {
		code, body, err := harness.NSGet(l.Client.NS, lan+"/healthz")
		return err == nil && code == 200, body
	})
	base := fdCount(t, p.PID)

	const conns = 150
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var dials, closedByBridge atomic.Int64
	var mu sync.Mutex
	var dialErrs []error
	open := make(chan struct{}, conns) // one token per connection the first time it is up
	for range conns {
		wg.Go(func() {
			first := true
			for ctx.Err() == nil {
				c, err := netns.Dial(ctx, flooder.NS, "tcp", harness.ClientIP+":9108")
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						dialErrs = append(dialErrs, err)
						mu.Unlock()
					}
					return
				}
				dials.Add(1)
				if first {
					open <- struct{}{}
					first = false
				}
				stop := context.AfterFunc(ctx, func() { _ = c.Close() })
				_, _ = io.Copy(io.Discard, c) // idle: never sends; returns when either side closes
				stop()
				_ = c.Close()
				if ctx.Err() == nil {
					closedByBridge.Add(1)
				}
				select { // a new connection in its place, without spinning
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
	stopFlood := func() {
		cancel()
		wg.Wait()
	}
	defer stopFlood()
	for range conns {
		<-open
	}
	t.Logf("%d connections from %s up", conns, flooder.IP())

	peak := fdCount(t, p.PID)
	var hcWorst, kubeletWorst time.Duration
	const probes = 20
	for i := range probes {
		r := harness.RunCmd(t, l.Client, "healthcheck")
		if r.ExitCode != 0 {
			t.Errorf("bridge healthcheck %d of %d: exit %d after %s: %s", i+1, probes, r.ExitCode, r.Elapsed.Round(time.Millisecond), strings.TrimSpace(r.Stderr))
		}
		hcWorst = max(hcWorst, r.Elapsed)
		start := time.Now()
		code, body, err := harness.NSGet(l.Client.NS, lan+"/healthz")
		if err != nil || code != 200 {
			t.Errorf("GET /healthz from %s (the bridge's own address) %d of %d: %d %q %v", harness.ClientIP, i+1, probes, code, body, err)
		}
		kubeletWorst = max(kubeletWorst, time.Since(start))
		peak = max(peak, fdCount(t, p.PID))
		// Spread over 6 s: longer than the 5 s read-header timeout, so the
		// flooder's admitted connections are closed and replaced meanwhile.
		time.Sleep(300 * time.Millisecond)
	}
	code, body, err := harness.NSGet(other.NS, lan+"/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "udp_discovery_bridge_http_connections_refused_total") {
		t.Errorf("GET /metrics from %s (within its cap) during the flood: %d %v", other.IP(), code, err)
	}
	perClient, _, err := harness.MetricIn(body, `udp_discovery_bridge_http_connections_refused_total{listener="metrics_addr",reason="per_client"}`)
	if err != nil {
		t.Fatal(err)
	}
	heldOthers, _, _ := harness.MetricIn(body, `udp_discovery_bridge_http_connections_open{listener="metrics_addr",peer="other"}`)
	stopFlood()
	mu.Lock()
	if len(dialErrs) > 0 {
		t.Errorf("%d of the flooder's dials failed, first: %v", len(dialErrs), dialErrs[0])
	}
	mu.Unlock()
	t.Logf("flood of %d idle connections from one LAN host: %d dials, %d closed by the bridge; bridge: %v refused per_client, %v connections of other peers held (the reading client's included); descriptors %d at baseline, peak %d",
		conns, dials.Load(), closedByBridge.Load(), perClient, heldOthers, base, peak)
	t.Logf("%d x bridge healthcheck passed, slowest %s; %d x GET /healthz from the bridge's own address, slowest %s",
		probes, hcWorst.Round(time.Millisecond), probes, kubeletWorst.Round(time.Millisecond))
	// The flooder holds at most its per-client cap (8); the reading
	// client is the 9th.
	if heldOthers > 9 {
		t.Errorf("%v connections of other peers held during the flood; want at most 8 of the flooder's and the reader's", heldOthers)
	}
	if perClient < conns-8 {
		t.Errorf("%v connections refused per_client, want at least %d of the flooder's %d", perClient, conns-8, conns)
	}
	_, stderr := p.Output()
	if n := strings.Count(stderr, "refusing HTTP connections over capacity"); n != 1 {
		t.Errorf("%d warnings about refused connections, want 1 for one episode:\n%s", n, harness.Tail(stderr, 20))
	}
}
