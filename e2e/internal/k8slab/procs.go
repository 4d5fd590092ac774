package k8slab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// proc is one process of the lab.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	// host, bin and args are how it was started (restartDuringStart).
	host *netns.Host
	bin  string
	args []string
}

// run starts a process of the lab with its output in <dir>/logs/<name>.log.
// It gets SIGKILL should the test process die first.
func (c *Cluster) run(name, bin string, args ...string) error {
	return c.runIn(nil, name, bin, args...)
}

// runIn is run in the network namespace of host (nil: the test's). The
// process joins that namespace only (nsenter --net, which execs it, so the
// PID is the process's own): `ip netns exec` would also give it a mount
// namespace of its own with a fresh /sys, hiding the cgroup hierarchies from
// the kubelet and its volume mounts from containerd.
func (c *Cluster) runIn(host *netns.Host, name, bin string, args ...string) error {
	logPath := filepath.Join(mkdir(filepath.Join(c.dir, "logs")), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	if host != nil {
		cmd = exec.Command(c.nsenter, append([]string{"--net=/run/netns/" + host.NS, "--", bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = c.dir
	// The kubelet runs mount, containerd runs runc and its shim: make sure
	// the system directories are on PATH whatever the test's.
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{}), host: host, bin: bin, args: args}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return nil
}

// exited returns a process of the lab that has exited, if any.
func (c *Cluster) exited() *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		select {
		case <-p.done:
			return p
		default:
		}
	}
	return nil
}

func (c *Cluster) proc(name string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM to the process, and SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Memory returns the resident memory of the lab's processes in bytes: the
// components by name, plus "shims" (containerd's shims) and "pods" (the
// processes in the lab's kubepods cgroups).
func (c *Cluster) Memory() (total int64, by map[string]int64) {
	by = map[string]int64{}
	c.mu.Lock()
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		default:
		}
		by[p.name] += rss(p.cmd.Process.Pid)
	}
	for _, n := range c.nodes {
		for _, pid := range pidsMentioning(n.ctrSock) {
			by["shims"] += rss(pid)
		}
	}
	for _, pid := range kubepodsPIDs() {
		by["pods"] += rss(pid)
	}
	for _, v := range by {
		total += v
	}
	return total, by
}

// rss is a process's resident set size in bytes (0 when it is gone).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// dumpLogs logs the tail of every component's log.
func (c *Cluster) dumpLogs() {
	c.mu.Lock()
	if c.logsDumped {
		c.mu.Unlock()
		return
	}
	c.logsDumped = true
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		b, err := os.ReadFile(p.log)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		c.t.Logf("k8slab: last lines of %s:\n%s", p.log, strings.Join(lines, "\n"))
	}
}

// maxStartRestarts bounds how often restartDuringStart starts one kubelet
// again.
const maxStartRestarts = 2

// restartDuringStart starts p again if it is a kubelet that exited by
// itself while the lab was starting, as a node's systemd unit does
// (Restart=on-failure): kubelet v1.34.4 may die at start-up of a race in
// its own code (fatal error: concurrent map iteration and map write in
// GetNodeAllocatableReservation, seen once in CI). Its log so far is kept
// as <name>.log.<n>. It reports whether p was started again.
func (c *Cluster) restartDuringStart(p *proc) (bool, error) {
	if !strings.HasSuffix(p.name, "kubelet") {
		return false, nil
	}
	c.mu.Lock()
	if c.restarts == nil {
		c.restarts = map[string]int{}
	}
	n := c.restarts[p.name]
	if n >= maxStartRestarts {
		c.mu.Unlock()
		return false, nil
	}
	c.restarts[p.name] = n + 1
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	kept := p.log + "." + strconv.Itoa(n+1)
	_ = os.Rename(p.log, kept)
	c.t.Logf("k8slab: %s exited while the lab was starting (%v; log %s); starting it again, as systemd would (%d of %d)", p.name, p.err, kept, n+1, maxStartRestarts)
	return true, c.runIn(p.host, p.name, p.bin, p.args...)
}
