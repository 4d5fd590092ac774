package k8slab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/freeport"
)

// ports are the lab's listening ports, free at Start and outside the
// kernel's ephemeral range (see package freeport).
type ports struct {
	etcdClient, etcdPeer, apiserver, cm, scheduler, kubelet, kubeletHealthz, stream int
}

func (c *Cluster) start(ctx context.Context) error {
	var p ports
	fields := []*int{&p.etcdClient, &p.etcdPeer, &p.apiserver, &p.cm, &p.scheduler, &p.kubelet, &p.kubeletHealthz, &p.stream}
	free, err := freeport.Take(len(fields))
	if err != nil {
		return err
	}
	for i, ptr := range fields {
		*ptr = free[i]
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
