package perf_test

// Helpers of the performance scenarios (perf_test.go). They are measurements,
// run only with BRIDGE_PERF=1 (scripts/bench.sh sets it): a LAN of namespace
// hosts on 10.213.1.0/24, `bridge respond` load generators, the real bridge
// binary, /proc sampling of its resident memory and CPU time, and a reader of
// its /metrics from inside its namespace. Nothing runs in the root namespace.
// Every identifier carries the "perf" prefix, from when these tests shared
// one package with all the other e2e tests.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

const (
	// perfEnvVar enables the scenarios.
	perfEnvVar = "BRIDGE_PERF"
	// perfOutVar names a file the result lines are appended to.
	perfOutVar = "BRIDGE_PERF_OUT"
	// perfClientIP is the client's (bridge's and Consul agent's) address.
	perfClientIP = "10.213.1.10"
	// perfMetricsAddr is where the bridge serves /metrics in its namespace.
	perfMetricsAddr = "127.0.0.1:9108"
	// perfService is the Consul service the bridge registers servers under.
	perfService = "django"
	// perfClkTck is USER_HZ, the unit of utime/stime in /proc/PID/stat
	// (100 on every Linux architecture Go supports).
	perfClkTck = 100
)

// perfRequire skips unless BRIDGE_PERF=1.
func perfRequire(t *testing.T) {
	t.Helper()
	if os.Getenv(perfEnvVar) != "1" {
		t.Skipf("performance scenario: set %s=1 (scripts/bench.sh does)", perfEnvVar)
	}
}

// perfResult logs one result line, prefixed "PERF <test>:", and appends it
// to $BRIDGE_PERF_OUT when set.
func perfResult(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("PERF %s: %s", t.Name(), fmt.Sprintf(format, args...))
	t.Log(line)
	if p := os.Getenv(perfOutVar); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Errorf("%s: %v", perfOutVar, err)
			return
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
}

// perfLAN is one segment: a client at 10.213.1.10 and server hosts from
// 10.213.1.11 up, optionally a Consul dev agent in the client namespace.
type perfLAN struct {
	lab     *netns.Lab
	client  *netns.Host
	servers []*netns.Host
	agent   *consulagent.Agent
	consul  *api.Client
}

func perfNewLAN(t *testing.T, servers int, withConsul bool) *perfLAN {
	t.Helper()
	l := &perfLAN{lab: netns.New(t)}
	br := l.lab.Bridge("lan")
	l.client = l.lab.Host("client", br, perfClientIP+"/24")
	for i := range servers {
		l.servers = append(l.servers, l.lab.Host(fmt.Sprintf("s%d", i+1), br, fmt.Sprintf("10.213.1.%d/24", 11+i)))
	}
	bridgebin.Path(t)
	if withConsul {
		l.agent = consulagent.Start(t, consulagent.Options{Netns: l.client.NS, BindAddr: perfClientIP})
		l.consul = l.agent.Client()
	}
	return l
}

// perfRun starts `bridge run args...` on h with stdout discarded by the
// shell (a stdout sink with 10,000 servers would otherwise fill a buffer in
// this process). `sh -c exec` keeps the PID: Proc.PID is the bridge's.
// Every scenario here is a load test whose responders answer as thousands
// of servers from one source each, advertising addresses off the LAN: the
// bridge runs with harness.LoadTestFlags first (args may override them).
func perfRun(t *testing.T, h *netns.Host, args ...string) *netns.Proc {
	t.Helper()
	args = append(slices.Clone(harness.LoadTestFlags), args...)
	argv := append([]string{"sh", "-c", `exec "$0" run "$@" >/dev/null`, bridgebin.Path(t)}, args...)
	p, err := h.WithEnv(append(harness.HermeticEnv(), "BRIDGE_LOG_LEVEL=warn")).Start(t.Context(), argv...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.StopWithin(15 * time.Second)
		}
		if t.Failed() {
			_, stderr := p.Output()
			t.Logf("bridge run %s: exit %d\nstderr (tail):\n%s", strings.Join(args, " "), p.ExitCode(), perfTail(stderr, 60))
		}
	})
	return p
}

func perfTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// perfMetrics is one scrape of the bridge's /metrics: series (name with its
// label set, as printed) to value.
type perfMetrics map[string]float64

// perfScrape GETs /metrics from inside ns.
func perfScrape(ns string) (perfMetrics, error) {
	c := netns.HTTPClient(ns, 5*time.Second)
	resp, err := c.Get("http://" + perfMetricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := perfMetrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return m, nil
}

// perfMustScrape is perfScrape failing the test on error.
func perfMustScrape(t *testing.T, ns string) perfMetrics {
	t.Helper()
	m, err := perfScrape(ns)
	if err != nil {
		t.Fatalf("scrape bridge metrics in %s: %v", ns, err)
	}
	return m
}

// Metric series read by the scenarios.
const (
	perfRoundsOK     = `udp_discovery_bridge_rounds_total{outcome="ok"}`
	perfRoundsFailed = `udp_discovery_bridge_rounds_total{outcome="failed"}`
	perfEndpoints    = `udp_discovery_bridge_endpoints`
	perfAdds         = `udp_discovery_bridge_endpoint_changes_total{op="add"}`
	perfRemoves      = `udp_discovery_bridge_endpoint_changes_total{op="remove"}`
	perfHeapInuse    = `go_memstats_heap_inuse_bytes`
	perfRepliesValid = `udp_discovery_bridge_replies_total{outcome="valid"}`
)

func perfSinkWrites(sink string) string {
	return `udp_discovery_bridge_sink_writes_total{sink="` + sink + `"}`
}

func perfSinkApplies(sink, outcome string) string {
	return `udp_discovery_bridge_sink_applies_total{outcome="` + outcome + `",sink="` + sink + `"}`
}

// perfWaitMetric polls the bridge's metrics every interval until cond holds
// for a scrape, and returns that scrape; it fails the test after timeout.
func perfWaitMetric(t *testing.T, ns string, timeout, interval time.Duration, what string, cond func(perfMetrics) bool) perfMetrics {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last perfMetrics
	var lastErr error
	for {
		m, err := perfScrape(ns)
		if err == nil {
			last = m
			if cond(m) {
				return m
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last scrape error %v; endpoints %v, rounds ok %v)",
				timeout, what, lastErr, last[perfEndpoints], last[perfRoundsOK])
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-time.After(interval):
		}
	}
}

// perfNextRound waits until rounds_total{ok} exceeds after and returns the
// scrape that showed it (the round just ended, give or take interval).
func perfNextRound(t *testing.T, ns string, after float64, timeout, interval time.Duration) perfMetrics {
	t.Helper()
	return perfWaitMetric(t, ns, timeout, interval, fmt.Sprintf("round %v", after+1), func(m perfMetrics) bool {
		return m[perfRoundsOK] > after
	})
}

// perfProc is one /proc sample of a process.
type perfProc struct {
	At       time.Time
	RSSKiB   int64 // VmRSS
	HWMKiB   int64 // VmHWM (peak RSS)
	AnonKiB  int64 // RssAnon: the heap, stacks and the runtime's own memory
	FileKiB  int64 // RssFile: mapped pages of the binary
	CPUTicks int64 // utime + stime, in 1/perfClkTck s
	SysTicks int64 // stime alone: the kernel's share of CPUTicks
}

func (p perfProc) CPU() time.Duration {
	return time.Duration(p.CPUTicks) * time.Second / perfClkTck
}

// perfSample reads /proc/PID/status and /proc/PID/stat.
func perfSample(pid int) (perfProc, error) {
	s := perfProc{At: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			s.HWMKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "RssAnon:":
			s.AnonKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "RssFile:":
			s.FileKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	s.CPUTicks, s.SysTicks = ut+st, st
	return s, nil
}

func perfMustSample(t *testing.T, pid int) perfProc {
	t.Helper()
	s, err := perfSample(pid)
	if err != nil {
		t.Fatalf("sample process %d: %v", pid, err)
	}
	return s
}

// perfMiB formats KiB as MiB.
func perfMiB(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// perfCatalog returns the number of catalog instances of service and the
// query's X-Consul-Index.
func perfCatalog(c *api.Client, service string) (int, uint64, error) {
	svcs, meta, err := c.Catalog().Service(service, "", nil)
	if err != nil {
		return 0, 0, err
	}
	return len(svcs), meta.LastIndex, nil
}

// perfHealthIndex returns the X-Consul-Index of the health endpoint of
// service (it moves with check changes too) and the number of passing
// instances.
func perfHealthIndex(c *api.Client, service string) (int, uint64, error) {
	e, meta, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		return 0, 0, err
	}
	return len(e), meta.LastIndex, nil
}

// perfRaftIndex returns the agent's (dev server's) raft last_log_index:
// every catalog, KV or session write of the whole cluster moves it.
func perfRaftIndex(c *api.Client) (uint64, error) {
	self, err := c.Agent().Self()
	if err != nil {
		return 0, err
	}
	stats, _ := self["Stats"]["raft"].(map[string]any)
	s, _ := stats["last_log_index"].(string)
	if s == "" {
		return 0, fmt.Errorf("agent self: no Stats.raft.last_log_index")
	}
	return strconv.ParseUint(s, 10, 64)
}

// perfWaitCatalog polls the catalog every 100 ms until it holds want
// instances of service and returns how long that took; it fails the test
// after timeout.
func perfWaitCatalog(t *testing.T, c *api.Client, service string, want int, timeout time.Duration, bridge *netns.Proc) time.Duration {
	t.Helper()
	start := time.Now()
	last, lastErr := -1, error(nil)
	lastLog := start
	for {
		if bridge.Exited() {
			_, stderr := bridge.Output()
			t.Fatalf("bridge exited (%d) while waiting for %d catalog instances (have %d)\nstderr (tail):\n%s",
				bridge.ExitCode(), want, last, perfTail(stderr, 40))
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			n, _ := c.Agent().ServicesWithFilter(fmt.Sprintf("Service == %q", service))
			t.Logf("after %s: catalog %d, agent %d instances of %s (want %d)", time.Since(start).Round(time.Second), last, len(n), service, want)
		}
		n, _, err := perfCatalog(c, service)
		if err == nil {
			last = n
			if n == want {
				return time.Since(start)
			}
		} else {
			lastErr = err
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %d catalog instances of %s: have %d (last error %v)",
				timeout, want, service, last, lastErr)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for the catalog")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// perfStats summarises durations.
type perfStats struct {
	N                     int
	Min, Median, P90, Max time.Duration
}

func perfSummarise(ds []time.Duration) perfStats {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return perfStats{}
	}
	return perfStats{
		N: len(s), Min: s[0], Median: s[len(s)/2], Max: s[len(s)-1],
		P90: s[min(len(s)-1, (len(s)*9+9)/10-1)],
	}
}

func (s perfStats) String() string {
	r := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("median %s (min %s, p90 %s, max %s, n=%d)", r(s.Median), r(s.Min), r(s.P90), r(s.Max), s.N)
}

// perfSampler collects /proc samples of a process on demand, safely from
// several goroutines.
type perfSampler struct {
	mu  sync.Mutex
	pid int
	all []perfProc
}

func (s *perfSampler) take(t *testing.T) perfProc {
	t.Helper()
	p := perfMustSample(t, s.pid)
	s.mu.Lock()
	s.all = append(s.all, p)
	s.mu.Unlock()
	return p
}

// rss returns min, median and max VmRSS of the samples so far, in KiB.
func (s *perfSampler) rss() (lo, med, hi int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := make([]int64, 0, len(s.all))
	for _, p := range s.all {
		v = append(v, p.RSSKiB)
	}
	if len(v) == 0 {
		return 0, 0, 0
	}
	slices.Sort(v)
	return v[0], v[len(v)/2], v[len(v)-1]
}

// perfPeak samples a process's VmRSS every 50 ms until stop is called and
// then returns the largest sample and when it was taken, so a peak can be
// placed among the test's events (VmHWM gives the size, not the moment).
func perfPeak(pid int) (stop func() perfProc) {
	done := make(chan struct{})
	var (
		mu   sync.Mutex
		peak perfProc
	)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if s, err := perfSample(pid); err == nil {
				mu.Lock()
				if s.RSSKiB > peak.RSSKiB {
					peak = s
				}
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() perfProc {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
