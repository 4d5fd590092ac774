package k8s_test

// The kubernetes sink against a real kube-apiserver and etcd (the lean lab,
// k8slab.StartAPI, inside a namespace of the test): two bridges, three
// responders, every write counted in the API server's audit log.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/corednsbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/helmbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

const k8sAPIIP = "10.213.41.5"

// k8sSlice is the part of an EndpointSlice the test reads.
type k8sSlice struct {
	Metadata struct {
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
	} `json:"metadata"`
	AddressType string `json:"addressType"`
	Endpoints   []struct {
		Addresses  []string `json:"addresses"`
		Conditions struct {
			Ready       *bool `json:"ready"`
			Serving     *bool `json:"serving"`
			Terminating *bool `json:"terminating"`
		} `json:"conditions"`
	} `json:"endpoints"`
	Ports []struct {
		Name string `json:"name"`
		Port int    `json:"port"`
	} `json:"ports"`
}

// k8sSlices reads the Service's slices: the slices by name, and each
// server ("ip:port") with its ready condition; a server listed twice fails
// the test.
func k8sSlices(t *testing.T, a *k8slab.API) (map[string]k8sSlice, map[string]bool) {
	t.Helper()
	b, err := a.Get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io/service-name=django")
	if err != nil {
		t.Fatal(err)
	}
	var l struct{ Items []k8sSlice }
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	slices, servers := map[string]k8sSlice{}, map[string]bool{}
	for _, s := range l.Items {
		slices[s.Metadata.Name] = s
		if s.AddressType != "IPv4" || s.Metadata.Labels["endpointslice.kubernetes.io/managed-by"] != "bridge.udp-discovery-bridge.io" || len(s.Ports) != 1 || s.Ports[0].Name != "http" {
			t.Errorf("slice %s: addressType %s labels %v ports %v", s.Metadata.Name, s.AddressType, s.Metadata.Labels, s.Ports)
		}
		for _, ep := range s.Endpoints {
			k := fmt.Sprintf("%s:%d", ep.Addresses[0], s.Ports[0].Port)
			if _, dup := servers[k]; dup {
				t.Errorf("%s listed twice", k)
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			if serving := ep.Conditions.Serving == nil || *ep.Conditions.Serving; serving != ready {
				t.Errorf("%s: ready %v but serving %v", k, ready, serving)
			}
			servers[k] = ready
		}
	}
	return slices, servers
}

func rvs(s map[string]k8sSlice) map[string]string {
	out := map[string]string{}
	for n, sl := range s {
		out[n] = sl.Metadata.ResourceVersion
	}
	return out
}

// k8sBridgeUser is the bridges' identity: what it may do is the Role below.
const k8sBridgeUser = "udb-bridge"

// k8sChartRole is the Role the chart renders with the kubernetes sink on
// (templates/rbac.yaml, `helm template`, with the further helm arguments
// set), as JSON: the bridges run with it and nothing else.
func k8sChartRole(t *testing.T, set ...string) (name string, js []byte) {
	t.Helper()
	root, err := bridgebin.Root()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"template", "r", filepath.Join(root, "charts", "udp-discovery-bridge"), "--namespace", "default",
		"--set", "config.sinks={kubernetes}", "--show-only", "templates/rbac.yaml"}
	cmd := exec.Command(helmbin.Path(t), append(args, set...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template rbac.yaml: %v", err)
	}
	for _, doc := range strings.Split("\n"+string(out), "\n---") {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if json.Unmarshal(js, &m) == nil && m.Kind == "Role" {
			return m.Metadata.Name, js
		}
	}
	t.Fatalf("the chart rendered no Role with the kubernetes sink on:\n%s", out)
	return "", nil
}

func k8sRoleBinding(role string) string {
	return `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"udb-bridge"},
 "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"` + role + `"},
 "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"` + k8sBridgeUser + `"}]}`
}

// writes counts the audit log's successful writes by the bridges, by
// "verb resource".
func writes(evs []k8slab.AuditEvent) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		if e.Code/100 == 2 && e.User == k8sBridgeUser {
			out[e.Verb+" "+e.Resource]++
		}
	}
	return out
}

func objectWrites(w map[string]int) int {
	n := 0
	for k, v := range w {
		if !strings.HasSuffix(k, " leases") {
			n += v
		}
	}
	return n
}

func fmtWrites(w map[string]int) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, w[k])
	}
	return strings.TrimSpace(b.String())
}

// k8sLab starts the namespaces' switch, the API server on it, the chart's
// Role (rendered with the helm arguments set) bound to the bridges' user,
// and returns that user's kubeconfig.
func k8sLab(t *testing.T, set ...string) (*netns.Lab, *netns.Bridge, *k8slab.API, string) {
	t.Helper()
	begin := time.Now()
	lab := netns.New(t)
	br := lab.Bridge("k8s")
	apiHost := lab.Host("kapi", br, k8sAPIIP+"/24")
	bridgebin.Path(t)
	a := k8slab.StartAPI(t, apiHost, k8sAPIIP)
	t.Logf("MEASURED: etcd + kube-apiserver ready %s", time.Since(begin).Round(100*time.Millisecond))
	role, roleJS := k8sChartRole(t, set...)
	for path, body := range map[string][]byte{"roles": roleJS, "rolebindings": []byte(k8sRoleBinding(role))} {
		if _, err := a.Send("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/"+path, "application/json", body); err != nil {
			t.Fatal(err)
		}
	}
	return lab, br, a, a.UserKubeconfig(t, k8sBridgeUser)
}

// k8sDNS is CoreDNS (its kubernetes plugin) watching the lab's API server.
type k8sDNS struct {
	r *net.Resolver
}

// k8sCoreDNS starts CoreDNS at 10.213.41.53:53 on the lab's switch, serving
// cluster.local from the API server.
func k8sCoreDNS(t *testing.T, lab *netns.Lab, br *netns.Bridge, a *k8slab.API) *k8sDNS {
	t.Helper()
	const ip = "10.213.41.53"
	h := lab.Host("kdns", br, ip+"/24")
	corefile := filepath.Join(t.TempDir(), "Corefile")
	conf := "cluster.local:53 {\n  errors\n  kubernetes cluster.local {\n    kubeconfig " + a.Kubeconfig + " k8slab\n    namespaces default\n    ttl 0\n  }\n}\n"
	if err := os.WriteFile(corefile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := h.Start(t.Context(), corednsbin.Path(t), "-conf", corefile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			stdout, stderr := p.Output()
			t.Logf("coredns (exit %d):\n%s\n%s", p.ExitCode(), harness.Tail(stdout, 40), harness.Tail(stderr, 40))
		}
	})
	return &k8sDNS{r: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return netns.Dial(ctx, h.NS, network, ip+":53")
	}}}
}

// answers is what CoreDNS answers for the Service: the A records' addresses
// and the SRV records as "ip:port", sorted.
func (d *k8sDNS) answers() (a, srv []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	const name = "django.default.svc.cluster.local"
	a, err = d.r.LookupHost(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	_, srvs, err := d.r.LookupSRV(ctx, "http", "tcp", name)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range srvs {
		// The target is <hash>.django.default.svc.cluster.local: resolve it.
		ips, err := d.r.LookupHost(ctx, s.Target)
		if err != nil || len(ips) != 1 {
			return nil, nil, fmt.Errorf("SRV target %s: %v %v", s.Target, ips, err)
		}
		srv = append(srv, fmt.Sprintf("%s:%d", ips[0], s.Port))
	}
	slices.Sort(a)
	slices.Sort(srv)
	return a, srv, nil
}

// wait waits until CoreDNS answers an A record per server of want
// ("ip:port") and an SRV record with each one's own port.
func (d *k8sDNS) wait(t *testing.T, want []string, what string) time.Duration {
	t.Helper()
	var wantA []string
	for _, w := range want {
		wantA = append(wantA, strings.Split(w, ":")[0])
	}
	wantSRV := slices.Clone(want)
	slices.Sort(wantA)
	slices.Sort(wantSRV)
	return harness.Wait(t, 20*time.Second, what, func() (bool, string) {
		a, srv, err := d.answers()
		return err == nil && slices.Equal(a, wantA) && slices.Equal(srv, wantSRV), fmt.Sprint("A ", a, " SRV ", srv, " ", err)
	})
}

// TestK8sSink: two bridges see the same three servers; each is in the
// slices once, ready; a quiet round writes nothing; the leader killed with
// kill -9, the other leads and writes nothing; a server that stops
// answering turns ready: false, serving: false and is removed
// deregister_after later.
func TestK8sSink(t *testing.T) {
	netns.Require(t)
	k8slab.Require(t)
	begin := time.Now()
	lab, br, a, kubeconfig := k8sLab(t)
	var responders []*netns.Proc
	var want []string
	for i := range 3 {
		ip := fmt.Sprintf("10.213.41.%d", 31+i)
		h := lab.Host(fmt.Sprintf("ks%d", i), br, ip+"/24")
		port := 8000 + i%2 // two ports: two slice sets, SRV records with each server's own port
		responders = append(responders, harness.Respond(t, h, 1, "--ip", ip, "--app-port", fmt.Sprint(port)))
		want = append(want, fmt.Sprintf("%s:%d", ip, port))
	}
	bridges := map[string]*harness.BridgeProc{}
	hosts := map[string]*netns.Host{}
	for i, name := range []string{"kb1", "kb2"} {
		h := lab.Host(name, br, fmt.Sprintf("10.213.41.%d/24", 21+i))
		hosts[name] = h
		bridges[name] = harness.StartRun(t, h, name, "--sink", "kubernetes", "--kubeconfig", kubeconfig, "--k8s-namespace", "default",
			"--bridge-id", name, "--whitelist", h.Dev(br), "--metrics-addr", harness.MetricsAddr, "--interval", "1s", "--timeout", "0.5",
			"--missed-rounds", "2", "--k8s-lease-duration", "3s", "--k8s-deregister-after", "4s", "--log-format", "json")
	}
	started := time.Now()
	harness.Wait(t, 30*time.Second, "three servers in the slices, ready", func() (bool, string) {
		_, got := k8sSlices(t, a)
		for _, w := range want {
			if !got[w] {
				return false, fmt.Sprint(got)
			}
		}
		return len(got) == 3, fmt.Sprint(got)
	})
	t.Logf("MEASURED: 3 servers in the EndpointSlices, each once and ready, %s after two bridges started", time.Since(started).Round(100*time.Millisecond))
	// bridge doctor: the bridges' user may do all the sink does; a user
	// with no Role may not, and doctor says so and fails.
	doctor := func(kc string) netns.Result {
		h := hosts["kb1"]
		return harness.RunCmd(t, h, "doctor", "--sink", "kubernetes", "--kubeconfig", kc, "--k8s-namespace", "default", "--bridge-id", "kb1",
			"--whitelist", h.Dev(br), "--timeout", "0.5")
	}
	if r := doctor(kubeconfig); r.ExitCode != 0 || !strings.Contains(r.Stdout, "ok    endpointslices.discovery.k8s.io") || !strings.Contains(r.Stdout, "service default/django: the fleet's") {
		t.Errorf("bridge doctor as the bridges' user: exit %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := doctor(a.UserKubeconfig(t, "nobody")); r.ExitCode == 0 || !strings.Contains(r.Stdout, "FAIL  endpointslices.discovery.k8s.io: may not get") {
		t.Errorf("bridge doctor as a user without the Role: exit %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
	} else {
		t.Logf("bridge doctor without the Role says:\n%s", r.Stdout[strings.Index(r.Stdout, "== sinks"):])
	}
	if sl, _ := k8sSlices(t, a); len(sl) != 2 {
		t.Errorf("%d slices for servers on two ports, want 2 (one slice set per port)", len(sl))
	}
	dns := k8sCoreDNS(t, lab, br, a)
	took := dns.wait(t, want, "A and SRV records of the three servers")
	t.Logf("MEASURED: CoreDNS (kubernetes plugin) answers an A record per server and SRV records with each one's own port (8000, 8001) %s after it started", took.Round(100*time.Millisecond))
	leader := func() string {
		var ls []string
		for name, h := range hosts {
			if bridges[name].Exited() {
				continue
			}
			if v, _, err := harness.Metric(h.NS, "udp_discovery_bridge_kubernetes_leader"); err == nil && v == 1 {
				ls = append(ls, name)
			}
		}
		slices.Sort(ls)
		return strings.Join(ls, ",")
	}
	var lead string
	harness.Wait(t, 10*time.Second, "one leader", func() (bool, string) { lead = leader(); return lead != "" && !strings.Contains(lead, ","), lead })
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		}
	}
	if b, err := a.Get("/api/v1/namespaces/default/services/django"); err != nil || json.Unmarshal(b, &svc) != nil || svc.Spec.ClusterIP != "None" {
		t.Fatalf("service django: %+v %v", svc, err)
	}
	first := writes(a.Audit(t))
	t.Logf("MEASURED: API writes up to here (first apply, both bridges): %s", fmtWrites(first))

	// Quiet rounds: nothing changes, nothing but Lease renewals is written.
	time.Sleep(1500 * time.Millisecond) // let the last adds as they arrive settle
	before, _ := k8sSlices(t, a)
	n0 := len(a.Audit(t))
	time.Sleep(4 * time.Second) // four rounds of both bridges
	after, _ := k8sSlices(t, a)
	quiet := writes(a.Audit(t)[n0:])
	if !maps2Equal(rvs(before), rvs(after)) {
		t.Errorf("quiet rounds changed slices: %v -> %v", rvs(before), rvs(after))
	}
	if n := objectWrites(quiet); n != 0 {
		t.Errorf("quiet rounds: %d writes of slices, services or configmaps (%s), want 0", n, fmtWrites(quiet))
	}
	t.Logf("MEASURED: 4 s of quiet rounds (2 bridges, a round a second): %s; slices' resourceVersions unchanged", fmtWrites(quiet))

	// kill -9 of the leader: the other takes over and writes nothing.
	other := map[string]string{"kb1": "kb2", "kb2": "kb1"}[lead]
	n1 := len(a.Audit(t))
	killed := time.Now()
	bridges[lead].Kill9(t)
	took = harness.Wait(t, 15*time.Second, other+" leads", func() (bool, string) { l := leader(); return l == other, l })
	time.Sleep(2 * time.Second) // the new leader's startup grace and first merge
	afterKill, got := k8sSlices(t, a)
	w := writes(a.Audit(t)[n1:])
	if !maps2Equal(rvs(before), rvs(afterKill)) || len(got) != 3 {
		t.Errorf("after the takeover: slices %v (were %v), servers %v", rvs(afterKill), rvs(before), got)
	}
	if n := w["patch endpointslices"] + w["create endpointslices"] + w["delete endpointslices"] + w["create services"]; n != 0 {
		t.Errorf("the new leader wrote %d slices or services with nothing changed (%s)", n, fmtWrites(w))
	}
	t.Logf("MEASURED: leader %s killed with kill -9; %s led %s later (lease 3s); writes since: %s", lead, other, took.Round(100*time.Millisecond), fmtWrites(w))

	// The new leader recorded it on the Service (kubectl describe shows it).
	harness.Wait(t, 5*time.Second, "a LeaderElected event of "+other, func() (bool, string) {
		b, err := a.Get("/api/v1/namespaces/default/events")
		if err != nil {
			return false, err.Error()
		}
		var l struct {
			Items []struct {
				Reason, Message string
				InvolvedObject  struct{ Kind, Name string } `json:"involvedObject"`
			}
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return false, err.Error()
		}
		for _, e := range l.Items {
			if e.Reason == "LeaderElected" && e.InvolvedObject.Kind == "Service" && e.InvolvedObject.Name == "django" && strings.Contains(e.Message, "bridge "+other+" leads") {
				return true, ""
			}
		}
		return false, fmt.Sprint(l.Items)
	})

	// A server that stops answering: ready false at once, then removed.
	harness.StopResponder(t, responders[2])
	stopped := time.Now()
	gone := want[2]
	harness.Wait(t, 15*time.Second, gone+" not ready", func() (bool, string) {
		_, got := k8sSlices(t, a)
		r, ok := got[gone]
		return ok && !r, fmt.Sprint(got)
	})
	notReady := time.Since(stopped)
	dns.wait(t, want[:2], "A and SRV records without the server that stopped answering")
	t.Logf("MEASURED: CoreDNS answers without it %s after it stopped answering", time.Since(stopped).Round(100*time.Millisecond))
	harness.Wait(t, 15*time.Second, gone+" removed", func() (bool, string) {
		_, got := k8sSlices(t, a)
		_, ok := got[gone]
		return !ok && len(got) == 2, fmt.Sprint(got)
	})
	t.Logf("MEASURED: a server stopped answering: ready: false %s later (missed_rounds 2, a round a second), removed %s later (deregister_after 4s)",
		notReady.Round(100*time.Millisecond), time.Since(stopped).Round(100*time.Millisecond))
	all := a.Audit(t)
	conflicts := 0
	for _, e := range all {
		if e.Code == 409 {
			conflicts++
		}
	}
	denied := 0
	for _, e := range all {
		if e.Code == 403 {
			denied++
		}
	}
	if denied > 0 {
		t.Errorf("%d writes refused by RBAC (403): the Role lacks a rule", denied)
	}

	// The killed bridge's Lease and ConfigMap are deleted by the leader once
	// its Lease went unrenewed for its duration plus deregister_after.
	harness.Wait(t, 15*time.Second, lead+"'s lease and observation deleted", func() (bool, string) {
		_, e1 := a.Get("/api/v1/namespaces/default/configmaps/django-obs-" + lead)
		_, e2 := a.Get("/apis/coordination.k8s.io/v1/namespaces/default/leases/django-bridge-" + lead)
		return e1 != nil && e2 != nil && strings.Contains(e1.Error(), "404") && strings.Contains(e2.Error(), "404"), fmt.Sprint(e1, e2)
	})
	t.Logf("MEASURED: the killed bridge's Lease and ConfigMap deleted by the leader %s after the kill", time.Since(killed).Round(100*time.Millisecond))

	// Fencing as the API server does it: a server-side apply carrying the
	// resourceVersion a deposed leader last saw is refused (409), not
	// applied over what the new leader wrote.
	nowSlices, _ := k8sSlices(t, a)
	staleSeen := 0
	for name, rv := range rvs(before) {
		if cur, ok := nowSlices[name]; !ok || cur.Metadata.ResourceVersion == rv {
			continue // not changed since: its resourceVersion is not stale
		}
		staleSeen++
		stale := fmt.Sprintf(`{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":%q,"resourceVersion":%q},"addressType":"IPv4","endpoints":[],"ports":[]}`, name, rv)
		_, err := a.Send("PATCH", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/"+name+"?fieldManager=udp-discovery-bridge&force=true",
			"application/apply-patch+yaml", []byte(stale))
		if err == nil || !strings.Contains(err.Error(), ": 409:") {
			t.Errorf("apply to slice %s with its stale resourceVersion %s: %v, want 409 Conflict", name, rv, err)
		}
	}
	if staleSeen == 0 {
		t.Error("no slice changed since the quiet rounds: nothing to try a stale write on")
	}

	// SIGTERM of the last bridge: it gives the leader Lease up and deletes
	// its own Lease and observation.
	if code := bridges[other].Sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("bridge %s exited %d on SIGTERM", other, code)
	}
	if _, err := a.Get("/apis/coordination.k8s.io/v1/namespaces/default/leases/django-leader"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("leader lease after SIGTERM: %v, want released (deleted)", err)
	}
	if b, err := a.Get("/apis/coordination.k8s.io/v1/namespaces/default/leases?labelSelector=udp-discovery-bridge.io/fleet=django"); err != nil || strings.Contains(string(b), `"name":"django-`) {
		t.Errorf("leases of the fleet after the last bridge's SIGTERM: %s %v, want none", b, err)
	}
	if _, err := a.Get("/api/v1/namespaces/default/configmaps/django-obs-" + other); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("observation of %s after SIGTERM: %v, want 404", other, err)
	}
	all = a.Audit(t)
	t.Logf("MEASURED: all API writes of the bridges in the test: %s; 409 conflicts: %d; test took %s", fmtWrites(writes(all)), conflicts, time.Since(begin).Round(100*time.Millisecond))
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
