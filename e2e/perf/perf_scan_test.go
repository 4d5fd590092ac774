package perf_test

// Performance scenario of the subnet scan (BRIDGE_PERF=1): pacing accuracy
// and CPU cost on a routed segment.

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestPerfScanPacing scans a routed /17 (32,766 hosts, none of which
// exists: the router sends the /17 to a host that drops what is not its own,
// so nothing ARPs) with `bridge discover --timeout 1` at --scan-rate 1,000,
// 10,000 and 50,000, and reports the rate reached (probes / time from the
// first scan probe to the last) and the process's CPU time per 10,000
// probes. All namespaces share this machine's CPUs: a send over a veth runs
// the receiving side (the router's forwarding, the drop) in the sender's
// softirq, charged to the bridge as system time, so the CPU figures and the
// ceiling of the rate include the simulated network's cost.
func TestPerfScanPacing(t *testing.T) {
	perfRequire(t)
	lab := netns.New(t)
	brA, brT := lab.Bridge("a"), lab.Bridge("t")
	router := lab.Router("r", map[*netns.Bridge]string{brA: "10.213.1.1/24", brT: "10.213.3.1/24"})
	client := lab.Host("client", brA, "10.213.1.10/24")
	client.SetDefaultRoute("10.213.1.1")
	sink := lab.Host("sink", brT, "10.213.3.2/24")
	harness.RoutedServer(t, router, sink, "10.213.3.2", "10.213.255.254", "10.213.128.0/17")
	bin := bridgebin.Path(t)

	for _, rate := range []int{1000, 10000, 50000} {
		for rep := range 3 {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			cmd := client.WithEnv(harness.HermeticEnv()).Command(ctx, bin, "discover", "--json", "--timeout", "1", "--retries", "0",
				"--scan-cidr", "10.213.128.0/17", "--scan-rate", fmt.Sprint(rate))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			cancel()
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Fatalf("rate %d: %v\n%s", rate, err, stderr.String())
			}
			s := harness.ScanReportOf(t, stderr.String())
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			perCPU := time.Duration(float64(cpu) / float64(max(s.Scanned, 1)) * 10000)
			perfResult(t, "--scan-rate %d (run %d): %d probes, rate reached %.0f/s (%.1f%% of the target), round %.3f s, CPU %s (user %s, sys %s; %s per 10,000 probes, process start included)",
				rate, rep+1, s.Scanned, s.RateReached, 100*s.RateReached/float64(rate), s.Seconds, cpu.Round(time.Millisecond),
				time.Duration(ru.Utime.Nano()).Round(time.Millisecond), time.Duration(ru.Stime.Nano()).Round(time.Millisecond), perCPU.Round(time.Millisecond))
		}
	}
}
