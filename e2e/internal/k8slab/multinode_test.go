package k8slab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestK8sMultiLab starts a two-node lab, runs a hostNetwork DaemonSet on
// it and checks that each node's pod runs in that node's network namespace;
// then fails one node: its processes are gone, the Node turns NotReady and
// its DaemonSet pod stays in the API. The teardown leaves nothing.
func TestK8sMultiLab(t *testing.T) {
	lab := netns.New(t)
	lan := lab.Bridge("lan")
	c := StartMulti(t, MultiOptions{Lab: lab, Nodes: []NodeSpec{
		{Name: "node1", LAN: lan, LANAddr: "10.213.41.21/24"},
		{Name: "node2", LAN: lan, LANAddr: "10.213.41.22/24"},
	}})
	st := c.Stats()
	t.Logf("MEASURED: two-node lab, start to every node Ready: %s", st.StartTime.Round(10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ds := fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: multi
  namespace: default
spec:
  selector:
    matchLabels: {app: multi}
  template:
    metadata:
      labels: {app: multi}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 5
      containers:
      - name: pause
        image: %s
        imagePullPolicy: Never
`, PauseImage)
	// podsOn counts the DaemonSet's pods by node, and those Ready.
	podsOn := func() (all, ready map[string]int) {
		out, err := c.Kubectl(ctx, "get", "pods", "-l", "app=multi", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var pods struct {
			Items []struct {
				Spec   struct{ NodeName string } `json:"spec"`
				Status struct {
					Conditions []struct{ Type, Status string } `json:"conditions"`
				} `json:"status"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &pods); err != nil {
			t.Fatal(err)
		}
		all, ready = map[string]int{}, map[string]int{}
		for _, p := range pods.Items {
			all[p.Spec.NodeName]++
			for _, cond := range p.Status.Conditions {
				if cond.Type == "Ready" && cond.Status == "True" {
					ready[p.Spec.NodeName]++
				}
			}
		}
		return all, ready
	}
	begin := time.Now()
	if _, err := c.KubectlIn(ctx, strings.NewReader(ds), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// (rollout status may report a DaemonSet done before its controller
	// has counted the nodes: wait for the pods themselves.)
	for {
		all, ready := podsOn()
		if len(all) == 2 && all["node1"] == 1 && all["node2"] == 1 && ready["node1"] == 1 && ready["node2"] == 1 {
			break
		}
		if time.Since(begin) > 2*time.Minute {
			t.Fatalf("pods by node %v, Ready %v; want one Ready on each of node1 and node2", all, ready)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("MEASURED: DaemonSet created to a Ready pod on each of 2 nodes: %s", time.Since(begin).Round(10*time.Millisecond))

	// Every process of a node's pods (in its cgroup root) is in the
	// node's network namespace.
	for _, n := range c.Nodes() {
		want := netnsInode(t, "/run/netns/"+n.Host().NS)
		pids := cgroupPIDs(n.cgroup)
		if len(pids) == 0 {
			t.Fatalf("node %s: no process in cgroup %s", n.Name(), n.cgroup)
		}
		for _, pid := range pids {
			if got := netnsInode(t, fmt.Sprintf("/proc/%d/ns/net", pid)); got != want {
				t.Errorf("node %s: pod process %d is in network namespace %d, want the node's %d", n.Name(), pid, got, want)
			}
		}
		for _, name := range []string{"kubelet", "containerd"} {
			p := n.proc(name)
			if got := netnsInode(t, fmt.Sprintf("/proc/%d/ns/net", p.cmd.Process.Pid)); got != want {
				t.Errorf("node %s: %s is in network namespace %d, want the node's %d", n.Name(), name, got, want)
			}
		}
		t.Logf("node %s (%s, LAN %s): %d pod processes in its namespace", n.Name(), n.IP(), n.LANDev(), len(pids))
	}

	// The control plane listens on the management bridge's address
	// (apiserver) and on loopback (the rest), nowhere else; every node's
	// namespace reaches the apiserver.
	apiHost := strings.TrimPrefix(c.APIServerURL(), "https://")
	apiIP, _, _ := strings.Cut(apiHost, ":")
	if !c.ManagementSubnet().Contains(netip.MustParseAddr(apiIP)) {
		t.Errorf("apiserver at %s, not on the management network %s", apiHost, c.ManagementSubnet())
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		addrs := listening(t, c.proc(name).cmd.Process.Pid)
		if len(addrs) == 0 {
			t.Errorf("%s listens on nothing", name)
		}
		for _, a := range addrs {
			if ip := a.Addr().Unmap(); !ip.IsLoopback() && ip.String() != apiIP {
				t.Errorf("%s listens on %s: want only loopback or the management address %s", name, a, apiIP)
			}
		}
	}
	for _, n := range c.Nodes() {
		conn, err := netns.Dial(ctx, n.Host().NS, "tcp", apiHost)
		if err != nil {
			t.Errorf("node %s cannot reach the apiserver at %s: %v", n.Name(), apiHost, err)
			continue
		}
		conn.Close()
	}

	total, by := c.Memory()
	t.Logf("MEASURED: memory (RSS) of the two-node lab with its DaemonSet: %d MiB in all; %s", total>>20, formatMemMulti(by))

	// node1 fails.
	n1 := c.Node("node1")
	failed := time.Now()
	if err := c.FailNode("node1"); err != nil {
		t.Fatal(err)
	}
	if left := pidsMentioning(n1.dir + "/"); len(left) > 0 {
		t.Errorf("node1's processes still running after FailNode: %v", left)
	}
	if left := cgroupPIDs(n1.cgroup); len(left) > 0 {
		t.Errorf("node1's pod processes still running after FailNode: %v", left)
	}
	wctx, wcancel := context.WithTimeout(ctx, NodeGrace+30*time.Second)
	status, err := c.WaitNodeNotReady(wctx, "node1")
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED: node1 failed; NotReady (Ready=%s) %s later (grace %s)", status, time.Since(failed).Round(100*time.Millisecond), NodeGrace)
	if st, _, err := c.NodeReady("node2"); err != nil || st != "True" {
		t.Errorf("node2 Ready=%s (%v), want True", st, err)
	}
	if by, _ := podsOn(); by["node1"] != 1 || by["node2"] != 1 {
		t.Errorf("pods by node after node1 failed: %v; want its pod still in the API", by)
	}

	c.Stop()
	t.Logf("teardown: %s", c.Stats().StopTime.Round(10*time.Millisecond))
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

func netnsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		if os.IsNotExist(err) {
			t.Fatalf("%s: %v", path, err)
		}
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

func formatMemMulti(by map[string]int64) string {
	var parts []string
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node1-kubelet", "node1-containerd", "node2-kubelet", "node2-containerd", "shims", "pods"} {
		parts = append(parts, fmt.Sprintf("%s %d", name, by[name]>>20))
	}
	return strings.Join(parts, ", ")
}

// TestK8sMultiLeftoverNetworks: what a multi-node lab of a dead test
// process left in the network (its nodes' namespaces, the management bridge
// and its iptables rule) is removed by the next lab's leftover cleanup.
func TestK8sMultiLeftoverNetworks(t *testing.T) {
	netns.Require(t)
	ip, err := lookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	ns, dev := "ude-k8sleft-"+suffix, "k8sl"+suffix
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	run(ip, "netns", "add", ns)
	run(ip, "link", "add", dev, "type", "bridge")
	ipt, iptErr := lookPath("iptables")
	if iptErr == nil {
		run(ipt, "-I", "FORWARD", "1", "-i", dev, "-o", dev, "-j", "ACCEPT")
	}
	t.Cleanup(func() { // only if the test failed to remove them
		_ = exec.Command(ip, "netns", "del", ns).Run()
		_ = exec.Command(ip, "link", "del", dev).Run()
		if iptErr == nil {
			_ = exec.Command(ipt, "-D", "FORWARD", "-i", dev, "-o", dev, "-j", "ACCEPT").Run()
		}
	})
	if errs := removeNetworks(record{NodeNetns: []string{ns, "ude-gone-" + suffix}, MgmtDev: dev}); len(errs) > 0 {
		t.Fatalf("removeNetworks: %v", errs)
	}
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Errorf("namespace %s left", ns)
	}
	if _, err := os.Stat("/sys/class/net/" + dev); err == nil {
		t.Errorf("device %s left", dev)
	}
	if iptErr == nil {
		if err := exec.Command(ipt, "-C", "FORWARD", "-i", dev, "-o", dev, "-j", "ACCEPT").Run(); err == nil {
			t.Errorf("iptables rule for %s left", dev)
		}
	}
}

// listening returns the TCP addresses the process listens on (ss -ltnp in
// the test's namespace).
func listening(t *testing.T, pid int) []netip.AddrPort {
	t.Helper()
	ss, err := lookPath("ss")
	if err != nil {
		t.Skipf("no ss: %v", err)
	}
	out, err := exec.Command(ss, "-H", "-ltnp").Output()
	if err != nil {
		t.Fatalf("ss -ltnp: %v", err)
	}
	var addrs []netip.AddrPort
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.Contains(line, fmt.Sprintf("pid=%d,", pid)) {
			continue
		}
		local := f[3]
		if strings.HasPrefix(local, "*:") {
			local = "[::]" + local[1:] // every address
		}
		a, err := netip.ParseAddrPort(local)
		if err != nil {
			t.Errorf("ss: local address %q of pid %d: %v", f[3], pid, err)
			continue
		}
		addrs = append(addrs, a)
	}
	return addrs
}
