package k8s_test

// The kubernetes sink writing an external-dns DNSEndpoint (k8s_write
// dnsendpoint, issue 33) against a real API server with the CRD the chart
// ships, every write counted in the audit log.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// sinkRecord is one record of a DNSEndpoint as read.
type sinkRecord struct {
	DNSName    string   `json:"dnsName"`
	RecordType string   `json:"recordType"`
	Targets    []string `json:"targets"`
	RecordTTL  int64    `json:"recordTTL"`
}

// readDNSEndpoint reads the DNSEndpoint django of namespace default: its
// records by "name type", and its resourceVersion ("" when absent).
func readDNSEndpoint(t *testing.T, a *k8slab.API) (map[string]sinkRecord, string) {
	t.Helper()
	b, err := a.Get("/apis/externaldns.k8s.io/v1alpha1/namespaces/default/dnsendpoints/django")
	if err != nil {
		return nil, ""
	}
	var obj struct {
		Metadata struct {
			ResourceVersion string            `json:"resourceVersion"`
			Labels          map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Endpoints []sinkRecord `json:"endpoints"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatalf("dnsendpoint django: %v\n%s", err, b)
	}
	out := map[string]sinkRecord{}
	for _, r := range obj.Spec.Endpoints {
		k := r.DNSName + " " + r.RecordType
		if _, dup := out[k]; dup {
			t.Errorf("dnsendpoint django lists %s twice", k)
		}
		slices.Sort(r.Targets)
		out[k] = r
	}
	return out, obj.Metadata.ResourceVersion
}

// installDNSEndpointCRD creates the CRD the chart ships
// (charts/udp-discovery-bridge/files) and waits until it is served.
func installDNSEndpointCRD(t *testing.T, a *k8slab.API) {
	t.Helper()
	root, err := bridgebin.Root()
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(filepath.Join(root, "charts", "udp-discovery-bridge", "files", "dnsendpoints.externaldns.k8s.io.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/json", js); err != nil {
		t.Fatalf("create the DNSEndpoint CRD: %v", err)
	}
	harness.Wait(t, 30*time.Second, "the DNSEndpoint CRD served", func() (bool, string) {
		_, err := a.Get("/apis/externaldns.k8s.io/v1alpha1/namespaces/default/dnsendpoints")
		return err == nil, fmt.Sprint(err)
	})
}

// TestK8sDNSEndpoint: two bridges with k8s_write dnsendpoint alone (no
// Service, no slices), with the chart's Role for it and nothing more,
// write one DNSEndpoint: the A records of django.lab.test, an A record
// per server and the SRV record with each server's port, each server
// once; quiet rounds write nothing; a server that stops answering leaves
// the records within the fleet's removal (missed rounds).
func TestK8sDNSEndpoint(t *testing.T) {
	netns.Require(t)
	k8slab.Require(t)
	lab, br, a, kubeconfig := k8sLab(t, "--set", "config.k8s_write={dnsendpoint}", "--set", "config.k8s_dns_name=django.lab.test")
	installDNSEndpointCRD(t, a)
	var responders []*netns.Proc
	var ips []string
	var srv []string
	for i := range 3 {
		ip := fmt.Sprintf("10.213.41.%d", 31+i)
		h := lab.Host(fmt.Sprintf("ds%d", i), br, ip+"/24")
		port := 8000 + i%2
		responders = append(responders, harness.Respond(t, h, 1, "--ip", ip, "--app-port", fmt.Sprint(port)))
		ips = append(ips, ip)
		srv = append(srv, fmt.Sprintf("0 0 %d %s.django.lab.test.", port, strings.ReplaceAll(ip, ".", "-")))
	}
	slices.Sort(srv)
	for i, name := range []string{"db1", "db2"} {
		h := lab.Host(name, br, fmt.Sprintf("10.213.41.%d/24", 21+i))
		harness.StartRun(t, h, name, "--sink", "kubernetes", "--kubeconfig", kubeconfig, "--k8s-namespace", "default",
			"--k8s-write", "dnsendpoint", "--k8s-dns-name", "django.lab.test", "--k8s-dns-srv", "--k8s-dns-ttl", "30s",
			"--bridge-id", name, "--whitelist", h.Dev(br), "--metrics-addr", harness.MetricsAddr, "--interval", "1s", "--timeout", "0.5",
			"--missed-rounds", "2", "--k8s-lease-duration", "3s", "--k8s-deregister-after", "4s", "--log-format", "json")
	}
	started := time.Now()
	want := func(ips, srv []string) func() (bool, string) {
		return func() (bool, string) {
			got, _ := readDNSEndpoint(t, a)
			ok := slices.Equal(got["django.lab.test A"].Targets, ips) && slices.Equal(got["_http._tcp.django.lab.test SRV"].Targets, srv) &&
				len(got) == len(ips)+2 && got["django.lab.test A"].RecordTTL == 30
			for _, ip := range ips {
				r := got[strings.ReplaceAll(ip, ".", "-")+".django.lab.test A"]
				ok = ok && slices.Equal(r.Targets, []string{ip})
			}
			return ok, fmt.Sprint(got)
		}
	}
	harness.Wait(t, 30*time.Second, "the DNSEndpoint with the three servers", want(ips, srv))
	t.Logf("MEASURED: two bridges wrote the DNSEndpoint (A, per-server A and SRV records of the 3 servers, each once) %s after they started", time.Since(started).Round(100*time.Millisecond))
	w := writes(a.Audit(t))
	if n := w["create services"] + w["create endpointslices"] + w["patch endpointslices"]; n != 0 {
		t.Errorf("k8s_write dnsendpoint alone wrote %d services or slices (%s)", n, fmtWrites(w))
	}
	if n := w["create dnsendpoints"] + w["patch dnsendpoints"]; n < 1 || n > 3 {
		t.Errorf("%d writes of the DNSEndpoint for three servers arriving (%s), want 1 to 3 (the first write, and one per server that joined it later)", n, fmtWrites(w))
	}
	t.Logf("MEASURED: API writes up to here (both bridges): %s", fmtWrites(w))

	// Quiet rounds: nothing but Lease renewals is written.
	time.Sleep(1500 * time.Millisecond)
	_, rv := readDNSEndpoint(t, a)
	n0 := len(a.Audit(t))
	time.Sleep(4 * time.Second)
	quiet := writes(a.Audit(t)[n0:])
	if _, rv2 := readDNSEndpoint(t, a); rv2 != rv || objectWrites(quiet) != 0 {
		t.Errorf("quiet rounds: resourceVersion %s -> %s, writes %s; want none but leases", rv, rv2, fmtWrites(quiet))
	}
	t.Logf("MEASURED: 4 s of quiet rounds (2 bridges, a round a second): %s; the DNSEndpoint's resourceVersion unchanged", fmtWrites(quiet))

	// A server that stops answering leaves the records: unobserved after
	// missed_rounds (2) rounds, at once out of the records.
	harness.StopResponder(t, responders[2])
	took := harness.Wait(t, 15*time.Second, "the DNSEndpoint without the stopped server", want(ips[:2], slices.DeleteFunc(slices.Clone(srv), func(s string) bool {
		return strings.Contains(s, strings.ReplaceAll(ips[2], ".", "-"))
	})))
	t.Logf("MEASURED: a server stopped: out of the DNSEndpoint's records %s later (missed_rounds 2, interval 1s)", took.Round(100*time.Millisecond))
}
