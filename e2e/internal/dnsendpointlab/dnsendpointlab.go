// Package dnsendpointlab is the consumer side of a DNSEndpoint
// (externaldns.k8s.io/v1alpha1) in the Kubernetes lab (e2e/internal/k8slab):
// the CRD installed from the chart, BIND as a real DNS server
// (e2e/internal/bindns) and real external-dns (e2e/internal/externaldnsbin)
// reading DNSEndpoints through its crd source and publishing them to BIND
// with its RFC 2136 provider, and dig to see what it published.
//
// Where things run: the lab's API server listens on the machine's loopback,
// so external-dns runs in the root network namespace (as a process of the
// test, as a ServiceAccount with the rights external-dns's chart gives its
// crd source: ExternalDNSRules). BIND runs in a namespace of the
// test's on a host bridge (netns.Lab.HostBridge, a 10.213.x subnet the test
// chose), so external-dns reaches it, and dig asks it, from the root
// namespace over that bridge and nowhere else. external-dns's metrics
// listener is pinned to a free port of 127.0.0.1.
package dnsendpointlab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bindns"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8sh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// CRDName is the DNSEndpoint CRD's name.
const CRDName = "dnsendpoints.externaldns.k8s.io"

// Options configure Start. The zero value is usable.
type Options struct {
	Zone string // the zone BIND serves and external-dns manages (default "lab.test")
	// LabelFilter is external-dns's --label-filter (a label selector):
	// only DNSEndpoints matching it are published. Empty: every one.
	LabelFilter string
	// Interval is external-dns's --interval, the period of its full
	// synchronisation (default 5s; external-dns's own default is 1m).
	Interval time.Duration
	// Events adds --events: a DNSEndpoint change also triggers a
	// synchronisation, at most one per --min-event-sync-interval (5s).
	Events bool
	// RecordTypes are external-dns's --managed-record-types (default A
	// and SRV; external-dns's own default is A, AAAA, CNAME).
	RecordTypes []string
	OwnerID     string // --txt-owner-id (default "udb-lab")
	LogLevel    string // --log-level (default info)
}

// Lab is BIND and external-dns running.
type Lab struct {
	BIND        *bindns.Server
	Bridge      *netns.Bridge // the host bridge BIND sits on
	ExternalDNS *ExternalDNS  // the running external-dns
	// Kubeconfig is external-dns's: the ServiceAccount external-dns in
	// namespace default, with only the rights external-dns's own chart
	// gives its crd source (ServiceAccountKubeconfig).
	Kubeconfig string

	c *k8slab.Cluster
}

// InstallCRD renders the chart's DNSEndpoint CRD (helm template with
// dnsEndpoint.installCRD=true, that template only), applies it with
// kubectl and waits until the API server serves it (Established). A test
// that installs the chart with dnsEndpoint.installCRD=true needs not: Helm
// then owns the CRD, and an earlier kubectl apply would make helm install
// refuse it.
func InstallCRD(ctx context.Context, t testing.TB, c *k8slab.Cluster) {
	t.Helper()
	out, err := k8sh.Helm(t, c.Kubeconfig(), "template", "udb", harness.ChartDir(t),
		"--set", "dnsEndpoint.installCRD=true", "--show-only", "templates/dnsendpoint-crd.yaml")
	if err != nil {
		t.Fatalf("helm template the CRD: %v\n%s", err, out)
	}
	if out, err := c.KubectlIn(ctx, strings.NewReader(out), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply the CRD: %v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+CRDName); err != nil {
		t.Fatalf("the CRD not established: %v\n%s", err, out)
	}
}

// Start starts BIND on a new host bridge of lab (a primary for opts.Zone
// taking updates signed with its TSIG key) and external-dns on the machine
// (StartExternalDNS). It returns once external-dns has started, not once it
// has synchronised: wait for the records.
func Start(t testing.TB, c *k8slab.Cluster, lab *netns.Lab, opts Options) *Lab {
	t.Helper()
	bindns.Require(t)
	if opts.Zone == "" {
		opts.Zone = "lab.test"
	}
	sub := lab.HostSubnet()
	b := sub.Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{b[0], b[1], b[2], last}).String() }
	br := lab.HostBridge("dns", ip(1)+"/24")
	h := lab.Host("bind", br, ip(53)+"/24")
	srv := bindns.Start(t, h, ip(53), bindns.Options{Zone: opts.Zone})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	l := &Lab{BIND: srv, Bridge: br, c: c, Kubeconfig: ServiceAccountKubeconfig(ctx, t, c, "default", "external-dns")}
	l.ExternalDNS = StartExternalDNS(t, l.Kubeconfig, srv, opts)
	return l
}

// ExternalDNSRules are the rights external-dns's chart (v0.23.0,
// charts/external-dns/templates/clusterrole.yaml) gives its crd source:
// read DNSEndpoints, update their status.
const ExternalDNSRules = `- apiGroups: ["externaldns.k8s.io"]
  resources: ["dnsendpoints"]
  verbs: ["get", "watch", "list"]
- apiGroups: ["externaldns.k8s.io"]
  resources: ["dnsendpoints/status"]
  verbs: ["update"]
`

// ServiceAccountKubeconfig creates the ServiceAccount name in namespace ns,
// a ClusterRole of that name with ExternalDNSRules and its
// ClusterRoleBinding, and writes a kubeconfig that authenticates as the
// ServiceAccount (a token from the TokenRequest API, valid 2 hours) to c's
// API server, returning its path.
func ServiceAccountKubeconfig(ctx context.Context, t testing.TB, c *k8slab.Cluster, ns, name string) string {
	t.Helper()
	rbac := fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[1]s, namespace: %[2]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: %[1]s}
rules:
%[3]s---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %[1]s}
subjects:
- {kind: ServiceAccount, name: %[1]s, namespace: %[2]s}
`, name, ns, ExternalDNSRules)
	if out, err := c.KubectlIn(ctx, strings.NewReader(rbac), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply external-dns's RBAC: %v\n%s", err, out)
	}
	token, err := c.Kubectl(ctx, "create", "token", name, "-n", ns, "--duration=2h")
	if err != nil {
		t.Fatalf("kubectl create token %s: %v\n%s", name, err, token)
	}
	out, err := c.Kubectl(ctx, "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server} {.clusters[0].cluster.certificate-authority-data}")
	server, ca, ok := strings.Cut(strings.TrimSpace(out), " ")
	if err != nil || !ok {
		t.Fatalf("kubectl config view: %v\n%s", err, out)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k8slab
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: k8slab
  context:
    cluster: k8slab
    user: %[3]s
    namespace: %s
current-context: k8slab
`, server, ca, name, strings.TrimSpace(token), ns)
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Restart stops the running external-dns and starts another with opts
// against the same BIND (opts.Zone is ignored).
func (l *Lab) Restart(t testing.TB, opts Options) *ExternalDNS {
	t.Helper()
	l.ExternalDNS.Stop()
	l.ExternalDNS = StartExternalDNS(t, l.Kubeconfig, l.BIND, opts)
	return l.ExternalDNS
}

// Answers asks BIND, with dig from the root namespace, for name's records
// of qtype and returns their data, sorted ("10.213.200.31", "0 50 8000
// s1.lab.test.").
func (l *Lab) Answers(ctx context.Context, name, qtype string) ([]string, error) {
	recs, err := l.BIND.Dig(ctx, nil, name, qtype)
	if err != nil {
		return nil, err
	}
	return bindns.Data(recs, qtype), nil
}

// WaitAnswers waits (harness.Wait, timeout) until BIND answers exactly want
// (in any order) for name's qtype records, failing t when external-dns has
// exited or on timeout, and returns how long it waited.
func (l *Lab) WaitAnswers(t testing.TB, timeout time.Duration, name, qtype string, want ...string) time.Duration {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	return harness.Wait(t, timeout, fmt.Sprintf("%s %s = %v", name, qtype, want), func() (bool, string) {
		if e := l.ExternalDNS; e.Exited() {
			t.Fatalf("external-dns exited:\n%s", harness.Tail(e.Log(), 30))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := l.Answers(ctx, name, qtype)
		if err != nil {
			return false, err.Error()
		}
		if got == nil {
			got = []string{}
		}
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}

// Zone is the whole zone, by a zone transfer signed with BIND's key, one
// record a line: what external-dns sees when it lists the zone.
func (l *Lab) Zone(ctx context.Context) (string, error) {
	recs, err := l.BIND.Transfer(ctx, nil)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintln(&b, r)
	}
	return b.String(), nil
}
