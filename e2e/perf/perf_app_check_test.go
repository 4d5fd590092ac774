package perf_test

// The app check benchmark of issue 29: 10,000 servers checked every 10 s,
// the bridge's CPU per interval, peak RSS and open file descriptors,
// against the same run without checks. A measurement (BRIDGE_PERF=1, as
// perf_test.go): it fails only on functional errors.

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/appserver"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// perfFDs counts the open file descriptors of a process.
func perfFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// perfAppRun is what one run of TestPerfAppCheck measured.
type perfAppRun struct {
	kind          string
	cpu           []float64 // CPU seconds per interval
	sys           []float64 // of which in the kernel
	hwmKiB        int64     // VmHWM at the end (the whole life's peak)
	peakKiB       int64     // largest VmRSS sampled over the measured intervals
	fds           int       // most open fds sampled over the measured intervals
	checks        float64   // app checks the app saw per interval
	rounds        float64   // discovery rounds completed over the measured intervals
	roundMean     float64   // mean round duration over them, seconds
	maxGap        time.Duration
	heapInuseMiB  float64
	readyTook     time.Duration
	totalReadyEnd int
}

// TestPerfAppCheck runs `bridge run --sink stdout --prometheus-sd` against
// one responder answering as 10,000 servers (10.214.0.1 and up), whose
// apps are one server (appserver) listening on every address of
// 10.214.0.0/16 in the responder's namespace (a local route: the kernel
// accepts a connection to any of them), three times: without app checks,
// with tcp checks and with http checks (GET /healthz), every 10 s with
// the default timeout, rise, fall, concurrency and jitter. Once every
// server is ready (http_sd lists 10,000 targets) it samples the bridge
// over six intervals: CPU per interval, VmRSS and open fds every 100 ms,
// VmHWM at the end, the rounds completed and the longest gap between two
// round ends (a check cycle must never delay a round).
func TestPerfAppCheck(t *testing.T) {
	perfRequire(t)
	const (
		servers  = 10_000
		interval = 10 * time.Second
		measured = 6
	)
	var runs []perfAppRun
	for _, kind := range []string{"none", "tcp", "http"} {
		t.Run(kind, func(t *testing.T) {
			l := perfNewLAN(t, 1, false)
			srv := l.servers[0]
			// Every address of the /16 is srv's own.
			if r := srv.Run(t.Context(), "ip", "route", "add", "local", "10.214.0.0/16", "dev", "lo"); r.Err != nil {
				t.Fatalf("local route on %s: %v %s", srv.Name, r.Err, r.Stderr)
			}
			if r := l.client.Run(t.Context(), "ip", "route", "add", "10.214.0.0/16", "via", "10.213.1.11"); r.Err != nil {
				t.Fatalf("route to the apps: %v %s", r.Err, r.Stderr)
			}
			app := appserver.Start(t, appserver.Options{NS: srv.NS, Addr: "0.0.0.0:8000"})
			harness.Respond(t, srv, 1, "--ip", "10.214.0.1", "--replies", strconv.Itoa(servers), "--global-rate-limit", "0")
			args := []string{"--sink", "stdout", "--interval", interval.String(), "--timeout", "1",
				"--metrics-addr", perfMetricsAddr, "--prometheus-sd"}
			if kind != "none" {
				args = append(args, "--app-check", kind, "--app-check-path", "/healthz", "--app-check-interval", interval.String())
			}
			start := time.Now()
			p := perfRun(t, l.client, args...)
			ns := l.client.NS
			perfWaitMetric(t, ns, 90*time.Second, 500*time.Millisecond, fmt.Sprintf("%d endpoints", servers),
				func(m perfMetrics) bool { return m[perfEndpoints] >= servers })
			// Every server ready: rise (2) checks, an interval apart.
			ready := 0
			harness.Wait(t, 4*interval+time.Minute, fmt.Sprintf("%d http_sd targets", servers), func() (bool, string) {
				time.Sleep(2 * time.Second) // a 10,000-target list is not free to serve
				sd, err := harness.SDTargets(ns, perfMetricsAddr)
				ready = len(sd)
				return err == nil && ready == servers, fmt.Sprint(ready, " ", err)
			})
			run := perfAppRun{kind: kind, readyTook: time.Since(start)}
			// Start the window at a round's end.
			perfNextRound(t, ns, perfMustScrape(t, ns)[perfRoundsOK], 2*interval, 100*time.Millisecond)

			// The window: samples every 100 ms, round ends every 500 ms.
			first := perfMustScrape(t, ns)
			count := func() int {
				if kind == "tcp" {
					return app.Conns()
				}
				return app.Requests()
			}
			c0 := count()
			var (
				mu      sync.Mutex
				stopped bool
				gaps    []time.Duration
			)
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					if s, err := perfSample(p.PID); err == nil {
						mu.Lock()
						run.peakKiB = max(run.peakKiB, s.RSSKiB)
						mu.Unlock()
					}
					if n, err := perfFDs(p.PID); err == nil {
						mu.Lock()
						run.fds = max(run.fds, n)
						mu.Unlock()
					}
					select {
					case <-done:
						return
					case <-tick.C:
					}
				}
			})
			wg.Go(func() {
				last, lastAt := first[perfRoundsOK], time.Now()
				for {
					select {
					case <-done:
						return
					case <-time.After(500 * time.Millisecond):
					}
					m, err := perfScrape(ns)
					if err != nil || m[perfRoundsOK] == last {
						continue
					}
					mu.Lock()
					if !stopped && m[perfRoundsOK] == last+1 && last > first[perfRoundsOK] {
						gaps = append(gaps, time.Since(lastAt))
					}
					mu.Unlock()
					last, lastAt = m[perfRoundsOK], time.Now()
				}
			})
			prev := perfMustSample(t, p.PID)
			began := prev.At
			for i := range measured {
				time.Sleep(time.Until(began.Add(time.Duration(i+1) * interval)))
				s := perfMustSample(t, p.PID)
				run.cpu = append(run.cpu, (s.CPU() - prev.CPU()).Seconds())
				run.sys = append(run.sys, float64(s.SysTicks-prev.SysTicks)/perfClkTck)
				prev = s
				if p.Exited() {
					t.Fatalf("bridge exited (%d) during the measurement", p.ExitCode())
				}
			}
			mu.Lock()
			stopped = true
			mu.Unlock()
			close(done)
			wg.Wait()
			last := perfMustScrape(t, ns)
			run.checks = float64(count()-c0) / measured
			run.rounds = last[perfRoundsOK] - first[perfRoundsOK]
			if n := last[`udp_discovery_bridge_round_duration_seconds_count`] - first[`udp_discovery_bridge_round_duration_seconds_count`]; n > 0 {
				run.roundMean = (last[`udp_discovery_bridge_round_duration_seconds_sum`] - first[`udp_discovery_bridge_round_duration_seconds_sum`]) / n
			}
			for _, g := range gaps {
				run.maxGap = max(run.maxGap, g)
			}
			run.heapInuseMiB = last[perfHeapInuse] / (1 << 20)
			run.hwmKiB = perfMustSample(t, p.PID).HWMKiB
			sd, err := harness.SDTargets(ns, perfMetricsAddr)
			if err != nil {
				t.Fatal(err)
			}
			run.totalReadyEnd = len(sd)
			if run.totalReadyEnd != servers || last[perfEndpoints] < servers {
				t.Errorf("at the end: %d ready targets, %v endpoints; want %d", run.totalReadyEnd, last[perfEndpoints], servers)
			}
			if kind != "none" && run.checks < 0.8*servers {
				t.Errorf("%.0f app checks per interval, want about %d", run.checks, servers)
			}
			cpu := slices.Clone(run.cpu)
			slices.Sort(cpu)
			perfResult(t, "app_check %s, %d servers, every %s: CPU per interval median %.3f s (min %.3f, max %.3f; kernel median %.3f s); VmHWM %s, "+
				"VmRSS peak over the window %s; open fds peak %d; Go heap in use %.1f MiB; %.0f checks per interval at the app; "+
				"%.0f rounds in %d intervals, mean round %.3f s, longest gap between round ends %s (interval %s, 0.5 s polling); "+
				"all ready %s after start",
				kind, servers, interval, perfMedian(run.cpu), cpu[0], cpu[len(cpu)-1], perfMedian(run.sys), perfMiB(run.hwmKiB), perfMiB(run.peakKiB), run.fds,
				run.heapInuseMiB, run.checks, run.rounds, measured, run.roundMean, run.maxGap.Round(10*time.Millisecond), interval,
				run.readyTook.Round(time.Second))
			runs = append(runs, run)
		})
	}
	if len(runs) != 3 || runs[0].kind != "none" {
		return
	}
	base := runs[0]
	for _, r := range runs[1:] {
		goalCPU := map[string]float64{"tcp": 0.5, "http": 1.5}[r.kind]
		dcpu := perfMedian(r.cpu) - perfMedian(base.cpu)
		drss := float64(r.hwmKiB-base.hwmKiB) / 1024
		perfResult(t, "app_check %s vs none, 10,000 servers every 10 s: +%.3f s CPU per interval (goal < %.1f s: %v; kernel %+.3f s), "+
			"VmHWM %+.1f MiB (goal < 10 MiB: %v), VmRSS peak %+.1f MiB, open fds peak %d vs %d, longest gap between rounds %s vs %s",
			r.kind, dcpu, goalCPU, dcpu < goalCPU, perfMedian(r.sys)-perfMedian(base.sys), drss, drss < 10, float64(r.peakKiB-base.peakKiB)/1024, r.fds, base.fds,
			r.maxGap.Round(10*time.Millisecond), base.maxGap.Round(10*time.Millisecond))
	}
}
