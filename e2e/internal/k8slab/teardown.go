package k8slab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	return record{Dir: c.dir, Sysctl: c.sysctl, Netns: c.netnsBefore, Created: c.created, PID: os.Getpid()}
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
	alive := func(name string) bool {
		p := c.proc(name)
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

	c.proc("kube-controller-manager").stop(10 * time.Second)
	mark("controller-manager")

	if alive("kube-apiserver") && alive("kubelet") {
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
	c.proc("kubelet").stop(10 * time.Second)
	mark("kubelet")

	if alive("containerd") {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if out, err := c.ctrOut(ctx, nil, "tasks", "ls", "--quiet"); err == nil {
			for _, id := range strings.Fields(out) {
				_ = c.ctr(ctx, nil, "tasks", "kill", "--signal", "SIGKILL", id)
				_ = c.ctr(ctx, nil, "tasks", "delete", "--force", id)
			}
		}
		if out, err := c.ctrOut(ctx, nil, "containers", "ls", "--quiet"); err == nil {
			for _, id := range strings.Fields(out) {
				_ = c.ctr(ctx, nil, "containers", "delete", id)
			}
		}
		cancel()
		mark("containers")
	}
	c.proc("containerd").stop(10 * time.Second)
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

// cgroupRoot is the kubelet's cgroupRoot: the lab's pods live in
// <hierarchy>/udb-k8slab/kubepods/..., apart from any other kubelet's
// kubepods, so the cleanup touches only the lab's.
const cgroupRoot = "udb-k8slab"

// makeCgroupRoot creates cgroupRoot in every hierarchy (the kubelet wants it
// to exist). A v1 cpuset cgroup starts with no CPUs and memory nodes: it
// gets its parent's.
func makeCgroupRoot() error {
	hier, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	if len(hier) == 0 { // cgroup v2 only
		hier = []string{"/sys/fs/cgroup/cgroup.procs"}
	}
	for _, h := range hier {
		parent := filepath.Dir(h)
		d := filepath.Join(parent, cgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(parent, f))
			if err != nil {
				continue
			}
			if cur, _ := os.ReadFile(filepath.Join(d, f)); strings.TrimSpace(string(cur)) != "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
				return fmt.Errorf("set %s/%s: %w", d, f, err)
			}
		}
	}
	return nil
}

// kubepodsDirs are the lab's cgroup trees (cgroupRoot) of every hierarchy.
func kubepodsDirs() []string {
	d1, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupRoot)
	d2, _ := filepath.Glob("/sys/fs/cgroup/" + cgroupRoot)
	return append(d1, d2...)
}

// kubepodsPIDs lists the processes in the lab's cgroups.
func kubepodsPIDs() []int {
	seen := map[int]bool{}
	var pids []int
	for _, root := range kubepodsDirs() {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] && pid != os.Getpid() {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeKubepods removes the lab's cgroup trees, deepest first.
func removeKubepods() []error {
	var errs []error
	for _, root := range kubepodsDirs() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			var err error
			for i := 0; i < 50; i++ { // a killed process leaves its cgroup a moment later
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errs
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) []error {
	var errs []error
	for pass := 0; pass < 5; pass++ {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, mp := range mps {
			if err := syscall.Unmount(mp, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
				if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
				}
			}
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %v", left))
	}
	return errs
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		mp := unescapeMount(f[1])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	// Deepest first; the same point mounted twice appears once per mount.
	slices.SortStableFunc(mps, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return mps
}

// unescapeMount decodes the octal escapes (\040 for a space) of
// /proc/self/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}
