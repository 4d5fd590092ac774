package k8slab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

// TestK8sBinaries builds (or finds cached) the lab's binaries and checks
// their versions. scripts/test.sh runs it before the end-to-end tests so the
// first, minutes-long build does not compete with timing-sensitive tests.
func TestK8sBinaries(t *testing.T) {
	b := Build(t)
	if len(b.Built) > 0 {
		t.Logf("cold build of %s: %s", strings.Join(b.Built, ", "), b.BuildTime.Round(time.Second))
	}
	for _, c := range []struct {
		bin  string
		args []string
		want string
	}{
		{b.APIServer, []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{b.ControllerManager, []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{b.Scheduler, []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{b.Kubelet, []string{"--version"}, "Kubernetes " + KubernetesVersion},
		{b.Kubectl, []string{"version", "--client"}, "Client Version: " + KubernetesVersion},
		{b.Etcd, []string{"--version"}, "etcd Version: " + strings.TrimPrefix(EtcdVersion, "v")},
	} {
		out, err := exec.Command(c.bin, c.args...).CombinedOutput()
		if err != nil {
			t.Errorf("%s %v: %v\n%s", c.bin, c.args, err, out)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s %v printed %q, want %q", c.bin, c.args, out, c.want)
		}
	}
	if !toolbuild.IsExecutable(b.CNIBinDir + "/loopback") {
		t.Errorf("no CNI loopback plugin in %s", b.CNIBinDir)
	}
}

// TestK8sLabSmoke starts the cluster, imports an image, runs a hostNetwork
// pod of it (imagePullPolicy Never) to Running and Ready, deletes it, and
// stops the cluster, logging how long each part took and the memory used.
func TestK8sLabSmoke(t *testing.T) {
	c := Start(t, Options{})
	st := c.Stats()
	if len(st.Built) > 0 {
		t.Logf("cold build of %s: %s", strings.Join(st.Built, ", "), st.BuildTime.Round(time.Second))
	}
	t.Logf("start to node %s Ready: %s", c.NodeName(), st.StartTime.Round(10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	out, err := c.Kubectl(ctx, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ServerVersion struct{ GitVersion string }
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ServerVersion.GitVersion != KubernetesVersion {
		t.Fatalf("server version %q (%v), want %s", v.ServerVersion.GitVersion, err, KubernetesVersion)
	}

	// An image of the test's own, imported through a pipe.
	const image = "localhost/udb-k8slab/smoke:v1"
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteStaticImage(pw, image, c.PauseBinary())) }()
	if err := c.ImportImage(ctx, pr); err != nil {
		t.Fatal(err)
	}

	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: smoke
  namespace: default
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 5
  containers:
  - name: smoke
    image: %s
    imagePullPolicy: Never
`, image)
	podStart := time.Now()
	if _, err := c.KubectlIn(ctx, strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Ready", "pod/smoke", "--timeout=120s"); err != nil {
		desc, _ := c.Kubectl(ctx, "describe", "pod", "smoke")
		t.Fatalf("%v\n%s", err, desc)
	}
	t.Logf("pod created to Ready: %s", time.Since(podStart).Round(10*time.Millisecond))
	out, err = c.Kubectl(ctx, "get", "pod", "smoke", "-o", "jsonpath={.status.phase} {.spec.nodeName} {.status.podIP}")
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(out); len(f) < 2 || f[0] != "Running" || f[1] != c.NodeName() {
		t.Fatalf("pod status %q, want Running on %s", out, c.NodeName())
	}
	t.Logf("pod: %s", out)
	// The apiserver -> kubelet path (kubelet serving certificate, webhook
	// authorization): the pause program prints nothing, but the call must
	// succeed.
	if _, err := c.Kubectl(ctx, "logs", "pod/smoke"); err != nil {
		t.Fatal(err)
	}

	total, by := c.Memory()
	t.Logf("memory (RSS) with the pod running: %d MiB in all; %s", total>>20, formatMem(by))

	delStart := time.Now()
	if _, err := c.Kubectl(ctx, "delete", "pod", "smoke", "--timeout=60s"); err != nil {
		t.Fatal(err)
	}
	t.Logf("pod deleted in %s", time.Since(delStart).Round(10*time.Millisecond))

	// A DaemonSet (controller-manager and scheduler at work) left running:
	// the teardown deletes it and its pod.
	ds := fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: smoke-ds
  namespace: default
spec:
  selector:
    matchLabels: {app: smoke-ds}
  template:
    metadata:
      labels: {app: smoke-ds}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 5
      containers:
      - name: pause
        image: %s
        imagePullPolicy: Never
`, PauseImage)
	dsStart := time.Now()
	if _, err := c.KubectlIn(ctx, strings.NewReader(ds), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "rollout", "status", "daemonset/smoke-ds", "--timeout=120s"); err != nil {
		t.Fatal(err)
	}
	t.Logf("daemonset created to rolled out: %s", time.Since(dsStart).Round(10*time.Millisecond))

	c.Stop()
	t.Logf("teardown (with the DaemonSet's pod running): %s", c.Stats().StopTime.Round(10*time.Millisecond))
	if left := pidsMentioning(c.Dir() + "/"); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
	if left := mountsUnder(c.Dir()); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
	if left := kubepodsDirs(); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

func formatMem(by map[string]int64) string {
	var parts []string
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "containerd", "shims", "pods"} {
		parts = append(parts, fmt.Sprintf("%s %d", name, by[name]>>20))
	}
	return strings.Join(parts, ", ")
}
