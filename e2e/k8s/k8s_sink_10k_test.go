package k8s_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// TestK8sSink10k: 10,000 servers through a real leader into a real
// API server. The observation of the 10,000 is published by the test as a
// bridge would (its Lease renewed every second, its ConfigMap in the
// observation encoding); a real `bridge run` leads and writes the slices.
// Every server once, in slices of at most 100, the first apply's writes
// counted in the audit log, then 0 object writes per quiet round.
func TestK8sSink10k(t *testing.T) {
	netns.Require(t)
	k8slab.Require(t)
	const n, perSlice = 10000, 100
	begin := time.Now()
	lab, br, a, kubeconfig := k8sLab(t)
	o := observation.Observation{Bridge: "synth"}
	for i := range n {
		ip := netip.AddrFrom4([4]byte{10, 220, byte(i / 250), byte(1 + i%250)})
		o.Entries = append(o.Entries, observation.Entry{Addr: netip.AddrPortFrom(ip, 8000), Segment: "10.220.0.0/16"})
	}
	chunks, err := observation.Encode(o, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	bin := map[string][]byte{}
	size := 0
	for i, c := range chunks {
		bin[strconv.Itoa(i)] = c
		size += len(c)
	}
	const holder = "synth_test"
	labels := func(role string) map[string]string {
		return map[string]string{"udp-discovery-bridge.io/fleet": "django", "udp-discovery-bridge.io/role": role}
	}
	annots := map[string]string{"udp-discovery-bridge.io/bridge-id": "synth", "udp-discovery-bridge.io/holder": holder}
	now := func() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00") }
	lease := map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": "django-bridge-synth", "labels": labels("bridge"), "annotations": annots},
		"spec":     map[string]any{"holderIdentity": holder, "leaseDurationSeconds": 3, "renewTime": now()}}
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata":   map[string]any{"name": "django-obs-synth", "labels": labels("observation"), "annotations": annots},
		"binaryData": bin}
	post := func(path string, obj any) {
		t.Helper()
		b, _ := json.Marshal(obj)
		if _, err := a.Send("POST", path, "application/json", b); err != nil {
			t.Fatal(err)
		}
	}
	post("/apis/coordination.k8s.io/v1/namespaces/default/leases", lease)
	post("/api/v1/namespaces/default/configmaps", cm)
	// Renew the synthetic bridge's Lease every second, as a bridge does.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			time.Sleep(time.Second)
			patch := fmt.Sprintf(`{"spec":{"renewTime":%q}}`, now())
			_, _ = a.Send("PATCH", "/apis/coordination.k8s.io/v1/namespaces/default/leases/django-bridge-synth", "application/merge-patch+json", []byte(patch))
		}
	}()

	h := lab.Host("kb1", br, "10.213.41.21/24")
	harness.StartRun(t, h, "kb1", "--sink", "kubernetes", "--kubeconfig", kubeconfig, "--k8s-namespace", "default",
		"--bridge-id", "kb1", "--whitelist", h.Dev(br), "--metrics-addr", harness.MetricsAddr, "--interval", "1s", "--timeout", "0.5",
		"--k8s-lease-duration", "3s", "--k8s-max-endpoints-per-slice", strconv.Itoa(perSlice), "--log-format", "json")
	started := time.Now()
	var slices map[string]k8sSlice
	harness.Wait(t, 40*time.Second, "10,000 servers in the slices", func() (bool, string) {
		var got map[string]bool
		slices, got = k8sSlices(t, a)
		ready := 0
		for _, r := range got {
			if r {
				ready++
			}
		}
		return ready == n, fmt.Sprintf("%d ready of %d in %d slices", ready, len(got), len(slices))
	})
	took := time.Since(started)
	if len(slices) != n/perSlice {
		t.Errorf("%d slices, want %d", len(slices), n/perSlice)
	}
	for name, s := range slices {
		if len(s.Endpoints) > perSlice {
			t.Errorf("slice %s has %d endpoints, more than %d", name, len(s.Endpoints), perSlice)
		}
	}
	first := writes(a.Audit(t))
	t.Logf("MEASURED: %d servers (observation %d bytes in %d chunk(s)) in %d slices of at most %d, each once and ready, %s after the leader started; its writes: %s",
		n, size, len(chunks), len(slices), perSlice, took.Round(100*time.Millisecond), fmtWrites(first))

	time.Sleep(2 * time.Second)
	before, _ := k8sSlices(t, a)
	n0 := len(a.Audit(t))
	time.Sleep(5 * time.Second)
	after, _ := k8sSlices(t, a)
	quiet := writes(a.Audit(t)[n0:])
	if !maps2Equal(rvs(before), rvs(after)) {
		t.Errorf("quiet rounds changed slices")
	}
	if w := objectWrites(quiet); w != 0 {
		t.Errorf("quiet rounds: %d object writes (%s), want 0", w, fmtWrites(quiet))
	}
	t.Logf("MEASURED: 5 s of quiet rounds with 10,000 servers: %s (object writes 0); test took %s", fmtWrites(quiet), time.Since(begin).Round(100*time.Millisecond))
}
