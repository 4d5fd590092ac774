package k8slab

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// API is the lean lab: etcd and kube-apiserver alone (no controller
// manager, scheduler, kubelet or containerd), inside a network namespace
// the test created, with an audit log of every write. It takes no
// machine-wide lock and changes nothing of the host: several may run at
// once, and Cluster's lab is untouched.
type API struct {
	// URL is the API server's address, https://<ip>:6443.
	URL string
	// Kubeconfig is a cluster-admin kubeconfig (group system:masters)
	// for URL.
	Kubeconfig string
	// AuditLog is the API server's audit log: one JSON event per line for
	// every create, update, patch and delete of endpointslices, services,
	// configmaps and leases (level Metadata, stage ResponseComplete).
	AuditLog string
	// Client dials into the namespace with the admin's certificate.
	Client *http.Client
	pki    *pki
	dir    string
}

// auditPolicy logs the writes of the kinds the kubernetes sink touches.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
  resources:
  - group: "discovery.k8s.io"
    resources: ["endpointslices"]
  - group: ""
    resources: ["services", "configmaps"]
  - group: "coordination.k8s.io"
    resources: ["leases"]
  - group: "externaldns.k8s.io"
    resources: ["dnsendpoints"]
- level: None
`

// StartAPI starts etcd (on the namespace's loopback) and kube-apiserver
// (on ip:6443) inside h and waits until the API server is ready and the
// default namespace exists. The binaries come from Build's cache. The
// processes end with the test (the netns Lab's teardown kills them).
func StartAPI(t testing.TB, h *netns.Host, ip string) *API {
	t.Helper()
	bins := Build(t)
	dir := t.TempDir()
	a := &API{URL: "https://" + ip + ":6443", dir: dir}
	fail := func(err error) {
		t.Helper()
		t.Fatalf("k8slab api: %v", err)
	}
	pk, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		fail(err)
	}
	a.pki = pk
	saKey, saPub, err := pk.serviceAccountKeys()
	if err != nil {
		fail(err)
	}
	serving, err := pk.issue("apiserver", "kube-apiserver", nil, ip, "127.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	if err != nil {
		fail(err)
	}
	admin, err := pk.issue("admin", "udb-k8slab-admin", []string{"system:masters"})
	if err != nil {
		fail(err)
	}
	a.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := pk.kubeconfig(a.Kubeconfig, a.URL, admin); err != nil {
		fail(err)
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		fail(err)
	}
	a.AuditLog = filepath.Join(dir, "audit.log")
	etcdDir := filepath.Join(dir, "etcd")
	if err := os.Mkdir(etcdDir, 0o700); err != nil {
		fail(err)
	}
	const etcdURL, peerURL = "http://127.0.0.1:2379", "http://127.0.0.1:2380"
	logs := mkdir(filepath.Join(dir, "logs"))
	start := func(name string, argv ...string) *netns.Proc {
		t.Helper()
		p, err := h.Start(context.Background(), argv...)
		if err != nil {
			fail(err)
		}
		t.Cleanup(func() {
			_ = p.StopWithin(5 * time.Second)
			if t.Failed() {
				stdout, stderr := p.Output()
				_ = os.WriteFile(filepath.Join(logs, name+".log"), []byte(stdout+stderr), 0o644)
				t.Logf("k8slab api: %s log in %s (last lines):\n%s", name, logs, tail(stdout+stderr, 30))
			}
		})
		return p
	}
	start("etcd", bins.Etcd, "--name=udb", "--data-dir="+etcdDir,
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=udb="+peerURL, "--initial-cluster-state=new",
		"--unsafe-no-fsync", "--log-level=warn")
	start("kube-apiserver", bins.APIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address="+ip, "--advertise-address="+ip, "--secure-port=6443",
		"--cert-dir="+mkdir(filepath.Join(dir, "apiserver")),
		"--tls-cert-file="+serving.CertFile, "--tls-private-key-file="+serving.KeyFile,
		"--client-ca-file="+pk.caFile(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		"--audit-policy-file="+policy, "--audit-log-path="+a.AuditLog, "--audit-log-mode=blocking",
		"--profiling=false")

	cert, err := tls.X509KeyPair(admin.CertPEM, admin.KeyPEM)
	if err != nil {
		fail(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pk.caPEM())
	tr := netns.Transport(h.NS)
	tr.TLSClientConfig = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}
	a.Client = &http.Client{Timeout: 5 * time.Second, Transport: tr}
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := httpOK(a.Client, a.URL+"/readyz")
		if err == nil {
			err = httpOK(a.Client, a.URL+"/api/v1/namespaces/default")
		}
		if err == nil {
			return a
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("kube-apiserver not ready in 90s: %w", err))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kubeconfig issues a client certificate for user (groups orgs) and writes
// a kubeconfig for it; what it may do is what RBAC grants user.
func (a *API) UserKubeconfig(t testing.TB, user string, orgs ...string) string {
	t.Helper()
	kp, err := a.pki.issue("user-"+user, user, orgs)
	if err != nil {
		t.Fatalf("k8slab api: %v", err)
	}
	path := filepath.Join(a.dir, user+".kubeconfig")
	if err := a.pki.kubeconfig(path, a.URL, kp); err != nil {
		t.Fatalf("k8slab api: %v", err)
	}
	return path
}

// Get reads path (e.g. /api/v1/namespaces/default/services) as the admin.
func (a *API) Get(path string) ([]byte, error) { return httpGet(a.Client, a.URL+path) }

// Send sends method path with a JSON body as the admin and returns the
// answer; a non-2xx answer is an error carrying its body.
func (a *API) Send(method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := a.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// AuditEvent is one write in the audit log.
type AuditEvent struct {
	Verb      string `json:"verb"`
	User      string
	Resource  string
	Name      string
	Code      int
	Timestamp time.Time
}

// Audit reads the audit log's events.
func (a *API) Audit(t testing.TB) []AuditEvent {
	t.Helper()
	f, err := os.Open(a.AuditLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("k8slab api: audit log: %v", err)
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Verb string `json:"verb"`
			User struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource string `json:"resource"`
				Name     string `json:"name"`
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
			StageTimestamp time.Time `json:"stageTimestamp"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("k8slab api: audit line %q: %v", sc.Text(), err)
		}
		out = append(out, AuditEvent{Verb: ev.Verb, User: ev.User.Username, Resource: ev.ObjectRef.Resource, Name: ev.ObjectRef.Name,
			Code: ev.ResponseStatus.Code, Timestamp: ev.StageTimestamp})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("k8slab api: audit log: %v", err)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
