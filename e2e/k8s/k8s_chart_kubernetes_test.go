package k8s_test

// The chart with the kubernetes sink in the real single-node Kubernetes of
// k8slab: installed by Helm, the pod writing the EndpointSlices through its
// service account and the chart's Role, and `helm uninstall` leaving
// nothing of ours.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8sh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

func TestK8sChartKubernetesSink(t *testing.T) {
	k8slab.Require(t)
	dockerimg.Require(t)
	img := dockerimg.Build(t)
	c := k8slab.Start(t, k8slab.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	k8sh.ImportImage(ctx, t, c, img.Tag)
	// The lab has no kube-proxy: the pod reaches the API server (on the
	// node's loopback: the pod is hostNetwork) at its own address.
	kc, err := os.ReadFile(c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`server: https://127\.0\.0\.1:(\d+)`).FindSubmatch(kc)
	if m == nil {
		t.Fatalf("no API server address in %s", c.Kubeconfig())
	}
	apiPort := string(m[1])

	lab := netns.New(t)
	sub := lab.HostSubnet()
	base := sub.Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], last}).String() }
	br := lab.HostBridge("k8s", ip(1)+"/24")
	var want []string
	var responders []*netns.Proc
	for i := range 3 {
		sip := ip(byte(31 + i))
		port := 8000 + i%2
		h := lab.Host(fmt.Sprintf("s%d", i), br, sip+"/24")
		responders = append(responders, harness.Respond(t, h, 1, "--ip", sip, "--app-port", fmt.Sprint(port)))
		want = append(want, fmt.Sprintf("%s:%d", sip, port))
	}
	// A second segment on the node, with a client and no server: the pod
	// relays onto it (relay_interfaces) from the EndpointSlices.
	rsub := lab.HostSubnet()
	rb := rsub.Addr().As4()
	rip := func(last byte) string { return netip.AddrFrom4([4]byte{rb[0], rb[1], rb[2], last}).String() }
	rbr := lab.HostBridge("rly", rip(1)+"/24")
	client := lab.Host("client", rbr, rip(50)+"/24")

	repo, tag, _ := strings.Cut(img.Tag, ":")
	values := filepath.Join(t.TempDir(), "values.yaml")
	v := fmt.Sprintf(`image:
  repository: %s
  tag: %q
  pullPolicy: Never
metrics:
  port: %d
extraEnv:
  - {name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}
  - {name: KUBERNETES_SERVICE_PORT, value: %q}
config:
  sinks: [kubernetes]
  interfaces_whitelist: [%q]
  relay_interfaces: [%q]
  interval: 1s
  timeout: 0.5
  k8s_lease_duration: 3s
  k8s_deregister_after: 4s
`, repo, tag, harness.FreePort(t), apiPort, br.Dev, rbr.Dev)
	if err := os.WriteFile(values, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := k8sh.Helm(t, c.Kubeconfig(), "install", k8sRelease, harness.ChartDir(t), "-f", values, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Logf("MEASURED: helm install (kubernetes sink) to rollout complete: %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.Kubectl(context.Background(), "logs", "-l", "app.kubernetes.io/instance="+k8sRelease, "--tail", "80")
			t.Logf("pod logs:\n%s", out)
		}
	})

	slices := func() (map[string]bool, error) {
		out, err := c.Kubectl(ctx, "get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=django", "-o", "json")
		if err != nil {
			return nil, err
		}
		var l struct{ Items []k8sSlice }
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			return nil, err
		}
		got := map[string]bool{}
		for _, s := range l.Items {
			for _, ep := range s.Endpoints {
				k := fmt.Sprintf("%s:%d", ep.Addresses[0], s.Ports[0].Port)
				if _, dup := got[k]; dup {
					return nil, fmt.Errorf("%s listed twice", k)
				}
				got[k] = ep.Conditions.Ready == nil || *ep.Conditions.Ready
			}
		}
		return got, nil
	}
	took := harness.Wait(t, 60*time.Second, "the three servers in the slices, ready", func() (bool, string) {
		got, err := slices()
		if err != nil {
			return false, err.Error()
		}
		for _, w := range want {
			if !got[w] {
				return false, fmt.Sprint(got)
			}
		}
		return len(got) == 3, fmt.Sprint(got)
	})
	t.Logf("MEASURED: the pod (service account, the chart's Role) wrote the 3 servers to the slices, once each, ready, %s after the rollout", took.Round(100*time.Millisecond))

	testK8sRelay(t, client, rip(1), slices, responders[0], want)

	// helm uninstall: the release's objects go, the Service with them, the
	// slices by their owner reference (the garbage collector), the Leases
	// and ConfigMaps by the bridge's SIGTERM.
	start = time.Now()
	if out, err := k8sh.Helm(t, c.Kubeconfig(), "uninstall", k8sRelease, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	harness.Wait(t, 60*time.Second, "nothing of ours left", func() (bool, string) {
		out, err := c.Kubectl(ctx, "get", "all,serviceaccounts,roles,rolebindings,configmaps,leases,endpointslices", "-n", "default", "-o", "name")
		if err != nil {
			return false, err.Error()
		}
		var left []string
		for _, name := range strings.Fields(out) {
			switch {
			case name == "service/kubernetes", name == "serviceaccount/default", name == "configmap/kube-root-ca.crt",
				strings.HasPrefix(name, "endpointslice.discovery.k8s.io/kubernetes"):
			default:
				left = append(left, name)
			}
		}
		return len(left) == 0, strings.Join(left, " ")
	})
	t.Logf("MEASURED: helm uninstall to nothing of ours left (Service, slices, Leases, ConfigMaps, Role, RoleBinding, ServiceAccount): %s", time.Since(start).Round(100*time.Millisecond))
}
