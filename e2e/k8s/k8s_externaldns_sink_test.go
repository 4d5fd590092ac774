package k8s_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dnsendpointlab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// testSinkThroughExternalDNS is the end of TestK8sExternalDNSBind: the
// bridge's own DNSEndpoint (k8s_write dnsendpoint, fleet "fleet", DNS name
// fleet.lab.test), written by `bridge run` in the root namespace (where
// the lab's API server listens) with its whitelist pinned to a switch the
// test created, two responders on it, published by the running
// external-dns (l) to BIND: dig answers both servers, and a server that
// stops answering leaves the answers within the fleet's removal and
// external-dns's next synchronisation.
func testSinkThroughExternalDNS(t *testing.T, c *k8slab.Cluster, lab *netns.Lab, l *dnsendpointlab.Lab) {
	sub := lab.HostSubnet()
	b := sub.Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{b[0], b[1], b[2], last}).String() }
	br := lab.HostBridge("srv", ip(1)+"/24")
	var responders []*netns.Proc
	for i := range 2 {
		h := lab.Host(fmt.Sprintf("fs%d", i), br, ip(byte(31+i))+"/24")
		responders = append(responders, harness.Respond(t, h, 1, "--ip", ip(byte(31+i))))
	}
	metrics := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	cmd := exec.Command(bridgebin.Path(t), "run", "--sink", "kubernetes", "--kubeconfig", c.Kubeconfig(), "--k8s-namespace", "default",
		"--k8s-service", "fleet", "--k8s-write", "dnsendpoint", "--k8s-dns-name", "fleet.lab.test", "--k8s-dns-ttl", "30s", "--k8s-dns-srv",
		"--bridge-id", "root1", "--whitelist", br.Dev, "--metrics-addr", metrics, "--interval", "1s", "--timeout", "0.5",
		"--missed-rounds", "2", "--k8s-lease-duration", "3s", "--k8s-deregister-after", "4s", "--log-format", "json")
	cmd.Env = harness.HermeticEnv()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by its PID
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("bridge run:\n%s", harness.Tail(out.String(), 30))
		}
	})
	started := time.Now()
	l.WaitAnswers(t, 60*time.Second, "fleet.lab.test", "A", ip(31), ip(32))
	t.Logf("MEASURED: bridge run (k8s_write dnsendpoint) start to dig answering fleet.lab.test with both servers through external-dns (--events) and BIND: %s",
		time.Since(started).Round(100*time.Millisecond))
	recs, err := l.BIND.Dig(context.Background(), nil, "fleet.lab.test", "A")
	if err != nil || len(recs) != 2 || recs[0].TTL != 30 {
		t.Errorf("fleet.lab.test A: %v %v, want 2 records with TTL 30 (k8s_dns_ttl)", recs, err)
	}
	// k8s_dns_srv: the per-server names and the SRV record, as external-dns
	// first writes them (its RFC 2136 provider never updates an SRV record
	// afterwards: docs/sinks/dnsendpoint.md).
	host := func(last byte) string { return strings.ReplaceAll(ip(last), ".", "-") + ".fleet.lab.test" }
	l.WaitAnswers(t, 30*time.Second, host(31), "A", ip(31))
	l.WaitAnswers(t, 30*time.Second, "_http._tcp.fleet.lab.test", "SRV", "0 0 8000 "+host(31)+".", "0 0 8000 "+host(32)+".")

	// A stopped server leaves the answers within the fleet's removal
	// (missed_rounds x interval + timeout: 2.5 s) and external-dns's
	// synchronisation on the change (--events: at most one a 5 s minimum
	// interval, each 5 s after its event), plus a second of slack.
	harness.StopResponder(t, responders[1])
	const bound = 2500*time.Millisecond + 2*6*time.Second + time.Second
	took := l.WaitAnswers(t, 60*time.Second, "fleet.lab.test", "A", ip(31))
	if took > bound {
		t.Errorf("a stopped server left dig's answers %s after it stopped, over the documented %s", took.Round(100*time.Millisecond), bound)
	}
	t.Logf("MEASURED: a server stopped: out of dig's answers %s later (bound %s: the fleet's removal, missed_rounds 2 of 1s rounds and the 0.5s timeout, then external-dns's synchronisation with --events)",
		took.Round(100*time.Millisecond), bound)
}
