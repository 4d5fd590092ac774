package discover_test

// End-to-end tests of the rolling subnet scan: `bridge run` covering routed
// networks far larger than one round can probe, keep-alive probes, and an
// on-link /16 scan that must keep its deadline and spare the neighbour
// table. Everything runs in namespaces on 10.213.x.y.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// logRecord is one line of a bridge's JSON log.
type logRecord struct {
	Level    string      `json:"level"`
	Message  string      `json:"message"`
	Round    int         `json:"round"`
	IP       string      `json:"ip"`
	Duration logDuration `json:"duration"`
	// scan plan
	Hosts       int     `json:"hosts"`
	CycleRounds int     `json:"cycle_rounds"`
	OnLinkRate  float64 `json:"onlink_rate"`
	NeighLimit  int     `json:"neigh_limit"`
}

// logDuration is a duration field of a JSON log line, in milliseconds: the
// bridge writes it as a Go duration string ("400.2ms"); a plain number is
// read as milliseconds.
type logDuration float64

func (d *logDuration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = logDuration(float64(v) / float64(time.Millisecond))
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*d = logDuration(f)
	return nil
}

func logRecords(stderr string) []logRecord {
	var out []logRecord
	for line := range strings.Lines(stderr) {
		var r logRecord
		if json.Unmarshal([]byte(line), &r) == nil && r.Message != "" {
			out = append(out, r)
		}
	}
	return out
}

// TestScanRoutedRollingCoverage: a /22 and a /20 behind a router, 5,116
// hosts, with rounds that can probe about 700 of them: `bridge run` finds
// the server at the far end of each network within one scan cycle plus one
// round, keeps both registered over 20 further rounds (keep-alive probes),
// and removes them after missed_rounds once their responders stop.
func TestScanRoutedRollingCoverage(t *testing.T) {
	t.Parallel()
	lab, _, brT, router, client := harness.NewRoutedLab(t)
	s22 := lab.Host("s22", brT, "10.213.3.2/24")
	s20 := lab.Host("s20", brT, "10.213.3.3/24")
	harness.RoutedServer(t, router, s22, "10.213.3.2", "10.213.7.254", "10.213.4.0/22")
	harness.RoutedServer(t, router, s20, "10.213.3.3", "10.213.31.254", "10.213.16.0/20")
	bridgebin.Path(t)
	r22 := harness.Respond(t, s22, 1, "--ip", "10.213.7.254")
	r20 := harness.Respond(t, s20, 1, "--ip", "10.213.31.254")

	const missed = 3
	b := harness.StartRun(t, client, "rolling", "--interval", "500ms", "--timeout", "0.4", "--retries", "0",
		"--scan-cidr", "10.213.4.0/22", "--scan-cidr", "10.213.16.0/20", "--scan-rate", "2000",
		"--missed-rounds", fmt.Sprint(missed), "--sink", "stdout", "--metrics-addr", harness.MetricsAddr,
		"--log-format", "json", "--log-level", "debug",
		// Both servers stop at once below: the removal guard would hold
		// them (run_guard_test.go); this test counts misses without it.
		"--max-removal-fraction", "1")

	records := func() []logRecord { _, stderr := b.Output(); return logRecords(stderr) }
	find := func(msg, ip string) (logRecord, bool) {
		for _, r := range records() {
			if r.Message == msg && (ip == "" || r.IP == ip) {
				return r, true
			}
		}
		return logRecord{}, false
	}
	lastRound := func() int {
		n := 0
		for _, r := range records() {
			if r.Message == "round complete" {
				n = max(n, r.Round)
			}
		}
		return n
	}

	harness.Wait(t, 10*time.Second, "the scan plan", func() (bool, string) {
		_, ok := find("subnet scan: every host is probed once per cycle", "")
		return ok, "no plan logged"
	})
	plan, _ := find("subnet scan: every host is probed once per cycle", "")
	if plan.Hosts != 5116 || plan.CycleRounds < 5 || plan.CycleRounds > 10 {
		t.Fatalf("scan plan: %d hosts in %d rounds, want 5116 in ~8 (5116 / (2000/s × 0.36 s))", plan.Hosts, plan.CycleRounds)
	}

	var added22, added20 logRecord
	harness.Wait(t, time.Duration(plan.CycleRounds+4)*time.Second, "both far-end servers added", func() (bool, string) {
		var ok1, ok2 bool
		added22, ok1 = find("endpoint added", "10.213.7.254")
		added20, ok2 = find("endpoint added", "10.213.31.254")
		return ok1 && ok2, fmt.Sprintf("after round %d", lastRound())
	})
	t.Logf("planned cycle %d rounds; 10.213.7.254 (host 1,022 of 5,116) added in round %d, 10.213.31.254 (host 5,116) in round %d",
		plan.CycleRounds, added22.Round, added20.Round)
	if added20.Round > plan.CycleRounds+1 || added22.Round > plan.CycleRounds+1 {
		t.Errorf("far-end servers added in rounds %d and %d, want within one cycle (%d rounds) plus one round",
			added22.Round, added20.Round, plan.CycleRounds)
	}

	// 20 further rounds: the scan is elsewhere most of them; keep-alives
	// keep both servers answering every round.
	until := added20.Round + 20
	harness.Wait(t, 30*time.Second, "20 further rounds", func() (bool, string) {
		n := lastRound()
		return n >= until, fmt.Sprintf("round %d of %d", n, until)
	})
	if r, ok := find("endpoint removed", ""); ok {
		t.Fatalf("%s removed in round %d while answering", r.IP, r.Round)
	}
	body, err := harness.MetricsBody(client.NS)
	if err != nil {
		t.Fatal(err)
	}
	metric := func(name string) float64 {
		v, ok, err := harness.MetricIn(body, "udp_discovery_bridge_scan_"+name)
		if err != nil || !ok {
			t.Fatalf("metric %s: %v (found %v)", name, err, ok)
		}
		return v
	}
	probed, cycles, progress, keepalives, hosts := metric("hosts_probed_total"), metric("cycles_total"),
		metric("cycle_progress_ratio"), metric("keepalive_probes_total"), metric("hosts")
	t.Logf("after round %d: hosts %v, probed %v, cycles %v, progress %.3f, keep-alives %v", lastRound(), hosts, probed, cycles, progress, keepalives)
	if hosts != 5116 || probed < 3*5116 || cycles < 3 || progress < 0 || progress >= 1 || keepalives < 2*20 {
		t.Errorf("scan metrics: hosts %v probed %v cycles %v progress %v keep-alives %v; want 5116, >= 3 cycles' worth, 2 keep-alives a round",
			hosts, probed, cycles, progress, keepalives)
	}

	stopAt := lastRound()
	harness.StopResponder(t, r22)
	harness.StopResponder(t, r20)
	harness.Wait(t, 15*time.Second, "both servers removed", func() (bool, string) {
		_, ok1 := find("endpoint removed", "10.213.7.254")
		_, ok2 := find("endpoint removed", "10.213.31.254")
		return ok1 && ok2, fmt.Sprintf("round %d", lastRound())
	})
	for _, ip := range []string{"10.213.7.254", "10.213.31.254"} {
		r, _ := find("endpoint removed", ip)
		// The round running when the responders stopped may still have
		// had their replies: then missed rounds follow it.
		if r.Round <= stopAt || r.Round > stopAt+missed+1 {
			t.Errorf("%s removed in round %d; responders stopped after round %d, missed_rounds %d", ip, r.Round, stopAt, missed)
		}
	}
	if code := b.Sigterm(t, 5*time.Second); code != 0 {
		t.Errorf("bridge exit %d", code)
	}
}

// neighCount counts the neighbour entries of h (all states).
func neighCount(t *testing.T, h *netns.Host) (total, incomplete, failed int) {
	r := h.Run(context.Background(), "ip", "-s", "neigh", "show")
	if r.Err != nil {
		t.Errorf("ip -s neigh: %v %s", r.Err, r.Stderr)
		return
	}
	for line := range strings.Lines(r.Stdout) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		total++
		switch f[len(f)-1] {
		case "INCOMPLETE":
			incomplete++
		case "FAILED":
			failed++
		}
	}
	return
}

// TestScanOnLinkSixteen: a /16 directly connected to the client's veth, on
// a segment where nobody answers, so every probe needs an ARP resolution
// that fails. The round keeps its deadline, the namespace's neighbour
// table stays under the limit the bridge computed, and the coverage is
// reported.
func TestScanOnLinkSixteen(t *testing.T) {
	t.Parallel()
	lab := netns.New(t)
	br := lab.Bridge("x")
	client := lab.Host("client", br, "10.213.0.10/16")
	bridgebin.Path(t)
	dev := client.Dev(br)

	t.Run("one-shot discover keeps its deadline and reports coverage", func(t *testing.T) {
		r := harness.Bridge(t, client, nil, "discover", "--json", "--whitelist", dev, "--timeout", "2",
			"--scan-cidr", "10.213.0.0/16", "--scan-rate", "20000")
		if r.ExitCode != 1 {
			t.Fatalf("exit %d, want 1 (nothing found)\n%s", r.ExitCode, r.Stderr)
		}
		s := harness.ScanReportOf(t, r.Stderr)
		t.Logf("on-link /16, --timeout 2 --scan-rate 20000: %+v", s)
		if s.Seconds > 2.05 {
			t.Errorf("round took %.3f s, want within 50 ms of its 2 s timeout", s.Seconds)
		}
		if s.Hosts != 65534 || s.Scanned < 5 || s.Complete || s.OnLinkRate <= 0 || s.OnLinkRate > 100 ||
			!strings.Contains(s.Message, "of 65,534 hosts") {
			t.Errorf("report %+v", s)
		}
	})

	t.Run("bridge run keeps the neighbour table under its limit", func(t *testing.T) {
		b := harness.StartRun(t, client, "onlink", "--interval", "1s", "--timeout", "0.9", "--retries", "0", "--whitelist", dev,
			"--scan-cidr", "10.213.0.0/16", "--scan-rate", "20000", "--sink", "stdout",
			"--metrics-addr", harness.MetricsAddr, "--log-format", "json", "--log-level", "debug")
		var mu sync.Mutex
		maxTotal, maxInc, maxFailed := 0, 0, 0
		stop := make(chan struct{})
		done := make(chan struct{})
		var stopOnce sync.Once
		halt := func() { stopOnce.Do(func() { close(stop) }); <-done }
		defer halt() // also when a wait below fails the test
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				n, inc, failed := neighCount(t, client)
				mu.Lock()
				maxTotal, maxInc, maxFailed = max(maxTotal, n), max(maxInc, inc), max(maxFailed, failed)
				mu.Unlock()
			}
		}()
		rounds := func() []logRecord {
			_, stderr := b.Output()
			var out []logRecord
			for _, r := range logRecords(stderr) {
				if r.Message == "round complete" {
					out = append(out, r)
				}
			}
			return out
		}
		harness.Wait(t, 60*time.Second, "20 rounds", func() (bool, string) {
			n := len(rounds())
			return n >= 20, fmt.Sprintf("%d rounds", n)
		})
		halt()
		_, stderr := b.Output()
		var plan logRecord
		for _, r := range logRecords(stderr) {
			if r.Message == "subnet scan: every host is probed once per cycle" {
				plan = r
			}
		}
		probed, _, _ := harness.Metric(client.NS, "udp_discovery_bridge_scan_hosts_probed_total")
		progress, _, _ := harness.Metric(client.NS, "udp_discovery_bridge_scan_cycle_progress_ratio")
		var longest float64
		for _, r := range rounds() {
			longest = max(longest, float64(r.Duration))
		}
		mu.Lock()
		t.Logf("20 rounds of 1 s: neighbour entries max %d (INCOMPLETE %d, FAILED %d); bridge limit %d at %.2f probes/s; "+
			"probed %v, cycle progress %.5f, planned cycle %d rounds; longest round %.1f ms",
			maxTotal, maxInc, maxFailed, plan.NeighLimit, plan.OnLinkRate, probed, progress, plan.CycleRounds, longest)
		if plan.NeighLimit <= 0 || maxTotal >= plan.NeighLimit {
			t.Errorf("neighbour table reached %d entries, limit %d", maxTotal, plan.NeighLimit)
		}
		mu.Unlock()
		if probed <= 0 || progress <= 0 || plan.Hosts != 65534 {
			t.Errorf("coverage: probed %v, progress %v, plan %+v", probed, progress, plan)
		}
		// The socket deadline ends a round at 0.9 s; on a loaded 2-core
		// machine the wake-up after it can be some tens of milliseconds
		// late (956.8 ms was seen once). What a user sees is that a round
		// never outlasts its 1 s interval and delays the next.
		if longest >= 1000 {
			t.Errorf("longest round %.1f ms, want under the 1 s interval (its timeout is 0.9 s)", longest)
		}
		if code := b.Sigterm(t, 5*time.Second); code != 0 {
			t.Errorf("bridge exit %d", code)
		}
	})
}
