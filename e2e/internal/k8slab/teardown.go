package k8slab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

// runDir holds the machine-wide lock and the record of the running lab. It
// is on tmpfs: after a reboot nothing of a lab is running anyway.
const runDir = "/run/udp-discovery-bridge/k8slab"

// record is what a crashed run leaves for the next one to clean up.
type record struct {
	Dir    string            `json:"dir"`
	Sysctl map[string]string `json:"sysctl"` // kernel settings before the kubelet started
	Netns  []string          `json:"netns"`  // /run/netns/cni-* present before the lab started
	// Created are host directories the kubelet makes whatever its root
	// directory (it has /var/lib/kubelet/device-plugins hard-coded) that
	// did not exist before the lab started.
	Created []string `json:"created"`
	PID     int      `json:"pid"`
	// NodeNetns and MgmtDev are what a multi-node lab created in the test's
	// netns.Lab (the nodes' namespaces, the management bridge in the root
	// namespace): the Lab's teardown deletes them, CleanupLeftovers does
	// when the test process died.
	NodeNetns []string `json:"node_netns,omitempty"`
	MgmtDev   string   `json:"mgmt_dev,omitempty"`
}

// lockMachine takes the machine-wide lab lock, logging when it has to wait
// for another lab.
func lockMachine(t interface{ Logf(string, ...any) }) (func(), error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(runDir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		f.Close()
		return toolbuild.LockFile(path)
	}
	f.Close()
	t.Logf("k8slab: another lab holds %s; waiting for it", path)
	return toolbuild.LockFile(path)
}

// hostDirs are directories the kubelet creates outside its root directory,
// deepest first.
var hostDirs = []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/log/containers", "/var/log/pods"}

func (c *Cluster) record() record {
	r := record{Dir: c.dir, Sysctl: c.sysctl, Netns: c.netnsBefore, Created: c.created, PID: os.Getpid()}
	for _, n := range c.nodes {
		if n.host != nil {
			r.NodeNetns = append(r.NodeNetns, n.host.NS)
		}
	}
	if c.mgmt != nil {
		r.MgmtDev = c.mgmt.Dev
	}
	return r
}

func recordPath() string { return filepath.Join(runDir, "running.json") }

func writeRecord(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(recordPath(), b, 0o644)
}

// CleanupLeftovers undoes what a lab that died without its teardown (a
// killed test binary) left behind: its processes, mounts, kubepods cgroups,
// kernel settings and state directory. Start calls it, holding the
// machine-wide lock; call it only holding that lock or when no lab runs.
func CleanupLeftovers(logf func(string, ...any)) {
	b, err := os.ReadFile(recordPath())
	if err != nil {
		return
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Dir == "" || r.PID == os.Getpid() {
		_ = os.Remove(recordPath())
		return
	}
	logf("k8slab: cleaning up after an earlier lab (pid %d) in %s", r.PID, r.Dir)
	for _, err := range cleanupHost(r) {
		logf("k8slab: leftover cleanup: %v", err)
	}
	for _, err := range removeNetworks(r) {
		logf("k8slab: leftover cleanup: %v", err)
	}
	if err := os.RemoveAll(r.Dir); err != nil {
		logf("k8slab: leftover cleanup: %v", err)
	}
	if parent := filepath.Dir(r.Dir); strings.HasPrefix(filepath.Base(parent), "Test") {
		_ = os.Remove(parent) // t.TempDir's parent, when empty
	}
	_ = os.Remove(recordPath())
}

// Stop tears the cluster down; t.Cleanup calls it too, and later calls do
// nothing. Order: controller-manager (nothing recreates pods), the
// workloads and pods, kubelet, containerd's remaining tasks and containers,
// containerd, scheduler, apiserver, etcd; then leftover processes, mounts
// under the state directory (deepest first), kubepods cgroups, and the
// kernel settings the kubelet changed. What cannot be undone fails the
// test.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		begin := time.Now()
		if c.t.Failed() {
			c.dumpLogs()
		}
		errs := c.teardown()
		c.mu.Lock()
		c.stats.StopTime = time.Since(begin)
		c.mu.Unlock()
		for _, err := range errs {
			c.t.Errorf("k8slab teardown: %v", err)
		}
		if len(errs) == 0 {
			_ = os.Remove(recordPath())
		}
		c.unlock()
	})
}

func (c *Cluster) teardown() []error {
	alive := func(p *proc) bool {
		if p == nil {
			return false
		}
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	var steps []string
	last := time.Now()
	mark := func(step string) {
		steps = append(steps, fmt.Sprintf("%s %s", step, time.Since(last).Round(10*time.Millisecond)))
		last = time.Now()
	}
	defer func() { c.t.Logf("k8slab teardown: %s", strings.Join(steps, ", ")) }()
	// eachNode runs f for every node at once.
	eachNode := func(f func(n *Node)) {
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			wg.Add(1)
			go func() { defer wg.Done(); f(n) }()
		}
		wg.Wait()
	}

	c.proc("kube-controller-manager").stop(10 * time.Second)
	mark("controller-manager")

	// The single node's pods are deleted through the API, so its kubelet
	// tears them down. A multi-node lab skips that (a failed node's pods
	// would never go): its kubelets are stopped and the containers killed
	// through containerd, and the host cleanup does the rest.
	if !c.multi && alive(c.proc("kube-apiserver")) && alive(c.nodes[0].proc("kubelet")) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if _, err := c.Kubectl(ctx, "delete", "daemonsets,deployments,replicasets,statefulsets,jobs", "--all", "--all-namespaces", "--wait=false"); err != nil {
			c.t.Logf("k8slab teardown: %v", err)
		}
		if _, err := c.Kubectl(ctx, "delete", "pods", "--all", "--all-namespaces", "--grace-period=5", "--timeout=45s"); err != nil {
			c.t.Logf("k8slab teardown: %v", err)
		}
		cancel()
		mark("workloads")
	}
	eachNode(func(n *Node) { n.proc("kubelet").stop(10 * time.Second) })
	mark("kubelet")

	eachNode(func(n *Node) {
		if !alive(n.proc("containerd")) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := n.ctrOut(ctx, nil, "tasks", "ls", "--quiet"); err == nil {
			for _, id := range strings.Fields(out) {
				_ = n.ctr(ctx, nil, "tasks", "kill", "--signal", "SIGKILL", id)
				_ = n.ctr(ctx, nil, "tasks", "delete", "--force", id)
			}
		}
		if out, err := n.ctrOut(ctx, nil, "containers", "ls", "--quiet"); err == nil {
			for _, id := range strings.Fields(out) {
				_ = n.ctr(ctx, nil, "containers", "delete", id)
			}
		}
	})
	mark("containers")
	eachNode(func(n *Node) { n.proc("containerd").stop(10 * time.Second) })
	mark("containerd")
	c.proc("kube-scheduler").stop(10 * time.Second)
	c.proc("kube-apiserver").stop(10 * time.Second)
	c.proc("etcd").stop(10 * time.Second)
	mark("scheduler, apiserver, etcd")
	c.mu.Lock()
	for _, p := range c.procs { // anything else of ours
		go p.stop(time.Second)
	}
	c.mu.Unlock()

	errs := cleanupHost(c.record())
	mark("host cleanup")
	return errs
}

// cleanupHost removes what a lab in r.Dir leaves outside its processes:
// shims and pod processes, mounts under r.Dir, kubepods cgroups, network
// namespaces its containerd made, /var/log/containers links into r.Dir; and
// it restores the kernel settings.
func cleanupHost(r record) []error {
	var errs []error
	// Shim sockets live outside the state directory; note them first.
	var sockets []string
	addrs, _ := filepath.Glob(filepath.Join(r.Dir, "containerd", "state", "io.containerd.runtime.v2.task", "*", "*", "address"))
	nodeAddrs, _ := filepath.Glob(filepath.Join(r.Dir, "*", "containerd", "state", "io.containerd.runtime.v2.task", "*", "*", "address"))
	addrs = append(addrs, nodeAddrs...)
	for _, a := range addrs {
		if b, err := os.ReadFile(a); err == nil {
			if s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "unix://"); ok && strings.HasPrefix(s, "/run/containerd/s/") {
				sockets = append(sockets, s)
			}
		}
	}
	// Processes: any mentioning the directory (our components, the shims,
	// which carry containerd's socket path), then the pods' processes.
	if err := killAll(func() []int { return append(pidsMentioning(r.Dir+"/"), kubepodsPIDs()...) }); err != nil {
		errs = append(errs, err)
	}
	for _, s := range sockets {
		_ = os.Remove(s)
	}
	errs = append(errs, unmountUnder(r.Dir)...)
	errs = append(errs, removeKubepods()...)
	// Network namespaces the CRI made (cni-*) that were not there before.
	ns, _ := filepath.Glob("/run/netns/cni-*")
	for _, n := range ns {
		if slices.Contains(r.Netns, n) {
			continue
		}
		_ = syscall.Unmount(n, syscall.MNT_DETACH)
		if err := os.Remove(n); err != nil {
			errs = append(errs, err)
		}
	}
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, r.Dir+"/") {
			_ = os.Remove(l)
		}
	}
	for _, d := range r.Created { // deepest first
		if d == "/var/lib/kubelet/device-plugins" {
			_ = os.RemoveAll(d) // the kubelet's registration socket
		}
		_ = os.Remove(d) // only when empty
	}
	for k, v := range r.Sysctl {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", k, v, err))
		}
	}
	return errs
}

// killAll SIGKILLs the processes pids lists until it lists none (10 s).
func killAll(pids func() []int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := pids()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still running after SIGKILL: %v", left)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pidsMentioning lists the processes (not this one, not zombies) whose
// command line contains s.
func pidsMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 { // gone, or a zombie / kernel thread
			continue
		}
		if strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeNetworks deletes the network namespaces and the management bridge
// a multi-node lab of a dead test process left (the netns.Lab's teardown
// did not run), with the bridge's iptables rule (netns.Lab.HostBridge).
func removeNetworks(r record) []error {
	var errs []error
	ip, err := lookPath("ip")
	if err != nil {
		if len(r.NodeNetns) > 0 || r.MgmtDev != "" {
			errs = append(errs, err)
		}
		return errs
	}
	for _, ns := range r.NodeNetns {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", ns, err, strings.TrimSpace(string(out))))
		}
	}
	if r.MgmtDev != "" {
		if ipt, err := lookPath("iptables"); err == nil {
			_ = exec.Command(ipt, "-D", "FORWARD", "-i", r.MgmtDev, "-o", r.MgmtDev, "-j", "ACCEPT").Run()
		}
		if _, err := os.Stat("/sys/class/net/" + r.MgmtDev); err == nil {
			if out, err := exec.Command(ip, "link", "del", r.MgmtDev).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip link del %s: %w: %s", r.MgmtDev, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errs
}
