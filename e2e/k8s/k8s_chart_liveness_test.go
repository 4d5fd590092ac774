package k8s_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8sh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestK8sChartLivenessUnderLANFlood (issue 28 (4), with the real thing):
// the chart's hostNetwork pod, its probes at the chart's defaults (liveness
// every 10 s, 3 s timeout, 3 failures; readiness every 5 s), while a LAN
// neighbour with 20 addresses holds 200 idle connections to the metrics
// port, re-opening each one the bridge closes, for 45 s (four liveness
// periods past the failure threshold's 30 s). The real kubelet's probes
// come from the node's own address and use the pool no LAN client can
// take: the pod is never restarted, stays Ready, and the kubelet reports
// no failed probe; the flood is refused at the per-client and total caps.
func TestK8sChartLivenessUnderLANFlood(t *testing.T) {
	k8slab.Require(t)
	dockerimg.Require(t)
	img := dockerimg.Build(t)
	c := k8slab.Start(t, k8slab.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	k8sh.ImportImage(ctx, t, c, img.Tag)

	lab := netns.New(t)
	sub := lab.HostSubnet()
	base := sub.Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], last}).String() }
	br := lab.HostBridge("k8s", ip(1)+"/24")
	srv := lab.Host("s1", br, ip(31)+"/24")
	harness.Respond(t, srv, 1, "--ip", ip(31))
	flooder := lab.Host("flood", br, ip(100)+"/24")
	const addrs, perAddr = 20, 10
	for i := 1; i < addrs; i++ {
		harness.MustHost(t, flooder, "ip", "addr", "add", ip(byte(100+i))+"/24", "dev", flooder.Dev(br))
	}

	repo, tag, _ := strings.Cut(img.Tag, ":")
	metricsPort := harness.FreePort(t)
	values := filepath.Join(t.TempDir(), "values.yaml")
	v := fmt.Sprintf(`image:
  repository: %s
  tag: %q
  pullPolicy: Never
metrics:
  port: %d
config:
  sinks: [stdout]
  interfaces_whitelist: [%q]
  interval: 1s
  timeout: 0.5
`, repo, tag, metricsPort, br.Dev)
	if err := os.WriteFile(values, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := k8sh.Helm(t, c.Kubeconfig(), "install", k8sRelease, harness.ChartDir(t), "-f", values, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.Kubectl(context.Background(), "logs", "-l", "app.kubernetes.io/instance="+k8sRelease, "--tail", "60")
			t.Logf("pod logs:\n%s", out)
		}
	})
	type podState struct {
		restarts int
		ready    bool
		name     string
	}
	pod := func() podState {
		t.Helper()
		out, err := c.Kubectl(ctx, "get", "pods", "-l", "app.kubernetes.io/instance="+k8sRelease, "-o", "json")
		if err != nil {
			t.Fatalf("get pods: %v\n%s", err, out)
		}
		var pods struct {
			Items []struct {
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Status struct {
					Conditions []struct {
						Type, Status string
					} `json:"conditions"`
					ContainerStatuses []struct {
						RestartCount int `json:"restartCount"`
					} `json:"containerStatuses"`
				} `json:"status"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &pods); err != nil || len(pods.Items) != 1 || len(pods.Items[0].Status.ContainerStatuses) != 1 {
			t.Fatalf("pods: %v\n%s", err, out)
		}
		p := pods.Items[0]
		s := podState{restarts: p.Status.ContainerStatuses[0].RestartCount, name: p.Metadata.Name}
		for _, cd := range p.Status.Conditions {
			if cd.Type == "Ready" {
				s.ready = cd.Status == "True"
			}
		}
		return s
	}
	harness.Wait(t, 60*time.Second, "the pod Ready", func() (bool, string) {
		s := pod()
		return s.ready, fmt.Sprintf("%+v", s)
	})
	before := pod()
	// The kubelet's failed probes as events (name -> count): the first
	// readiness probe may come before the first round completed (503), so
	// only failures during the flood count.
	unhealthy := func() map[string]string {
		t.Helper()
		out, err := c.Kubectl(ctx, "get", "events", "--field-selector", "involvedObject.name="+before.name+",reason=Unhealthy", "-o", "json")
		if err != nil {
			t.Fatalf("get events: %v\n%s", err, out)
		}
		var evs struct {
			Items []struct {
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Count   int    `json:"count"`
				Message string `json:"message"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &evs); err != nil {
			t.Fatalf("events: %v\n%s", err, out)
		}
		m := map[string]string{}
		for _, e := range evs.Items {
			m[e.Metadata.Name] = fmt.Sprintf("%d× %s", e.Count, e.Message)
		}
		return m
	}
	time.Sleep(3 * time.Second) // the kubelet posts its events asynchronously
	startEvents := unhealthy()

	// The flood: 20 addresses × 10 idle connections to the metrics port
	// on the bridge's LAN address, each re-opened as soon as it closes.
	target := fmt.Sprintf("%s:%d", ip(1), metricsPort)
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var dials, up atomic.Int64
	for a := range addrs {
		for range perAddr {
			local := ip(byte(100+a)) + ":0"
			wg.Go(func() {
				for fctx.Err() == nil {
					conn, err := netns.DialFrom(fctx, flooder.NS, "tcp", local, target)
					if err != nil {
						return
					}
					dials.Add(1)
					up.Add(1)
					done := context.AfterFunc(fctx, func() { _ = conn.Close() })
					_, _ = io.Copy(io.Discard, conn) // idle until either side closes
					done()
					_ = conn.Close()
					up.Add(-1)
					select {
					case <-fctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			})
		}
	}
	defer func() { stop(); wg.Wait() }()

	var worst podState
	worst.ready = true
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
		s := pod()
		if s.restarts != before.restarts || !s.ready {
			worst = s
		}
	}
	stop()
	wg.Wait()
	code, body, err := harness.NSGet(srv.NS, fmt.Sprintf("http://%s/metrics", target))
	after := pod()
	var failed []string
	for name, ev := range unhealthy() {
		if startEvents[name] != ev {
			failed = append(failed, ev)
		}
	}
	t.Logf("flood of %d idle connections from %d addresses for 45 s: %d dials; pod restarts %d -> %d, ready %v; failed probes during the flood: %d (before it: %v)",
		addrs*perAddr, addrs, dials.Load(), before.restarts, after.restarts, after.ready, len(failed), startEvents)
	if worst.restarts != before.restarts || !worst.ready || after.restarts != before.restarts || !after.ready {
		t.Errorf("under the flood the pod was %+v (after: %+v), want never restarted and always Ready", worst, after)
	}
	if len(failed) > 0 {
		t.Errorf("the kubelet reported failed probes during the flood: %v", failed)
	}
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics from a LAN host after the flood: %d %v", code, err)
	}
	perClient, _, _ := harness.MetricIn(body, `udp_discovery_bridge_http_connections_refused_total{listener="metrics_addr",reason="per_client"}`)
	total, _, _ := harness.MetricIn(body, `udp_discovery_bridge_http_connections_refused_total{listener="metrics_addr",reason="total"}`)
	t.Logf("refused per_client %v, total %v", perClient, total)
	if perClient == 0 || total == 0 {
		t.Errorf("refused per_client %v, total %v: the flood did not reach both caps", perClient, total)
	}
}
