// Package k8slab runs a real single-node Kubernetes for end-to-end tests:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet
// on a private containerd instance, all built from Go modules (see Build),
// with every file, socket and log under one test directory and no image
// pulled from anywhere.
//
// The node is the machine itself: a hostNetwork pod is in the machine's root
// network namespace. Whatever runs there must be confined by its own
// configuration (the bridge: its interface whitelist pinned to a test
// bridge).
//
// Only one lab runs on a machine at a time (the kubelet owns host-wide
// cgroups and kernel settings): Start takes a machine-wide lock, cleans up
// after a crashed earlier run, and its teardown (registered with t.Cleanup,
// or Stop) stops every process by PID, unmounts what was mounted under the
// test directory, removes the cgroups the kubelet made (all under
// <hierarchy>/udb-k8slab, its cgroupRoot) and restores
// the kernel settings the kubelet changed.
package k8slab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	t        testing.TB
	dir      string
	bins     Binaries
	nodeName string
	nodeIP   string

	kubeconfig string
	apiURL     string
	ctrSock    string
	ctrBin     string
	pauseBin   string
	api        *http.Client

	mu          sync.Mutex
	procs       []*proc
	stats       Stats
	sysctl      map[string]string // kernel settings to restore
	netnsBefore []string
	created     []string // host directories to remove (record.Created)

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
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	bins := Build(t)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	c := &Cluster{t: t, dir: dir, bins: bins, nodeName: opts.NodeName, sysctl: map[string]string{}}
	c.stats.Built, c.stats.BuildTime = bins.Built, bins.BuildTime
	c.ctrSock = filepath.Join(dir, "containerd", "containerd.sock")
	if c.ctrBin, err = lookPath("ctr"); err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	if len(c.ctrSock)+len(".ttrpc") >= 108 {
		t.Fatalf("k8slab: state directory %s is too long for containerd's socket path", dir)
	}

	unlock, err := lockMachine(t)
	if err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	c.unlock = unlock
	CleanupLeftovers(t.Logf)
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
		unlock()
		t.Fatalf("k8slab: %v", err)
	}
	t.Cleanup(c.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), opts.ReadyTimeout)
	defer cancel()
	begin := time.Now()
	if err := c.start(ctx); err != nil {
		c.dumpLogs()
		t.Fatalf("k8slab: %v", err)
	}
	c.mu.Lock()
	c.stats.StartTime = time.Since(begin)
	c.mu.Unlock()
	return c
}

// Kubeconfig is the path of a kubeconfig with cluster-admin rights
// (group system:masters).
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// NodeName is the name of the cluster's only node.
func (c *Cluster) NodeName() string { return c.nodeName }

// NodeIP is the node's InternalIP (the machine's own address), or "" when
// the kubelet chose it.
func (c *Cluster) NodeIP() string { return c.nodeIP }

// Dir is the directory holding all of the cluster's state and logs.
func (c *Cluster) Dir() string { return c.dir }

// Binaries are the binaries the cluster runs.
func (c *Cluster) Binaries() Binaries { return c.bins }

// ContainerdSocket is the address of the node's containerd (for ctr -a).
func (c *Cluster) ContainerdSocket() string { return c.ctrSock }

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
// output) into the node's containerd, namespace k8s.io, where the kubelet
// finds it; pods then use it with imagePullPolicy Never or IfNotPresent.
func (c *Cluster) ImportImage(ctx context.Context, archive io.Reader) error {
	return c.ctr(ctx, archive, "images", "import", "-")
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

// ctr runs ctr against the node's containerd in namespace k8s.io.
func (c *Cluster) ctr(ctx context.Context, stdin io.Reader, args ...string) error {
	_, err := c.ctrOut(ctx, stdin, args...)
	return err
}

func (c *Cluster) ctrOut(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.ctrBin, append([]string{"--address", c.ctrSock, "--namespace", "k8s.io"}, args...)...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()+out.String()))
	}
	return out.String(), nil
}

// ports are the lab's listening ports, all free loopback ports at Start.
type ports struct {
	etcdClient, etcdPeer, apiserver, cm, scheduler, kubelet, kubeletHealthz, stream int
}

func (c *Cluster) start(ctx context.Context) error {
	var p ports
	for _, ptr := range []*int{&p.etcdClient, &p.etcdPeer, &p.apiserver, &p.cm, &p.scheduler, &p.kubelet, &p.kubeletHealthz, &p.stream} {
		n, err := freePort()
		if err != nil {
			return err
		}
		*ptr = n
	}
	c.nodeIP = hostIP()
	c.apiURL = fmt.Sprintf("https://127.0.0.1:%d", p.apiserver)

	// Certificates and kubeconfigs.
	pk, err := newPKI(filepath.Join(c.dir, "pki"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	saKey, saPub, err := pk.serviceAccountKeys()
	if err != nil {
		return fmt.Errorf("service-account keys: %w", err)
	}
	serving, err := pk.issue("apiserver", "kube-apiserver", nil, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.96.0.1")
	if err != nil {
		return err
	}
	kubeletHosts := []string{c.nodeName, "127.0.0.1", "localhost"}
	if c.nodeIP != "" {
		kubeletHosts = append(kubeletHosts, c.nodeIP)
	}
	kubeletServing, err := pk.issue("kubelet-serving", "system:node:"+c.nodeName, []string{"system:nodes"}, kubeletHosts...)
	if err != nil {
		return err
	}
	frontProxy, err := pk.issue("front-proxy-client", "front-proxy-client", nil)
	if err != nil {
		return err
	}
	apiKubeletClient, err := pk.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return err
	}
	kc := map[string][2]string{ // kubeconfig name -> CN, O
		"admin":              {"udb-k8slab-admin", "system:masters"},
		"controller-manager": {"system:kube-controller-manager", ""},
		"scheduler":          {"system:kube-scheduler", ""},
		"kubelet":            {"system:node:" + c.nodeName, "system:nodes"},
	}
	kubeconfigs := map[string]string{}
	var admin keyPair
	for name, id := range kc {
		var orgs []string
		if id[1] != "" {
			orgs = []string{id[1]}
		}
		kp, err := pk.issue(name, id[0], orgs)
		if err != nil {
			return err
		}
		if name == "admin" {
			admin = kp
		}
		path := filepath.Join(c.dir, name+".kubeconfig")
		if err := pk.kubeconfig(path, c.apiURL, kp); err != nil {
			return err
		}
		kubeconfigs[name] = path
	}
	c.kubeconfig = kubeconfigs["admin"]
	cert, err := tls.X509KeyPair(admin.CertPEM, admin.KeyPEM)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pk.caPEM())
	c.api = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots},
	}}

	// The pause image archive.
	c.pauseBin = filepath.Join(c.dir, "pause", "pause")
	if err := buildPause(c.pauseBin); err != nil {
		return err
	}

	// etcd and containerd first: neither needs the other.
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", p.etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", p.etcdPeer)
	etcdDir := filepath.Join(c.dir, "etcd")
	if err := os.Mkdir(etcdDir, 0o700); err != nil {
		return err
	}
	if err := c.run("etcd", c.bins.Etcd,
		"--name=k8slab", "--data-dir="+etcdDir,
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=k8slab="+peerURL, "--initial-cluster-state=new",
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return err
	}
	if err := c.startContainerd(p); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd healthy", func() error { return httpOK(http.DefaultClient, etcdURL+"/health") }); err != nil {
		return err
	}

	if err := c.run("kube-apiserver", c.bins.APIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", p.apiserver),
		"--cert-dir="+mkdir(filepath.Join(c.dir, "apiserver")),
		"--tls-cert-file="+serving.CertFile, "--tls-private-key-file="+serving.KeyFile,
		"--client-ca-file="+pk.caFile(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate="+apiKubeletClient.CertFile, "--kubelet-client-key="+apiKubeletClient.KeyFile,
		"--kubelet-certificate-authority="+pk.caFile(),
		// The aggregation layer's settings; without them the other
		// components log about a missing requestheader CA.
		"--requestheader-client-ca-file="+pk.caFile(),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+frontProxy.CertFile, "--proxy-client-key-file="+frontProxy.KeyFile,
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "containerd serving", func() error { return c.ctr(ctx, nil, "version") }); err != nil {
		return err
	}
	var archive bytes.Buffer
	if err := WriteStaticImage(&archive, PauseImage, c.pauseBin); err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	if err := c.ImportImage(ctx, &archive); err != nil {
		return fmt.Errorf("import pause image: %w", err)
	}
	if err := c.waitFor(ctx, "kube-apiserver ready", func() error { return httpOK(c.api, c.apiURL+"/readyz") }); err != nil {
		return err
	}

	if err := c.run("kube-controller-manager", c.bins.ControllerManager,
		"--kubeconfig="+kubeconfigs["controller-manager"],
		"--authentication-kubeconfig="+kubeconfigs["controller-manager"],
		"--authorization-kubeconfig="+kubeconfigs["controller-manager"],
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", p.cm),
		"--cert-dir="+mkdir(filepath.Join(c.dir, "controller-manager")),
		"--controllers=*,-nodeipam", "--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+saKey, "--root-ca-file="+pk.caFile(),
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.run("kube-scheduler", c.bins.Scheduler,
		"--kubeconfig="+kubeconfigs["scheduler"],
		"--authentication-kubeconfig="+kubeconfigs["scheduler"],
		"--authorization-kubeconfig="+kubeconfigs["scheduler"],
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", p.scheduler),
		"--cert-dir="+mkdir(filepath.Join(c.dir, "scheduler")),
		"--leader-elect=false", "--profiling=false",
	); err != nil {
		return err
	}

	if err := makeCgroupRoot(); err != nil {
		return err
	}
	kubeletDir := mkdir(filepath.Join(c.dir, "kubelet"))
	cfg := filepath.Join(c.dir, "kubelet-config.yaml")
	if err := os.WriteFile(cfg, []byte(kubeletConfig(c, p, pk.caFile(), kubeletServing)), 0o644); err != nil {
		return err
	}
	args := []string{
		"--config=" + cfg, "--kubeconfig=" + kubeconfigs["kubelet"],
		"--root-dir=" + kubeletDir, "--cert-dir=" + mkdir(filepath.Join(c.dir, "kubelet-pki")),
		"--hostname-override=" + c.nodeName, "--v=1",
	}
	if c.nodeIP != "" {
		args = append(args, "--node-ip="+c.nodeIP)
	}
	if err := c.run("kubelet", c.bins.Kubelet, args...); err != nil {
		return err
	}

	if err := c.waitFor(ctx, "node "+c.nodeName+" Ready", c.nodeReady); err != nil {
		return err
	}
	return c.waitFor(ctx, "service account default/default", func() error {
		return httpOK(c.api, c.apiURL+"/api/v1/namespaces/default/serviceaccounts/default")
	})
}

func (c *Cluster) startContainerd(p ports) error {
	d := mkdir(filepath.Join(c.dir, "containerd"))
	cniConf := mkdir(filepath.Join(c.dir, "cni", "net.d"))
	if err := os.WriteFile(filepath.Join(cniConf, "10-loopback.conflist"),
		[]byte(`{"cniVersion": "1.0.0", "name": "k8slab-loopback", "plugins": [{"type": "loopback"}]}`+"\n"), 0o644); err != nil {
		return err
	}
	runc, err := lookPath("runc")
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "%[6]d"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %[7]q
        Root = %[8]q
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[9]q
    conf_dir = %[10]q
    max_conf_num = 1
`, filepath.Join(d, "root"), filepath.Join(d, "state"), c.ctrSock, filepath.Join(d, "opt"),
		PauseImage, p.stream, runc, mkdir(filepath.Join(d, "runc")), c.bins.CNIBinDir, cniConf)
	cfgPath := filepath.Join(d, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	containerd, err := lookPath("containerd")
	if err != nil {
		return err
	}
	return c.run("containerd", containerd, "--config", cfgPath, "--log-level", "warn")
}

func kubeletConfig(c *Cluster, p ports, caFile string, serving keyPair) string {
	address := "127.0.0.1"
	if c.nodeIP != "" {
		address = c.nodeIP // the apiserver reaches the kubelet at the node's InternalIP
	}
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: /%s
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
podLogsDir: %s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "50Mi"
  nodefs.inodesFree: "1%%"
  imagefs.available: "50Mi"
  imagefs.inodesFree: "1%%"
`, c.ctrSock, cgroupRoot, address, p.kubelet, p.kubeletHealthz, serving.CertFile, serving.KeyFile, caFile, mkdir(filepath.Join(c.dir, "pod-logs")))
}

// nodeReady reports nil once the node's Ready condition is True.
func (c *Cluster) nodeReady() error {
	body, err := httpGet(c.api, c.apiURL+"/api/v1/nodes/"+c.nodeName)
	if err != nil {
		return err
	}
	var node struct {
		Status struct {
			Conditions []struct {
				Type, Status, Reason, Message string
			}
		}
	}
	if err := json.Unmarshal(body, &node); err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == "Ready" {
			if cond.Status == "True" {
				return nil
			}
			return fmt.Errorf("Ready=%s (%s: %s)", cond.Status, cond.Reason, cond.Message)
		}
	}
	return errors.New("node has no Ready condition yet")
}

// waitFor polls check until it returns nil, ctx ends, or a process of the
// lab exits.
func (c *Cluster) waitFor(ctx context.Context, what string, check func() error) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p := c.exited(); p != nil {
			return fmt.Errorf("waiting for %s: %s exited: %v (log %s)", what, p.name, p.err, p.log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s: last: %v", what, err)
		case <-tick.C:
		}
	}
}

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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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

// proc is one process of the lab.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// run starts a process of the lab with its output in <dir>/logs/<name>.log.
// It gets SIGKILL should the test process die first.
func (c *Cluster) run(name, bin string, args ...string) error {
	logPath := filepath.Join(mkdir(filepath.Join(c.dir, "logs")), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
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
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
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
	for _, pid := range pidsMentioning(c.ctrSock) {
		by["shims"] += rss(pid)
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
