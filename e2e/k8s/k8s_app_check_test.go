package k8s_test

// App checks with the kubernetes sink, against the lean lab (etcd and
// kube-apiserver, k8slab.StartAPI) and CoreDNS's kubernetes plugin: the
// EndpointSlice conditions follow the app's health, and so do CoreDNS's
// answers for the Service.

import (
	"fmt"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/appserver"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// k8sConditions reads each server's ("ip:port") endpoint conditions as
// "ready=… serving=… terminating=…", an absent ready or serving counting
// as true and an absent terminating as false, as Kubernetes reads them.
func k8sConditions(t *testing.T, a *k8slab.API) map[string]string {
	t.Helper()
	sl, _ := k8sSlices(t, a)
	out := map[string]string{}
	for _, s := range sl {
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			out[fmt.Sprintf("%s:%d", ep.Addresses[0], s.Ports[0].Port)] = fmt.Sprintf("ready=%v serving=%v terminating=%v",
				c.Ready == nil || *c.Ready, c.Serving == nil || *c.Serving, c.Terminating != nil && *c.Terminating)
		}
	}
	return out
}

const (
	k8sReady   = "ready=true serving=true terminating=false"
	k8sFailing = "ready=false serving=false terminating=false"
)

// TestK8sAppCheck: two apps behind responders, one bridge with the
// kubernetes sink checking them (http, rise 2, fall 3, a second apart).
// Both endpoints turn ready after rise and CoreDNS answers both; quiet
// rounds with checks running write no slice (resourceVersions unchanged,
// no write in the audit log but Leases); when s0's app answers 503 its
// endpoint turns ready false, serving false, terminating false (failing:
// kept, not ready) within fall checks and the write, and CoreDNS's answers
// leave it out; when it serves again it is ready after rise, and back in
// CoreDNS's answers.
func TestK8sAppCheck(t *testing.T) {
	netns.Require(t)
	k8slab.Require(t)
	begin := time.Now()
	lab, br, a, kubeconfig := k8sLab(t)
	var apps []*appserver.Server
	var want []string
	for i := range 2 {
		ip := fmt.Sprintf("10.213.41.%d", 31+i)
		h := lab.Host(fmt.Sprintf("ks%d", i), br, ip+"/24")
		apps = append(apps, appserver.Start(t, appserver.Options{NS: h.NS, Addr: fmt.Sprintf("%s:%d", ip, harness.AppPort)}))
		harness.Respond(t, h, 1, "--ip", ip)
		want = append(want, fmt.Sprintf("%s:%d", ip, harness.AppPort))
	}
	h := lab.Host("kb1", br, "10.213.41.21/24")
	harness.StartRun(t, h, "kb1", append([]string{"--sink", "kubernetes", "--kubeconfig", kubeconfig, "--k8s-namespace", "default",
		"--bridge-id", "kb1", "--whitelist", h.Dev(br), "--metrics-addr", harness.MetricsAddr, "--interval", "1s", "--timeout", "0.5",
		"--k8s-lease-duration", "3s", "--log-format", "json"}, harness.AppCheckFlags...)...)
	started := time.Now()
	conds := func(w0, w1 string) func() (bool, string) {
		return func() (bool, string) {
			c := k8sConditions(t, a)
			return len(c) == 2 && c[want[0]] == w0 && c[want[1]] == w1, fmt.Sprint(c)
		}
	}
	harness.Wait(t, 60*time.Second, "both endpoints ready", conds(k8sReady, k8sReady))
	t.Logf("MEASURED: 2 endpoints ready %s after the bridge started (servers of its first round: on their first passing check)", time.Since(started).Round(100*time.Millisecond))
	dns := k8sCoreDNS(t, lab, br, a)
	dns.wait(t, want, "A and SRV records of both servers")

	// Quiet rounds with checks running: no slice written.
	var before map[string]string
	since := time.Now()
	harness.Wait(t, 30*time.Second, "settled slices", func() (bool, string) {
		sl, _ := k8sSlices(t, a)
		if now := rvs(sl); !maps2Equal(now, before) {
			before, since = now, time.Now()
		}
		return time.Since(since) >= 3*time.Second, fmt.Sprint(before)
	})
	n0 := len(a.Audit(t))
	req0 := apps[0].Requests() + apps[1].Requests()
	window := 6 * harness.AppInterval
	harness.AppSteady(t, window, "quiet rounds", func() (bool, string, error) {
		sl, _ := k8sSlices(t, a)
		return maps2Equal(rvs(sl), before), fmt.Sprintf("resourceVersions %v -> %v", before, rvs(sl)), nil
	})
	quiet := writes(a.Audit(t)[n0:])
	if n := objectWrites(quiet); n != 0 {
		t.Errorf("quiet rounds with checks running: %d writes of slices, services or configmaps (%s), want 0", n, fmtWrites(quiet))
	}
	checks := apps[0].Requests() + apps[1].Requests() - req0
	if checks < 2*(int(window/harness.AppInterval)-2) {
		t.Errorf("%d app checks in %s: the checks did not run", checks, window)
	}
	t.Logf("MEASURED: %s of quiet rounds, %d app checks: slices' resourceVersions unchanged, writes %s", window, checks, fmtWrites(quiet))

	// s0's app fails: not ready, not serving, not terminating; out of DNS.
	req := apps[0].Requests()
	flipped := time.Now()
	apps[0].Set(appserver.Unavailable)
	took := harness.Wait(t, harness.AppBound(harness.AppFall), "s0's endpoint failing", conds(k8sFailing, k8sReady))
	if n := apps[0].Requests() - req; n < harness.AppFall {
		t.Errorf("s0 not ready after %d requests to its app, want at least fall = %d", n, harness.AppFall)
	}
	dns.wait(t, want[1:], "A and SRV records without s0")
	t.Logf("MEASURED: app 503: s0's endpoint ready false %s after the flip (bound %s), out of CoreDNS's answers %s after",
		took.Round(100*time.Millisecond), harness.AppBound(harness.AppFall), time.Since(flipped).Round(100*time.Millisecond))

	// It serves again: ready after rise, and in DNS again.
	req = apps[0].Requests()
	restored := time.Now()
	apps[0].Set(appserver.Serving)
	took = harness.Wait(t, harness.AppBound(harness.AppRise), "s0's endpoint ready again", conds(k8sReady, k8sReady))
	if n := apps[0].Requests() - req; n < harness.AppRise {
		t.Errorf("s0 ready after %d requests to its app, want at least rise = %d", n, harness.AppRise)
	}
	dns.wait(t, want, "A and SRV records of both servers again")
	t.Logf("MEASURED: app serving again: s0's endpoint ready %s later (bound %s), back in CoreDNS's answers %s after; test took %s",
		took.Round(100*time.Millisecond), harness.AppBound(harness.AppRise), time.Since(restored).Round(100*time.Millisecond), time.Since(begin).Round(100*time.Millisecond))
}
