package runner_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// keepAliveDiscoverer is a fakeDiscoverer that also records what the loop
// asks it to keep alive before each round, and has a scan plan.
type keepAliveDiscoverer struct {
	*fakeDiscoverer
	mu      sync.Mutex
	pending []netip.AddrPort
	seen    [][]string // per round: the keep-alive set it ran with
}

func (d *keepAliveDiscoverer) KeepAlive(sources []netip.AddrPort) {
	d.mu.Lock()
	d.pending = slices.Clone(sources)
	d.mu.Unlock()
}

func (d *keepAliveDiscoverer) Round(ctx context.Context) (discover.Result, error) {
	d.mu.Lock()
	var s []string
	for _, a := range d.pending {
		s = append(s, a.String())
	}
	d.seen = append(d.seen, s)
	d.mu.Unlock()
	return d.fakeDiscoverer.Round(ctx)
}

func (d *keepAliveDiscoverer) ScanPlan() discover.ScanPlan {
	return discover.ScanPlan{Hosts: 5116, Rate: 2000, Seconds: 2.558, Rounds: 7}
}

func (d *keepAliveDiscoverer) rounds() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.seen)
}

// TestKeepAliveFollowsPlannerHeldSet: the keep-alive set is the planner's
// held set, on the injected clock: a server is kept alive from the round
// after it was added, through its misses (a failed round counts none), and
// no longer once the planner removed it after MissedRounds (2) misses.
func TestKeepAliveFollowsPlannerHeldSet(t *testing.T) {
	scan := discover.Stats{ScanHosts: 5116, ScanTargets: 800, ScanCovered: 800, ScanProgress: 0.25, ScanKeepAlives: 1}
	h := newHarness(t)
	d := &keepAliveDiscoverer{fakeDiscoverer: newDiscoverer(h.clock,
		roundScript{servers: []string{"10.213.7.254:8000"}, stats: scan},                                                                                 // 1: added
		roundScript{servers: []string{"10.213.7.254:8000", "10.213.31.254:8000"}, stats: scan},                                                           // 2: a second one
		roundScript{servers: []string{"10.213.31.254:8000"}, stats: scan},                                                                                // 3: first miss
		roundScript{err: errors.New("no probe"), stats: scan},                                                                                            // 4: failed, no miss
		roundScript{servers: []string{"10.213.31.254:8000"}, stats: discover.Stats{ScanHosts: 5116, ScanTargets: 800, ScanCycles: 1, ScanProgress: 0.1}}, // 5: second miss: removed
		roundScript{servers: []string{"10.213.31.254:8000"}, stats: scan},                                                                                // 6
	)}
	h.d = d.fakeDiscoverer
	ctx, cancel := context.WithCancel(context.Background())
	cfg := h.config()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = runner.Run(ctx, d, cfg)
	}()
	for i := range 6 {
		h.d.nextRound(t)
		h.idle()
		if i < 5 {
			h.clock.Advance(cfg.Interval)
		}
	}
	cancel()
	<-done

	a, b := "10.213.7.254:9999", "10.213.31.254:9999"
	want := [][]string{nil, {a}, {b, a}, {b, a}, {b, a}, {b}}
	got := d.rounds()
	for i := range want {
		slices.Sort(want[i])
		slices.Sort(got[i])
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("keep-alive sets per round = %v, want %v", got, want)
	}

	if v := metricValue(t, h, "scan_hosts_probed_total"); v != 6*800 {
		t.Errorf("hosts probed = %v, want 4800 (failed rounds' scans count too)", v)
	}
	if v := metricValue(t, h, "scan_cycles_total"); v != 1 {
		t.Errorf("cycles = %v, want 1", v)
	}
	if v := metricValue(t, h, "scan_cycle_progress_ratio"); v != 0.25 {
		t.Errorf("progress = %v, want 0.25", v)
	}
	if v := metricValue(t, h, "scan_hosts"); v != 5116 {
		t.Errorf("scan hosts = %v, want 5116", v)
	}
	plans := h.logs.lines(t, "info", "subnet scan: every host is probed once per cycle")
	if len(plans) != 1 || plans[0]["cycle_rounds"] != 7.0 || plans[0]["cycle"] != "1m10s" || plans[0]["hosts"] != 5116.0 {
		t.Errorf("scan plan logs %v, want one at start: 5116 hosts, 7 rounds of 10s", plans)
	}
}
