package k8s_test

// The Helm chart in a real single-node Kubernetes (e2e/internal/k8slab):
// the image imported into the node's containerd, the chart installed by
// real Helm in catalog mode against a three-server Consul, the bridge's
// whitelist pinned to a Linux bridge this test made (a hostNetwork pod is
// in the machine's root network namespace), servers in namespaces behind it.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8sh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

const k8sRelease = "udb"

func TestK8sChartInstall(t *testing.T) {
	k8slab.Require(t)
	dockerimg.Require(t)
	img := dockerimg.Build(t)
	c := k8slab.Start(t, k8slab.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	// The image, as `docker save` gives it, into the node's containerd.
	k8sh.ImportImage(ctx, t, c, img.Tag)

	// A Linux bridge in the root namespace (where the hostNetwork pod
	// lives), Consul servers and bridge servers in namespaces behind it.
	lab := netns.New(t)
	sub := lab.HostSubnet()
	base := sub.Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], last}).String() }
	br := lab.HostBridge("k8s", ip(1)+"/24")
	cl := consulcluster.Start(t, lab, br, consulcluster.Options{Subnet: sub.String()})
	consul := cl.Client(0)
	var want []string
	for i := range 3 {
		sip := ip(byte(31 + i))
		h := lab.Host(fmt.Sprintf("s%d", i), br, sip+"/24")
		harness.Respond(t, h, 1, "--ip", sip)
		want = append(want, harness.ServerID("django", sip, 8000))
	}
	bridgebin.Path(t)

	repo, tag, _ := strings.Cut(img.Tag, ":")
	metricsPort := harness.FreePort(t)
	values := filepath.Join(t.TempDir(), "values.yaml")
	writeValues := func(extraTags string) {
		v := fmt.Sprintf(`image:
  repository: %s
  tag: %q
  pullPolicy: Never
metrics:
  port: %d
config:
  consul_addr: %q
  interfaces_whitelist: [%q]
  interval: 1s
  timeout: 0.5
  consul_deregister_after: 10s
  consul_tags: [%s]
  log_level: debug
`, repo, tag, metricsPort, strings.Join(cl.HTTPAddrs(), ","), br.Dev, extraTags)
		if err := os.WriteFile(values, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeValues(`"v1"`)

	// The schema and the validation template refuse bad values before
	// anything reaches the cluster: interval=1ns once installed a pod that
	// crash-looped while helm said deployed.
	for _, bad := range [][]string{{"--set", "foo=bar"}, {"--set", "config.discovery_port=ninety"}, {"--set", "config.interval=1ns"}} {
		if out, err := k8sh.Helm(t, c.Kubeconfig(), append([]string{"install", "bad", harness.ChartDir(t), "-f", values}, bad...)...); err == nil {
			t.Errorf("helm install %v succeeded: %s", bad, out)
		}
	}

	// The API server accepts every rendered object of each representative
	// values set (server-side dry run; the Prometheus operator's CRDs are
	// stood in for by minimal ones).
	if out, err := c.KubectlIn(ctx, strings.NewReader(monitoringCRDs), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply stand-in monitoring CRDs: %v\n%s", err, out)
	}
	harness.Wait(t, 30*time.Second, "CRDs established", func() (bool, string) {
		out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "crd/podmonitors.monitoring.coreos.com", "--timeout=5s")
		return err == nil, out
	})
	for _, set := range [][]string{
		nil,
		{"--set", "config.consul_mode=agent", "--set", "config.consul_deregister_after=1m"}, // agent mode's floor
		{"--set", "config.encryption_enabled=true", "--set", "secretKey.existingSecret=fernet", "--set", "consulToken.existingSecret=acl"},
		{"--set", "config.encryption_enabled=true", "--set", "secretKey.value=x", "--set", "consulToken.value=y"},
		{"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true"},
		{"--set", "netAdmin=true", "--set", "serviceAccount.create=true"},
	} {
		rendered, err := k8sh.Helm(t, c.Kubeconfig(), append([]string{"template", k8sRelease, harness.ChartDir(t), "-f", values}, set...)...)
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", set, err, rendered)
		}
		if out, err := c.KubectlIn(ctx, strings.NewReader(rendered), "apply", "--dry-run=server", "-f", "-"); err != nil {
			t.Errorf("the API server refuses the objects rendered with %v: %v\n%s", set, err, out)
		}
	}

	start := time.Now()
	if out, err := k8sh.Helm(t, c.Kubeconfig(), "install", k8sRelease, harness.ChartDir(t), "-f", values, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	ds := "ds/" + k8sRelease + "-udp-discovery-bridge"
	if out, err := c.Kubectl(ctx, "rollout", "status", ds, "--timeout", "120s"); err != nil {
		t.Fatalf("rollout status: %v\n%s", err, out)
	}
	t.Logf("MEASURED: helm install to rollout complete: %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.Kubectl(context.Background(), "logs", "-l", "app.kubernetes.io/instance="+k8sRelease, "--tail", "80")
			t.Logf("pod logs:\n%s", out)
		}
	})

	// Ready through the kubelet's probes; the container runs as 65532 with
	// a read-only root and no capability.
	out, err := c.Kubectl(ctx, "get", "pods", "-l", "app.kubernetes.io/instance="+k8sRelease, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var pods struct {
		Items []struct {
			Spec struct {
				HostNetwork bool `json:"hostNetwork"`
				Containers  []struct {
					SecurityContext struct {
						RunAsUser              *int64 `json:"runAsUser"`
						ReadOnlyRootFilesystem *bool  `json:"readOnlyRootFilesystem"`
					} `json:"securityContext"`
				} `json:"containers"`
			} `json:"spec"`
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v %s", err, out)
	}
	ready := false
	for _, cond := range pods.Items[0].Status.Conditions {
		ready = ready || (cond.Type == "Ready" && cond.Status == "True")
	}
	if !ready || !pods.Items[0].Spec.HostNetwork {
		t.Errorf("pod Ready=%v hostNetwork=%v", ready, pods.Items[0].Spec.HostNetwork)
	}
	procs := k8sh.BridgeProcs()
	if len(procs) != 1 {
		t.Fatalf("%d processes run /bridge run, want 1: %v", len(procs), procs)
	}
	p := procs[0]
	if !strings.HasPrefix(p["Uid"], "65532\t") || p["CapEff"] != "0000000000000000" || p["CapPrm"] != "0000000000000000" || p["NoNewPrivs"] != "1" {
		t.Errorf("the bridge process: Uid %q CapEff %q CapPrm %q NoNewPrivs %q; want 65532, no capabilities, no new privileges",
			p["Uid"], p["CapEff"], p["CapPrm"], p["NoNewPrivs"])
	}
	if mounts, err := os.ReadFile(filepath.Join("/proc", p["pid"], "mounts")); err == nil {
		first := strings.SplitN(string(mounts), "\n", 2)[0]
		if f := strings.Fields(first); len(f) < 4 || f[1] != "/" || !strings.HasPrefix(f[3], "ro") {
			t.Errorf("the container's root is not mounted read-only: %q", first)
		}
	}

	// The servers, once each, passing.
	lc := &catalogh.Lab{T: t, Consul: consul}
	took := lc.WaitCatalog(60*time.Second, "the servers in the catalog", catalogh.All("passing", want))
	t.Logf("MEASURED: 3 servers in the catalog, once each, passing, %s after the rollout", took.Round(100*time.Millisecond))

	// helm upgrade with a changed value rolls the pod; nothing goes missing.
	poll := lc.Poll(catalogh.All("passing", want))
	writeValues(`"v2"`)
	if out, err := k8sh.Helm(t, c.Kubeconfig(), "upgrade", k8sRelease, harness.ChartDir(t), "-f", values, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "rollout", "status", ds, "--timeout", "120s"); err != nil {
		t.Fatalf("rollout status after upgrade: %v\n%s", err, out)
	}
	harness.Wait(t, 60*time.Second, "tag v2 on every server", func() (bool, string) {
		_, byID, _, err := catalogh.Entries(t, consul)
		if err != nil {
			return false, err.Error()
		}
		for _, id := range want {
			e := byID[id]
			if e == nil || !strings.Contains(strings.Join(e.Service.Tags, ","), "v2") {
				return false, fmt.Sprintf("%s: %v", id, e)
			}
		}
		return true, ""
	})
	reads, missing, critical, _ := poll.Finish()
	if len(missing) > 0 {
		t.Errorf("helm upgrade: servers missing in %d of %d catalog reads: %v", len(missing), reads, missing[:min(10, len(missing))])
	}
	t.Logf("MEASURED: helm upgrade rolled the pod; %d catalog reads at 100 ms: %d missing, %d not passing", reads, len(missing), len(critical))

	// helm uninstall removes every Kubernetes object of the release.
	if out, err := k8sh.Helm(t, c.Kubeconfig(), "uninstall", k8sRelease, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	harness.Wait(t, 60*time.Second, "no object of the release left", func() (bool, string) {
		out, err := c.Kubectl(ctx, "get", "all,secrets,serviceaccounts,configmaps", "-l", "app.kubernetes.io/instance="+k8sRelease, "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", out
	})
	harness.Wait(t, 30*time.Second, "the bridge process gone", func() (bool, string) {
		n := len(k8sh.BridgeProcs())
		return n == 0, strconv.Itoa(n)
	})
	// In catalog mode the entries are the catalog's: with every bridge gone
	// nothing removes them (README, Catalog mode).
	st, _, _, err := catalogh.Entries(t, consul)
	t.Logf("after helm uninstall the catalog holds %v (%v): the last state stays until a bridge returns", st, err)
}

// monitoringCRDs stand in for the Prometheus operator's ServiceMonitor and
// PodMonitor definitions, so that a server-side dry run can accept them.
const monitoringCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: podmonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, listKind: PodMonitorList, plural: podmonitors, singular: podmonitor}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`
