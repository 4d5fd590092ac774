package k8slab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Node is one node of a cluster: its containerd and kubelet, and, in a
// multi-node lab (StartMulti), the network namespace both run in.
type Node struct {
	c       *Cluster
	name    string
	ip      string      // InternalIP; "" when the kubelet chose (single-node lab)
	dir     string      // the node's state: the cluster's directory for the single node
	host    *netns.Host // nil: the root network namespace
	lanDev  string      // the node's device on its LAN segment (multi-node lab)
	ctrSock string
	cgroup  string // the kubelet's cgroupRoot, relative to every hierarchy's root
	prefix  string // of the node's process names: "" or "<name>-"

	kubeletPort, healthzPort, streamPort int
}

// Name is the node's name (the Node object's and, in a multi-node lab, the
// name of its netns host).
func (n *Node) Name() string { return n.name }

// IP is the node's InternalIP (in a multi-node lab its address on the
// management network), or "" when the kubelet chose it.
func (n *Node) IP() string { return n.ip }

// Host is the node's network namespace, nil for the single-node lab's node
// (the root namespace). Its hostNetwork pods see exactly its interfaces.
func (n *Node) Host() *netns.Host { return n.host }

// LANDev is the node's device on the LAN segment its NodeSpec named ("" in
// the single-node lab). Devices get the same name on every node of a lab, so
// one interface whitelist fits the whole DaemonSet.
func (n *Node) LANDev() string { return n.lanDev }

// ContainerdSocket is the address of the node's containerd (for ctr -a).
func (n *Node) ContainerdSocket() string { return n.ctrSock }

// ImportImage imports an image archive (OCI layout or `docker save`
// output) into the node's containerd, namespace k8s.io.
func (n *Node) ImportImage(ctx context.Context, archive io.Reader) error {
	return n.ctr(ctx, archive, "images", "import", "-")
}

// ctr runs ctr against the node's containerd in namespace k8s.io.
func (n *Node) ctr(ctx context.Context, stdin io.Reader, args ...string) error {
	_, err := n.ctrOut(ctx, stdin, args...)
	return err
}

func (n *Node) ctrOut(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.c.ctrBin, append([]string{"--address", n.ctrSock, "--namespace", "k8s.io"}, args...)...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()+out.String()))
	}
	return out.String(), nil
}

// proc returns the node's process called name ("kubelet", "containerd").
func (n *Node) proc(name string) *proc { return n.c.proc(n.prefix + name) }

func (c *Cluster) startContainerd(n *Node) error {
	d := mkdir(filepath.Join(n.dir, "containerd"))
	cniConf := mkdir(filepath.Join(n.dir, "cni", "net.d"))
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
`, filepath.Join(d, "root"), filepath.Join(d, "state"), n.ctrSock, filepath.Join(d, "opt"),
		PauseImage, n.streamPort, runc, mkdir(filepath.Join(d, "runc")), c.bins.CNIBinDir, cniConf)
	cfgPath := filepath.Join(d, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	containerd, err := lookPath("containerd")
	if err != nil {
		return err
	}
	return c.runIn(n.host, n.prefix+"containerd", containerd, "--config", cfgPath, "--log-level", "warn")
}

// startKubelet writes the node's kubelet configuration and starts it (in
// the node's namespace).
func (c *Cluster) startKubelet(n *Node, caFile, kubeconfig string, serving keyPair) error {
	if err := makeCgroupRoot(n.cgroup); err != nil {
		return err
	}
	kubeletDir := mkdir(filepath.Join(n.dir, "kubelet"))
	cfg := filepath.Join(n.dir, "kubelet-config.yaml")
	if err := os.WriteFile(cfg, []byte(c.kubeletConfig(n, caFile, serving)), 0o644); err != nil {
		return err
	}
	args := []string{
		"--config=" + cfg, "--kubeconfig=" + kubeconfig,
		"--root-dir=" + kubeletDir, "--cert-dir=" + mkdir(filepath.Join(n.dir, "kubelet-pki")),
		"--hostname-override=" + n.name, "--v=1",
	}
	if n.ip != "" {
		args = append(args, "--node-ip="+n.ip)
	}
	return c.runIn(n.host, n.prefix+"kubelet", c.bins.Kubelet, args...)
}

func (c *Cluster) kubeletConfig(n *Node, caFile string, serving keyPair) string {
	address := "127.0.0.1"
	if n.ip != "" {
		address = n.ip // the apiserver reaches the kubelet at the node's InternalIP
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
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
`, n.ctrSock, n.cgroup, address, n.kubeletPort, n.healthzPort, serving.CertFile, serving.KeyFile, caFile, mkdir(filepath.Join(n.dir, "pod-logs")))
	if c.multi {
		// A lease renewed every 3 s (a quarter of its duration), so that
		// the controller-manager's short grace period (NodeGrace)
		// tells a failed node from a busy one.
		cfg += fmt.Sprintf("nodeLeaseDurationSeconds: %d\n", int(multiLeaseDuration.Seconds()))
	}
	return cfg
}
