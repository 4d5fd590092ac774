package k8s_test

// The consumer side of a DNSEndpoint (issue 33), proven before the bridge
// writes one: in the real single-node Kubernetes of k8slab, the chart's
// DNSEndpoint CRD, a hand-written DNSEndpoint in the shape the dnsendpoint
// sink will write (one per fleet, spec only, labelled), real external-dns
// reading it through its crd source and publishing it with its RFC 2136
// provider to real BIND, and dig answering.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bindns"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dnsendpointlab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/externaldnsbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// edEndpoint is one entry of a DNSEndpoint's spec.endpoints.
type edEndpoint struct {
	DNSName    string   `json:"dnsName"`
	RecordType string   `json:"recordType"`
	RecordTTL  int      `json:"recordTTL,omitempty"`
	Targets    []string `json:"targets"`
}

// dnsEndpoint is a DNSEndpoint as JSON (kubectl apply reads JSON too).
func dnsEndpoint(t *testing.T, name string, labels map[string]string, eps ...edEndpoint) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"apiVersion": "externaldns.k8s.io/v1alpha1",
		"kind":       "DNSEndpoint",
		"metadata":   map[string]any{"name": name, "namespace": "default", "labels": labels},
		"spec":       map[string]any{"endpoints": eps},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The labels the sink will put on its DNSEndpoints (the fleet and the
// manager, as the kubernetes sink labels its Service); external-dns's
// --label-filter selects on the manager.
var (
	edLabels      = map[string]string{"app.kubernetes.io/managed-by": "udp-discovery-bridge", "udp-discovery-bridge.io/fleet": "django"}
	edLabelFilter = "app.kubernetes.io/managed-by=udp-discovery-bridge"
)

// djangoEndpoint is the fleet django's DNSEndpoint with the servers ips
// (ip:port): an A record per server under django.lab.test, one name per
// server (sN.lab.test, the SRV records' targets) and an SRV record per
// server under _http._tcp.django.lab.test, all with TTL 30.
func djangoEndpoint(t *testing.T, servers ...string) string {
	t.Helper()
	a := edEndpoint{DNSName: "django.lab.test", RecordType: "A", RecordTTL: 30}
	srv := edEndpoint{DNSName: "_http._tcp.django.lab.test", RecordType: "SRV", RecordTTL: 30}
	eps := []edEndpoint{}
	for i, s := range servers {
		ip, port, _ := strings.Cut(s, ":")
		host := fmt.Sprintf("s%d.lab.test", i+1)
		a.Targets = append(a.Targets, ip)
		eps = append(eps, edEndpoint{DNSName: host, RecordType: "A", RecordTTL: 30, Targets: []string{ip}})
		srv.Targets = append(srv.Targets, fmt.Sprintf("0 50 %s %s.", port, host))
	}
	return dnsEndpoint(t, "django", edLabels, append([]edEndpoint{a, srv}, eps...)...)
}

func kubectlApply(ctx context.Context, t *testing.T, c *k8slab.Cluster, doc string) {
	t.Helper()
	if out, err := c.KubectlIn(ctx, strings.NewReader(doc), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, doc)
	}
}

// dnsEndpointGenerations returns metadata.generation and
// status.observedGeneration (0: no status) of the DNSEndpoint name.
func dnsEndpointGenerations(ctx context.Context, c *k8slab.Cluster, name string) (gen, observed int64, err error) {
	out, err := c.Kubectl(ctx, "get", "dnsendpoint", name, "-n", "default", "-o", "json")
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, out)
	}
	var o struct {
		Metadata struct{ Generation int64 }
		Status   struct{ ObservedGeneration int64 }
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		return 0, 0, err
	}
	return o.Metadata.Generation, o.Status.ObservedGeneration, nil
}

// gapWatch digs django.lab.test's A records every 50 ms until stop is
// closed and counts the answers with no record at all: an update of the
// record set (some targets removed, others added) must never show an
// empty one. dig's own failures (a timeout under load) are not counted.
func gapWatch(l *dnsendpointlab.Lab, stop <-chan struct{}) (done <-chan [2]int) {
	out := make(chan [2]int, 1)
	go func() {
		var asked, empty int
		for {
			select {
			case <-stop:
				out <- [2]int{asked, empty}
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			got, err := l.Answers(ctx, "django.lab.test", "A")
			cancel()
			if err == nil {
				asked++
				if len(got) == 0 {
					empty++
				}
			}
		}
	}()
	return out
}

// TestK8sExternalDNSBind: external-dns v0.23.0 (--source=crd, the RFC 2136
// provider, as a ServiceAccount with the rights its chart gives the crd
// source) publishes a labelled DNSEndpoint with no status to BIND (dig
// answers its A and SRV records with their TTL), ignores one outside its
// --label-filter, writes status.observedGeneration of the one it
// publishes, and follows a change of the DNSEndpoint's A records within
// its --interval (measured), never answering an empty set on the way, then,
// with --events, about 5 s after the change (measured). Its RFC 2136
// provider cannot read SRV records back: what it does with a changed SRV
// set is logged as a finding.
func TestK8sExternalDNSBind(t *testing.T) {
	k8slab.Require(t)
	bindns.Require(t)
	externaldnsbin.Path(t) // built before the lab starts, when not cached
	c := k8slab.Start(t, k8slab.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	dnsendpointlab.InstallCRD(ctx, t, c)

	// The servers are addresses only here: nothing answers on them.
	s1, s2 := "10.213.199.31:8000", "10.213.199.32:8001"
	kubectlApply(ctx, t, c, djangoEndpoint(t, s1, s2))
	// Outside the label filter: another manager's DNSEndpoint.
	kubectlApply(ctx, t, c, dnsEndpoint(t, "stray", map[string]string{"app.kubernetes.io/managed-by": "someone-else"},
		edEndpoint{DNSName: "stray.lab.test", RecordType: "A", RecordTTL: 30, Targets: []string{"10.213.199.99"}}))
	for _, name := range []string{"django", "stray"} {
		if gen, obs, err := dnsEndpointGenerations(ctx, c, name); err != nil || gen != 1 || obs != 0 {
			t.Fatalf("%s before external-dns: generation %d, observedGeneration %d (%v), want 1 and no status", name, gen, obs, err)
		}
	}

	lab := netns.New(t)
	const interval = 5 * time.Second
	start := time.Now()
	l := dnsendpointlab.Start(t, c, lab, dnsendpointlab.Options{LabelFilter: edLabelFilter, Interval: interval})
	ed := l.ExternalDNS
	t.Logf("external-dns %s", strings.Join(ed.Args, " "))
	l.WaitAnswers(t, 60*time.Second, "django.lab.test", "A", "10.213.199.31", "10.213.199.32")
	t.Logf("MEASURED: external-dns start to django.lab.test's A records in BIND: %s", time.Since(start).Round(100*time.Millisecond))
	l.WaitAnswers(t, 30*time.Second, "s1.lab.test", "A", "10.213.199.31")
	l.WaitAnswers(t, 30*time.Second, "s2.lab.test", "A", "10.213.199.32")
	recs, err := l.BIND.Dig(ctx, nil, "django.lab.test", "A")
	if err != nil || len(recs) != 2 || recs[0].TTL != 30 {
		t.Errorf("django.lab.test A: %v %v, want 2 records with TTL 30 (recordTTL)", recs, err)
	}
	if got, err := l.Answers(ctx, "_http._tcp.django.lab.test", "SRV"); err != nil ||
		strings.Join(got, ",") != "0 50 8000 s1.lab.test.,0 50 8001 s2.lab.test." {
		t.Errorf("SRV _http._tcp.django.lab.test: %v %v, want the two servers' records", got, err)
	}

	// A whole synchronisation after both DNSEndpoints existed: the one
	// outside the label filter is not published and gets no status; the
	// published one has its status.observedGeneration written.
	ed.WaitSyncAfter(t, 30*time.Second, start)
	if got, err := l.Answers(ctx, "stray.lab.test", "A"); err != nil || len(got) != 0 {
		t.Errorf("stray.lab.test (outside --label-filter): %v %v, want no records", got, err)
	}
	if gen, obs, err := dnsEndpointGenerations(ctx, c, "stray"); err != nil || obs != 0 {
		t.Errorf("stray: generation %d, observedGeneration %d (%v), want no status", gen, obs, err)
	}
	var gen, obs int64
	harness.Wait(t, 30*time.Second, "django's status.observedGeneration", func() (bool, string) {
		gen, obs, err = dnsEndpointGenerations(ctx, c, "django")
		return err == nil && obs == gen, fmt.Sprintf("generation %d observed %d %v", gen, obs, err)
	})
	t.Logf("FINDING: external-dns wrote django's status.observedGeneration=%d (generation %d); stray's status stays empty", obs, gen)
	for _, bad := range []string{"forbidden", "Could not update ObservedGeneration", "level=error"} {
		if strings.Contains(ed.Log(), bad) {
			t.Errorf("external-dns (as a ServiceAccount with its chart's crd-source rights) logged %q:\n%s", bad, harness.Tail(ed.Log(), 20))
		}
	}
	zone, err := l.Zone(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the zone after the first syncs:\n%s", zone)

	// A server leaves the fleet, comes back, leaves again: the sink would
	// write the DNSEndpoint without it, with it, without it. external-dns
	// (no --events) publishes each at its next synchronisation, within
	// --interval (and the second its loop ticks at); the record set is
	// replaced in one RFC 2136 update, so dig never sees it empty.
	change := func(servers ...string) (time.Duration, time.Time) {
		t.Helper()
		var want []string
		for _, s := range servers {
			want = append(want, strings.Split(s, ":")[0])
		}
		at := time.Now()
		kubectlApply(ctx, t, c, djangoEndpoint(t, servers...))
		return l.WaitAnswers(t, 60*time.Second, "django.lab.test", "A", want...), at
	}
	stop := make(chan struct{})
	gaps := gapWatch(l, stop)
	var lastChange time.Time
	for i, step := range []struct {
		what    string
		servers []string
	}{{"remove s2", []string{s1}}, {"add s2 back", []string{s1, s2}}, {"remove s2 again", []string{s1}}} {
		d, at := change(step.servers...)
		lastChange = at
		t.Logf("MEASURED: DNSEndpoint change %d (%s) to dig answering it, --interval=%s without --events: %s", i+1, step.what, interval, d.Round(100*time.Millisecond))
	}
	close(stop)
	if g := <-gaps; g[0] == 0 || g[1] != 0 {
		t.Errorf("django.lab.test during the changes: %d of %d answers empty, want none (of some)", g[1], g[0])
	} else {
		t.Logf("MEASURED: %d digs of django.lab.test during the three changes, none empty", g[0])
	}
	l.WaitAnswers(t, 30*time.Second, "s2.lab.test", "A")
	ed.WaitSyncAfter(t, 30*time.Second, lastChange)
	if got, err := l.Answers(ctx, "stray.lab.test", "A"); err != nil || len(got) != 0 {
		t.Errorf("stray.lab.test (outside --label-filter) after more syncs: %v %v, want no records", got, err)
	}
	if gen, obs, err := dnsEndpointGenerations(ctx, c, "django"); err != nil || gen != 4 || obs != 4 {
		t.Errorf("django after three spec changes and a sync: generation %d, observedGeneration %d (%v), want 4 and 4", gen, obs, err)
	}
	// SRV: the RFC 2136 provider lists the zone by AXFR but keeps only A,
	// AAAA, CNAME, DNAME, TXT, NS and PTR records of it: it never sees the
	// SRV records it wrote, so it adds the desired ones again at every
	// synchronisation and never removes one.
	srv, err := l.Answers(ctx, "_http._tcp.django.lab.test", "SRV")
	t.Logf("FINDING: SRV _http._tcp.django.lab.test after s2 left the DNSEndpoint and a whole sync: %v %v", srv, err)
	t.Logf("FINDING: external-dns sent s1's SRV record, there all along, %d times in %s at --interval=%s",
		strings.Count(ed.Log(), "Adding RR: _http._tcp.django.lab.test 30 SRV 0 50 8000 s1.lab.test."), time.Since(start).Round(time.Second), interval)

	// With --events and a long --interval, a change schedules a
	// synchronisation 5 s later (at most one per --min-event-sync-interval,
	// default 5 s). The informer's replayed add events at start-up may have
	// scheduled one up to 5 s after the first: let it pass first.
	restart := time.Now()
	e := l.Restart(t, dnsendpointlab.Options{LabelFilter: edLabelFilter, Interval: time.Hour, Events: true})
	t.Logf("external-dns %s", strings.Join(e.Args, " "))
	first := e.WaitSyncAfter(t, 60*time.Second, restart)
	time.Sleep(time.Until(first.Add(6 * time.Second)))
	for i, step := range []struct {
		what    string
		servers []string
	}{{"add s2 back", []string{s1, s2}}, {"remove s2", []string{s1}}} {
		d, _ := change(step.servers...)
		t.Logf("MEASURED: DNSEndpoint change %d (%s) to dig answering it, --events, --interval=1h: %s", i+1, step.what, d.Round(100*time.Millisecond))
	}
	for _, bad := range []string{"forbidden", "Could not update ObservedGeneration", "level=error"} {
		if strings.Contains(e.Log(), bad) {
			t.Errorf("external-dns --events logged %q:\n%s", bad, harness.Tail(e.Log(), 20))
		}
	}

	// The bridge's own DNSEndpoint through the same external-dns.
	testSinkThroughExternalDNS(t, c, lab, l)
}
