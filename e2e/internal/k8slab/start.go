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

// ports are the control plane's listening ports, free at Start and outside
// the kernel's ephemeral range (see package freeport); each node has three
// more (Node.kubeletPort, healthzPort, streamPort).
type ports struct {
	etcdClient, etcdPeer, apiserver, cm, scheduler int
}

func (c *Cluster) start(ctx context.Context) error {
	var p ports
	fields := []*int{&p.etcdClient, &p.etcdPeer, &p.apiserver, &p.cm, &p.scheduler}
	for _, n := range c.nodes {
		fields = append(fields, &n.kubeletPort, &n.healthzPort, &n.streamPort)
	}
	free, err := freeport.Take(len(fields))
	if err != nil {
		return err
	}
	for i, ptr := range fields {
		*ptr = free[i]
	}
	c.apiURL = fmt.Sprintf("https://%s:%d", c.apiAddr, p.apiserver)

	// Certificates and kubeconfigs.
	pk, err := newPKI(filepath.Join(c.dir, "pki"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	saKey, saPub, err := pk.serviceAccountKeys()
	if err != nil {
		return fmt.Errorf("service-account keys: %w", err)
	}
	apiHosts := []string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.96.0.1"}
	if c.apiAddr != "127.0.0.1" {
		apiHosts = append([]string{c.apiAddr}, apiHosts...)
	}
	serving, err := pk.issue("apiserver", "kube-apiserver", nil, apiHosts...)
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
	// Each node's kubelet: a serving certificate for its name and address,
	// a client identity system:node:<name>.
	kubeletServing := map[*Node]keyPair{}
	kubeletKubeconfig := map[*Node]string{}
	for _, n := range c.nodes {
		hosts := []string{n.name, "127.0.0.1", "localhost"}
		if n.ip != "" {
			hosts = append(hosts, n.ip)
		}
		if kubeletServing[n], err = pk.issue(n.prefix+"kubelet-serving", "system:node:"+n.name, []string{"system:nodes"}, hosts...); err != nil {
			return err
		}
		kp, err := pk.issue(n.prefix+"kubelet", "system:node:"+n.name, []string{"system:nodes"})
		if err != nil {
			return err
		}
		kubeletKubeconfig[n] = filepath.Join(n.dir, "kubelet.kubeconfig")
		if err := pk.kubeconfig(kubeletKubeconfig[n], c.apiURL, kp); err != nil {
			return err
		}
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

	// etcd and containerd first: neither needs the other. etcd listens on
	// loopback: only the apiserver talks to it.
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
	for _, n := range c.nodes {
		if err := c.startContainerd(n); err != nil {
			return err
		}
	}
	if err := c.waitFor(ctx, "etcd healthy", func() error { return httpOK(http.DefaultClient, etcdURL+"/health") }); err != nil {
		return err
	}

	if err := c.run("kube-apiserver", c.bins.APIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address="+c.apiAddr, "--advertise-address="+c.apiAddr, fmt.Sprintf("--secure-port=%d", p.apiserver),
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
	var archive bytes.Buffer
	if err := WriteStaticImage(&archive, PauseImage, c.pauseBin); err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	for _, n := range c.nodes {
		if err := c.waitFor(ctx, "containerd serving"+n.of(), func() error { return n.ctr(ctx, nil, "version") }); err != nil {
			return err
		}
		if err := n.ImportImage(ctx, bytes.NewReader(archive.Bytes())); err != nil {
			return fmt.Errorf("import pause image%s: %w", n.of(), err)
		}
	}
	if err := c.waitFor(ctx, "kube-apiserver ready", func() error { return httpOK(c.api, c.apiURL+"/readyz") }); err != nil {
		return err
	}

	cmArgs := []string{
		"--kubeconfig=" + kubeconfigs["controller-manager"],
		"--authentication-kubeconfig=" + kubeconfigs["controller-manager"],
		"--authorization-kubeconfig=" + kubeconfigs["controller-manager"],
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", p.cm),
		"--cert-dir=" + mkdir(filepath.Join(c.dir, "controller-manager")),
		"--controllers=*,-nodeipam", "--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + saKey, "--root-ca-file=" + pk.caFile(),
		"--profiling=false",
	}
	if c.multi {
		cmArgs = append(cmArgs, "--node-monitor-period=1s", "--node-monitor-grace-period="+NodeGrace.String())
	}
	if err := c.run("kube-controller-manager", c.bins.ControllerManager, cmArgs...); err != nil {
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

	for _, n := range c.nodes {
		if err := c.startKubelet(n, pk.caFile(), kubeletKubeconfig[n], kubeletServing[n]); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		if err := c.waitFor(ctx, "node "+n.name+" Ready", func() error { return c.nodeReady(n.name) }); err != nil {
			return err
		}
	}
	return c.waitFor(ctx, "service account default/default", func() error {
		return httpOK(c.api, c.apiURL+"/api/v1/namespaces/default/serviceaccounts/default")
	})
}

// of is " of node <name>" in a multi-node lab, "" otherwise (for messages).
func (n *Node) of() string {
	if n.host == nil {
		return ""
	}
	return " of node " + n.name
}

// nodeReady reports nil once the node's Ready condition is True.
func (c *Cluster) nodeReady(name string) error {
	st, reason, err := c.readyCondition(name)
	if err != nil {
		return err
	}
	if st != "True" {
		return fmt.Errorf("Ready=%s (%s)", st, reason)
	}
	return nil
}

// readyCondition returns the status (True, False, Unknown) of the node's
// Ready condition and its reason and message.
func (c *Cluster) readyCondition(name string) (status, reason string, err error) {
	body, err := httpGet(c.api, c.apiURL+"/api/v1/nodes/"+name)
	if err != nil {
		return "", "", err
	}
	var node struct {
		Status struct {
			Conditions []struct {
				Type, Status, Reason, Message string
			}
		}
	}
	if err := json.Unmarshal(body, &node); err != nil {
		return "", "", err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == "Ready" {
			return cond.Status, cond.Reason + ": " + cond.Message, nil
		}
	}
	return "", "", errors.New("node has no Ready condition yet")
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
			again, rerr := c.restartDuringStart(p)
			if rerr != nil {
				return fmt.Errorf("waiting for %s: %s exited (%v) and could not be started again: %w", what, p.name, p.err, rerr)
			}
			if !again {
				return fmt.Errorf("waiting for %s: %s exited: %v (log %s)", what, p.name, p.err, p.log)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s: last: %v", what, err)
		case <-tick.C:
		}
	}
}
