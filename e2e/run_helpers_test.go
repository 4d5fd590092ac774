package e2e_test

// Helpers of the `bridge run` end-to-end tests (run_consul_test.go,
// run_sinks_test.go): a LAN of namespace hosts on 10.213.1.0/24 with an
// optional Consul dev agent inside the client's namespace, the real bridge
// binary started there, and an HTTP client that dials into a namespace to
// read the bridge's /metrics, /healthz and /readyz. Nothing runs in the root
// namespace.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

const (
	// runClientIP is the client's (bridge's and agent's) address.
	runClientIP = "10.213.1.10"
	// runConsulAddr is the agent's HTTP address inside the client namespace.
	runConsulAddr = runClientIP + ":8500"
	// runMetricsAddr is where bridges serve /metrics inside their namespace.
	runMetricsAddr = "127.0.0.1:9108"
	// runBridgeService is the name of the bridge's own Consul service.
	runBridgeService = "udp-discovery-bridge"
)

// runFast are the loop flags of every long-running bridge here: a round a
// second, each 0.5 s long.
var runFast = []string{"--interval", "1s", "--timeout", "0.5"}

// loadTestMax is the value of the limits in the load tests: max_replies'
// default, so that no limit is below what a round keeps anyway.
const loadTestMax = "100000"

// loadTestDiscoverFlags admit the replies of a load test's responder: one
// `bridge respond --replies N` host answering each probe as N servers that
// advertise addresses off its LAN (10.213.100.1 and up). The defaults
// refuse all but a few of them: advertised_addresses local refuses every
// address that is neither the source nor on the LAN (foreign_address),
// and max_servers_per_source 8 caps what one source introduces in a
// round (source_cap). The issue of those limits: "The project's own load
// tests set them high." These are `bridge discover`'s (and run's) flags.
var loadTestDiscoverFlags = []string{"--advertised-addresses", "any", "--max-servers-per-source", loadTestMax}

// loadTestFlags are loadTestDiscoverFlags plus `bridge run`'s own limit:
// max_servers (10,000 by default, which the 10,000-server tests reach
// exactly and the churn test passes), and max_servers_per_source also caps
// what one source holds in `bridge run`.
var loadTestFlags = append(slices.Clone(loadTestDiscoverFlags), "--max-servers", loadTestMax)

// runLAN is one segment: a client at 10.213.1.10 (bridge and, optionally, the
// Consul agent) and server hosts from 10.213.1.11 up.
type runLAN struct {
	lab     *netns.Lab
	br      *netns.Bridge
	client  *netns.Host
	servers []*netns.Host
	agent   *consulagent.Agent // nil without Consul
	consul  *api.Client
}

// newRunLAN builds the segment; withConsul starts a dev agent inside the
// client namespace, bound to 10.213.1.10 (a loopback agent in the root
// namespace would be unreachable from the bridge).
func newRunLAN(t *testing.T, servers int, withConsul bool) *runLAN {
	t.Helper()
	l := &runLAN{lab: netns.New(t)}
	l.br = l.lab.Bridge("lan")
	l.client = l.lab.Host("client", l.br, runClientIP+"/24")
	for i := range servers {
		l.servers = append(l.servers, l.lab.Host(fmt.Sprintf("s%d", i+1), l.br, fmt.Sprintf("10.213.1.%d/24", 11+i)))
	}
	bridgebin.Path(t)
	if withConsul {
		l.agent = consulagent.Start(t, consulagent.Options{Netns: l.client.NS, BindAddr: runClientIP})
		l.consul = l.agent.Client()
	}
	return l
}

// runStopResponder stops a responder and fails the test unless it is gone.
func runStopResponder(t *testing.T, p *netns.Proc) {
	t.Helper()
	_ = p.StopWithin(2 * time.Second)
	if !p.Exited() {
		t.Fatalf("responder %d did not exit", p.PID)
	}
}

// runBridge is a long-running `bridge run` process.
type runBridge struct {
	*netns.Proc
	name string
	args []string
}

// startRun starts `bridge run args...` on h. When the test fails, its
// output is logged.
func startRun(t *testing.T, h *netns.Host, name string, args ...string) *runBridge {
	t.Helper()
	return startRunEnv(t, h, name, nil, args...)
}

// startRunEnv is startRun with env added to the hermetic environment
// (DISCOVERY_CLIENT_... settings).
func startRunEnv(t *testing.T, h *netns.Host, name string, env []string, args ...string) *runBridge {
	t.Helper()
	argv := append([]string{bridgebin.Path(t), "run"}, args...)
	p, err := h.WithEnv(hermeticEnv(env...)).Start(t.Context(), argv...)
	if err != nil {
		t.Fatal(err)
	}
	b := &runBridge{Proc: p, name: name, args: args}
	t.Cleanup(func() {
		if t.Failed() {
			stdout, stderr := p.Output()
			t.Logf("bridge %s (%s %s), exit %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(env, " "), strings.Join(args, " "), p.ExitCode(), runTail(stdout, 60), runTail(stderr, 120))
		}
	})
	return b
}

// kill9 sends SIGKILL to the bridge and waits for it to die.
func (b *runBridge) kill9(t *testing.T) {
	t.Helper()
	if b.Exited() {
		t.Fatalf("bridge %s already exited (%d) before kill -9", b.name, b.ExitCode())
	}
	if err := syscall.Kill(b.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", b.PID, err)
	}
	_ = b.Wait()
}

// sigterm sends SIGTERM, waits up to grace and returns the exit status (-1
// when it had to be killed).
func (b *runBridge) sigterm(t *testing.T, grace time.Duration) int {
	t.Helper()
	if b.Exited() {
		t.Fatalf("bridge %s exited (%d) before SIGTERM", b.name, b.ExitCode())
	}
	start := time.Now()
	_ = b.StopWithin(grace)
	t.Logf("bridge %s: SIGTERM to exit %d took %s", b.name, b.ExitCode(), time.Since(start).Round(time.Millisecond))
	return b.ExitCode()
}

// runCmd runs `bridge args...` on h to completion (60 s at most).
func runCmd(t *testing.T, h *netns.Host, args ...string) netns.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	return h.WithEnv(hermeticEnv()).Run(ctx, append([]string{bridgebin.Path(t)}, args...)...)
}

// runWait polls cond every 100 ms until it holds, failing the test after
// timeout with cond's last detail. It returns how long it waited.
func runWait(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, detail := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, detail)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runCatalog returns the catalog's instances of service keyed by ID,
// and the X-Consul-Index of the query. Duplicate IDs fail the test.
func runCatalog(t *testing.T, c *api.Client, service string) (map[string]*api.CatalogService, uint64, error) {
	t.Helper()
	svcs, meta, err := c.Catalog().Service(service, "", nil)
	if err != nil {
		return nil, 0, err
	}
	out := make(map[string]*api.CatalogService, len(svcs))
	for _, s := range svcs {
		if _, dup := out[s.ServiceID]; dup {
			t.Errorf("catalog lists service ID %s twice", s.ServiceID)
		}
		out[s.ServiceID] = s
	}
	return out, meta.LastIndex, nil
}

// runWaitCatalog waits until the catalog's instances of service are exactly
// ids, and returns them.
func runWaitCatalog(t *testing.T, c *api.Client, service string, timeout time.Duration, ids ...string) map[string]*api.CatalogService {
	t.Helper()
	slices.Sort(ids)
	var got map[string]*api.CatalogService
	runWait(t, timeout, fmt.Sprintf("catalog %s = %v", service, ids), func() (bool, string) {
		m, _, err := runCatalog(t, c, service)
		if err != nil {
			return false, err.Error()
		}
		got = m
		have := runKeys(m)
		return slices.Equal(have, ids), fmt.Sprintf("have %v", have)
	})
	return got
}

// runHealth returns the aggregated status of every instance of service
// keyed by service ID (an instance's worst check).
func runHealth(c *api.Client, service string) (map[string]string, error) {
	entries, _, err := c.Health().Service(service, "", false, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		out[e.Service.ID] = e.Checks.AggregatedStatus()
	}
	return out, nil
}

// runServerID is the bridge's deterministic service ID for ip:port.
func runServerID(service, ip string, port int) string {
	return service + "-" + ip + "-" + strconv.Itoa(port)
}

func runKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// tail returns the last n lines of s.
func runTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// runNSClient returns an HTTP client whose connections are made inside the
// named network namespace (for the bridge's metrics endpoint).
func runNSClient(ns string) *http.Client { return netns.HTTPClient(ns, 3*time.Second) }

// runNSGet GETs url from inside ns and returns the status code and body.
func runNSGet(ns, url string) (int, string, error) {
	resp, err := runNSClient(ns).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// runMetric GETs /metrics inside ns and returns the sum of the samples
// whose line starts with prefix (see runMetricIn).
func runMetric(ns, prefix string) (float64, bool, error) {
	body, err := runMetricsBody(ns)
	if err != nil {
		return 0, false, err
	}
	return runMetricIn(body, prefix)
}

// runMetricsBody GETs /metrics inside ns.
func runMetricsBody(ns string) (string, error) {
	code, body, err := runNSGet(ns, "http://"+runMetricsAddr+"/metrics")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %d", code)
	}
	return body, nil
}

// runMetricIn returns the sum of the samples in a /metrics body whose line
// starts with prefix: a metric name with an optional full label set, e.g.
// `udp_discovery_bridge_sink_writes_total{sink="consul"}`.
func runMetricIn(body, prefix string) (float64, bool, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer metric name
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}
