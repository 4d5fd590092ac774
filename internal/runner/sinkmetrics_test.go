package runner_test

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/runner"
)

// metricLine returns the sample line of /metrics that starts with series
// ("" when there is none).
func metricLine(t *testing.T, h *harness, series string) string {
	t.Helper()
	code, body := get(t, h.health.Handler(), "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, series+" ") {
			return l
		}
	}
	return ""
}

// TestSinkFailureMetrics: /metrics shows each sink's consecutive failures
// (back to 0 on success) and when its last attempt and last success ended.
func TestSinkFailureMetrics(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}})
	flaky := newSink("consul")
	flaky.fail = func(n int) error {
		if n <= 2 {
			return errRefused
		}
		return nil
	}
	h.start(h.config(flaky))
	const (
		failing  = `udp_discovery_bridge_sink_consecutive_failures{sink="consul"}`
		attempt  = `udp_discovery_bridge_sink_last_attempt_timestamp_seconds{sink="consul"}`
		success  = `udp_discovery_bridge_sink_last_success_timestamp_seconds{sink="consul"}`
		attempts = `udp_discovery_bridge_sink_applies_total{outcome="error",sink="consul"}`
	)
	ts := func(at time.Time) string { return fmt.Sprint(float64(at.UnixNano()) / 1e9) }

	h.d.nextRound(t)
	flaky.nextApply(t)
	h.waitTimers(2)
	for series, want := range map[string]string{failing: "1", attempt: ts(t0), success: "", attempts: "1", "udp_discovery_bridge_interval_seconds": "10"} {
		if got := metricLine(t, h, series); want == "" && got != "" || want != "" && got != series+" "+want {
			t.Errorf("after one failure: %q, want %s %s", got, series, want)
		}
	}
	h.clock.Advance(time.Second)
	flaky.nextApply(t)
	h.waitTimers(2)
	second := h.clock.Now()
	if got := metricLine(t, h, failing); got != failing+" 2" {
		t.Errorf("after two failures: %q", got)
	}
	if got := metricLine(t, h, attempt); got != attempt+" "+ts(second) {
		t.Errorf("last attempt after two failures: %q, want %s", got, ts(second))
	}
	h.clock.Advance(2 * time.Second)
	flaky.nextApply(t)
	waitFor(t, "readiness", func() bool { ok, _ := h.health.Ready(); return ok })
	ok := h.clock.Now()
	for series, want := range map[string]string{failing: "0", attempt: ts(ok), success: ts(ok)} {
		if got := metricLine(t, h, series); got != series+" "+want {
			t.Errorf("after the success: %q, want %s %s", got, series, want)
		}
	}
	h.stop()
	if problems, err := testutil.GatherAndLint(h.reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

func TestBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"with a revision", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "57e6ae8"}}}, "57e6ae8"},
		{"no VCS information", &debug.BuildInfo{}, "unknown"},
		{"no build information", nil, "unknown"},
	} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(runner.NewBuildInfo("v1.2.3", tc.bi))
		want := fmt.Sprintf(`
# HELP udp_discovery_bridge_build_info The bridge's build: version, Go version and VCS revision, as labels of a constant 1.
# TYPE udp_discovery_bridge_build_info gauge
udp_discovery_bridge_build_info{goversion=%q,revision=%q,version="v1.2.3"} 1
`, runtime.Version(), tc.want)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
