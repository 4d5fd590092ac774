// Package k8slab runs a real Kubernetes for end-to-end tests, of one node or several:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet
// on a private containerd instance, all built from Go modules (see Build),
// with every file, socket and log under one test directory and no image
// pulled from anywhere.
//
// Start's node is the machine itself: a hostNetwork pod is in the machine's
// root network namespace. Whatever runs there must be confined by its own
// configuration (the bridge: its interface whitelist pinned to a test
// bridge). StartMulti's nodes are network namespaces of the test's
// netns.Lab, hosts on the test's LAN segments, each with its own containerd
// and kubelet started in it; FailNode fails one as a real node fails.
//
// Only one lab runs on a machine at a time (the kubelet owns host-wide
// cgroups and kernel settings): Start takes a machine-wide lock, cleans up
// after a crashed earlier run, and its teardown (registered with t.Cleanup,
// or Stop) stops every process by PID, unmounts what was mounted under the
// test directory, removes the cgroups the kubelets made (all under
// <hierarchy>/udb-k8slab, the cgroupRoot, or udb-k8slab/<node>) and restores
// the kernel settings the kubelet changed.
package k8slab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// PauseImage is the sandbox image every pod's sandbox runs: the static
// program ./pause packaged by WriteStaticImage and imported at Start.
const PauseImage = "localhost/udb-k8slab/pause:v1"

// Options configure Start. The zero value is usable.
type Options struct {
	// NodeName is the node's name (--hostname-override); default "udb-k8slab".
	NodeName string
	// ReadyTimeout bounds the wait, after the binaries are built, for the
	// node to be Ready; default 3 minutes.
	ReadyTimeout time.Duration
	// Dir holds all state; default t.TempDir(). Keep it short: containerd's
	// socket path must fit in 108 bytes. Should the test process die
	// without its teardown, the next Start removes it.
	Dir string
}

// Stats are the lab's measurements.
type Stats struct {
	Built     []string      // binaries Start had to build (cold cache)
	BuildTime time.Duration // how long that took
	StartTime time.Duration // first process started -> node Ready and default service account present
	StopTime  time.Duration // teardown, once Stop ran
}

// Cluster is a running lab. Its methods may be called from any goroutine.
type Cluster struct {
	t     testing.TB
	dir   string
	bins  Binaries
	nodes []*Node
	// multi is set for a multi-node lab (StartMulti): the nodes are
	// network namespaces, the apiserver listens on the management bridge.
	multi   bool
	apiAddr string // the apiserver's bind and advertise address
	mgmt    *netns.Bridge
	mgmtNet netip.Prefix

	kubeconfig string
	apiURL     string
	ctrBin     string
	nsenter    string
	pauseBin   string
	api        *http.Client

	mu          sync.Mutex
	procs       []*proc
	stats       Stats
	sysctl      map[string]string // kernel settings to restore
	netnsBefore []string
	created     []string        // host directories to remove (record.Created)
	failed      map[string]bool // nodes failed by FailNode
	restarts    map[string]int  // kubelets started again during start-up (restartDuringStart)

	unlock     func()
	stopOnce   sync.Once
	logsDumped bool
}

// Require skips the test when the lab cannot run here (not root; no
// containerd, ctr or runc), or fails it when the environment variable CI is
// "true" (netns.SkipOrFail). scripts/test.sh installs containerd and runc
// from Debian's packages.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		netns.SkipOrFail(t, "the Kubernetes lab needs root (euid %d)", os.Geteuid())
	}
	for _, tool := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2", "apt-get", "dpkg-deb", "mount"} {
		if _, err := lookPath(tool); err != nil {
			netns.SkipOrFail(t, "the Kubernetes lab needs %s (apt-get install containerd runc): %v", tool, err)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		netns.SkipOrFail(t, "the Kubernetes lab needs cgroups: %v", err)
	}
}

// Start builds (or finds cached) the binaries, starts the cluster and waits
// for its node to be Ready and the default service account to exist. Its
// teardown is registered with t.Cleanup. Failures are fatal to t.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	Require(t)
	if opts.NodeName == "" {
		opts.NodeName = "udb-k8slab"
	}
	c := newCluster(t, opts.Dir)
	c.apiAddr = "127.0.0.1"
	c.nodes = []*Node{{
		c: c, name: opts.NodeName, ip: hostIP(), dir: c.dir, cgroup: cgroupRoot,
		ctrSock: filepath.Join(c.dir, "containerd", "containerd.sock"),
	}}
	c.launch(opts.ReadyTimeout, nil)
	return c
}

// newCluster builds (or finds cached) the binaries and returns a cluster
// with its state in dir (default t.TempDir()) and no node yet.
func newCluster(t testing.TB, dir string) *Cluster {
	t.Helper()
	bins := Build(t)
	if dir == "" {
		dir = t.TempDir()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	c := &Cluster{t: t, dir: dir, bins: bins, sysctl: map[string]string{}, failed: map[string]bool{}}
	c.stats.Built, c.stats.BuildTime = bins.Built, bins.BuildTime
	if c.ctrBin, err = lookPath("ctr"); err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	return c
}

// launch takes the machine-wide lock, cleans up after a crashed earlier
// lab, has setup (when not nil) create what the nodes need on the host (it
// runs holding the lock; it may fail t), records what the teardown must
// undo, starts every component and waits for every node to be Ready.
func (c *Cluster) launch(readyTimeout time.Duration, setup func()) {
	t := c.t
	t.Helper()
	if readyTimeout == 0 {
		readyTimeout = 3 * time.Minute
	}
	unlock, err := lockMachine(t)
	if err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	c.unlock = unlock
	CleanupLeftovers(t.Logf)
	locked := true
	defer func() {
		if locked { // setup failed t before the teardown was registered
			unlock()
		}
	}()
	if setup != nil {
		setup()
	}
	for _, n := range c.nodes {
		if len(n.ctrSock)+len(".ttrpc") >= 108 {
			t.Fatalf("k8slab: state directory %s is too long for containerd's socket path", n.dir)
		}
	}
	// The kubelet changes these kernel settings (protectKernelDefaults is
	// false); teardown puts them back.
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"} {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			c.sysctl[k] = strings.TrimSpace(string(b))
		}
	}
	c.netnsBefore, _ = filepath.Glob("/run/netns/cni-*")
	for _, d := range hostDirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			c.created = append(c.created, d)
		}
	}
	if err := writeRecord(c.record()); err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	locked = false
	t.Cleanup(c.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	begin := time.Now()
	if err := c.start(ctx); err != nil {
		c.dumpLogs()
		t.Fatalf("k8slab: %v", err)
	}
	c.mu.Lock()
	c.stats.StartTime = time.Since(begin)
	c.mu.Unlock()
}

// Kubeconfig is the path of a kubeconfig with cluster-admin rights
// (group system:masters).
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// NodeName is the name of the cluster's (first) node.
func (c *Cluster) NodeName() string { return c.nodes[0].name }

// NodeIP is the (first) node's InternalIP (for the single-node lab the
// machine's own address), or "" when the kubelet chose it.
func (c *Cluster) NodeIP() string { return c.nodes[0].ip }

// Nodes are the cluster's nodes, in the order they were asked for.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// Dir is the directory holding all of the cluster's state and logs.
func (c *Cluster) Dir() string { return c.dir }

// Binaries are the binaries the cluster runs.
func (c *Cluster) Binaries() Binaries { return c.bins }

// ContainerdSocket is the address of the (first) node's containerd (for
// ctr -a).
func (c *Cluster) ContainerdSocket() string { return c.nodes[0].ctrSock }

// Stats returns the lab's measurements so far.
func (c *Cluster) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Kubectl runs the built kubectl against the cluster and returns its
// standard output; the error carries standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlIn(ctx, nil, args...)
}

// KubectlIn is Kubectl with stdin (for `apply -f -`).
func (c *Cluster) KubectlIn(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.bins.Kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// ImportImage imports an image archive (OCI layout or `docker save`
// output) into every node's containerd (but a failed node's), namespace
// k8s.io, where the kubelet finds it; pods then use it with imagePullPolicy
// Never or IfNotPresent.
func (c *Cluster) ImportImage(ctx context.Context, archive io.Reader) error {
	nodes := c.liveNodes()
	if len(nodes) == 1 {
		return nodes[0].ImportImage(ctx, archive)
	}
	b, err := io.ReadAll(archive)
	if err != nil {
		return fmt.Errorf("read the image archive: %w", err)
	}
	for _, n := range nodes {
		if err := n.ImportImage(ctx, bytes.NewReader(b)); err != nil {
			return fmt.Errorf("node %s: %w", n.name, err)
		}
	}
	return nil
}

// ImportImageFile is ImportImage of an archive file.
func (c *Cluster) ImportImageFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.ImportImage(ctx, f)
}

// PauseBinary is the static pause program the sandbox image holds; with
// WriteStaticImage a test can package it under another name.
func (c *Cluster) PauseBinary() string { return c.pauseBin }

func httpGet(client *http.Client, url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

func httpOK(client *http.Client, url string) error {
	_, err := httpGet(client, url)
	return err
}

// hostIP is the address the machine would use towards the outside (its
// default route), which the kubelet would pick as the node's InternalIP
// anyway; "" when there is none. No packet is sent.
func hostIP() string {
	conn, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return ""
	}
	defer conn.Close()
	ip := conn.LocalAddr().(*net.UDPAddr).IP
	if ip.IsLoopback() {
		return ""
	}
	return ip.String()
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if toolbuild.IsExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or /usr/sbin, /sbin", name)
}
