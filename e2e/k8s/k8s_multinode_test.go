package k8s_test

// The Helm chart on a multi-node Kubernetes (k8slab.StartMulti): every node
// a network namespace that is a host on the test LAN, so each pod of the
// hostNetwork DaemonSet sees exactly its node's interfaces, as on a real
// cluster. Catalog mode against a three-server Consul on the lab's
// management network; the servers (`bridge respond`) on the LAN.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8sh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// k8sMulti is a multi-node lab with the chart's image imported and a Consul
// cluster on its management network.
type k8sMulti struct {
	t           *testing.T
	c           *k8slab.Cluster
	cl          *consulcluster.Cluster
	lc          *catalogh.Lab
	values      string // the values file
	metricsPort int
	repo, tag   string
}

// startK8sMulti starts the lab with nodes, Consul's three servers on the
// management network (.11-.13), and imports the bridge's image into every
// node.
func startK8sMulti(t *testing.T, lab *netns.Lab, nodes []k8slab.NodeSpec) *k8sMulti {
	t.Helper()
	dockerimg.Require(t)
	img := dockerimg.Build(t)
	bridgebin.Path(t)
	begin := time.Now()
	c := k8slab.StartMulti(t, k8slab.MultiOptions{Lab: lab, Nodes: nodes})
	t.Logf("MEASURED: %d-node lab: start to every node Ready %s (build %s)", len(nodes),
		c.Stats().StartTime.Round(100*time.Millisecond), c.Stats().BuildTime.Round(time.Second))
	cl := consulcluster.Start(t, lab, c.Management(), consulcluster.Options{Subnet: c.ManagementSubnet().String()})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	k8sh.ImportImage(ctx, t, c, img.Tag)
	t.Logf("MEASURED: lab, Consul and the image in every node: %s", time.Since(begin).Round(100*time.Millisecond))
	m := &k8sMulti{t: t, c: c, cl: cl, lc: &catalogh.Lab{T: t, Consul: cl.Client(0)},
		values: filepath.Join(t.TempDir(), "values.yaml"), metricsPort: harness.FreePort(t)}
	m.repo, m.tag, _ = strings.Cut(img.Tag, ":")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.Kubectl(context.Background(), "logs", "-l", "app.kubernetes.io/instance="+k8sRelease, "--tail", "60", "--prefix")
			t.Logf("pod logs:\n%s", out)
		}
	})
	return m
}

// writeValues writes the chart's values: catalog mode, the whitelist pinned
// to the nodes' LAN device (the same name on every node), tags.
func (m *k8sMulti) writeValues(tags string) {
	m.t.Helper()
	v := fmt.Sprintf(`image:
  repository: %s
  tag: %q
  pullPolicy: Never
metrics:
  port: %d
terminationGracePeriodSeconds: 10
config:
  consul_addr: %q
  interfaces_whitelist: [%q]
  interval: 1s
  timeout: 0.5
  consul_deregister_after: 10s
  consul_tags: [%s]
`, m.repo, m.tag, m.metricsPort, strings.Join(m.cl.HTTPAddrs(), ","), m.c.Nodes()[0].LANDev(), tags)
	if err := os.WriteFile(m.values, []byte(v), 0o600); err != nil {
		m.t.Fatal(err)
	}
}

// rollout runs helm (install or upgrade) with the values and waits for the
// DaemonSet to be rolled out on every node; it returns how long that took.
func (m *k8sMulti) rollout(verb string) time.Duration {
	m.t.Helper()
	begin := time.Now()
	if out, err := k8sh.Helm(m.t, m.c.Kubeconfig(), verb, k8sRelease, harness.ChartDir(m.t), "-f", m.values, "--wait", "--timeout", "3m"); err != nil {
		m.t.Fatalf("helm %s: %v\n%s", verb, err, out)
	}
	ctx, cancel := context.WithTimeout(m.t.Context(), 3*time.Minute)
	defer cancel()
	if out, err := m.c.Kubectl(ctx, "rollout", "status", "ds/"+k8sRelease+"-udp-discovery-bridge", "--timeout", "180s"); err != nil {
		m.t.Fatalf("rollout status: %v\n%s", err, out)
	}
	return time.Since(begin)
}

// k8sPod is what the tests read of a pod.
type k8sPod struct {
	Name, Node string
	Ready      bool
	Created    time.Time
}

// pods lists the release's pods.
func (m *k8sMulti) pods() []k8sPod {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(m.t.Context(), 30*time.Second)
	defer cancel()
	out, err := m.c.Kubectl(ctx, "get", "pods", "-l", "app.kubernetes.io/instance="+k8sRelease, "-o", "json")
	if err != nil {
		m.t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string    `json:"name"`
				CreationTimestamp time.Time `json:"creationTimestamp"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		m.t.Fatalf("pods: %v", err)
	}
	var pods []k8sPod
	for _, it := range list.Items {
		p := k8sPod{Name: it.Metadata.Name, Node: it.Spec.NodeName, Created: it.Metadata.CreationTimestamp}
		for _, c := range it.Status.Conditions {
			p.Ready = p.Ready || (c.Type == "Ready" && c.Status == "True")
		}
		pods = append(pods, p)
	}
	return pods
}

// bridgesByNode counts the processes running the image's /bridge by the
// node whose network namespace they are in (others are not counted).
func (m *k8sMulti) bridgesByNode() map[string]int {
	nsOf := map[string]string{}
	for _, n := range m.c.Nodes() {
		nsOf[n.Name()] = n.Host().NS
	}
	by := map[string]int{}
	for n, pids := range k8sh.BridgePIDs(nsOf) {
		by[n] = len(pids)
	}
	return by
}

// metric reads a metric of the pod on node (in the node's namespace).
func (m *k8sMulti) metric(node, name string) (float64, bool, error) {
	n := m.c.Node(node)
	code, body, err := harness.NSGet(n.Host().NS, fmt.Sprintf("http://127.0.0.1:%d/metrics", m.metricsPort))
	if err != nil {
		return 0, false, err
	}
	if code != http.StatusOK {
		return 0, false, fmt.Errorf("GET /metrics on %s: %d", node, code)
	}
	return harness.MetricIn(body, name)
}

// leaders lists the nodes (of those given) whose pod's leader gauge is 1.
func (m *k8sMulti) leaders(nodes ...string) []string {
	var out []string
	for _, n := range nodes {
		if v, ok, err := m.metric(n, "udp_discovery_bridge_consul_catalog_leader"); err == nil && ok && v == 1 {
			out = append(out, n)
		}
	}
	return out
}

// waitOneLeader waits until exactly one of nodes leads and returns it.
func (m *k8sMulti) waitOneLeader(timeout time.Duration, nodes ...string) (string, time.Duration) {
	m.t.Helper()
	var ld []string
	took := harness.Wait(m.t, timeout, "exactly one leading pod", func() (bool, string) {
		ld = m.leaders(nodes...)
		return len(ld) == 1, fmt.Sprintf("leaders %v", ld)
	})
	return ld[0], took
}

// spanOf is the time from the first to the last of the poller's records
// ("15:04:05.000 ..."), "" when there are none.
func spanOf(records []string) string {
	if len(records) == 0 {
		return "none"
	}
	first, err1 := time.Parse("15:04:05.000", strings.Fields(records[0])[0])
	last, err2 := time.Parse("15:04:05.000", strings.Fields(records[len(records)-1])[0])
	if err1 != nil || err2 != nil {
		return "?"
	}
	return fmt.Sprintf("%s to %s, %s", records[0][:12], records[len(records)-1][:12], last.Sub(first)+100*time.Millisecond)
}

// notReady is what watchNotReady reports.
type notReady struct {
	status string
	after  time.Duration
	err    error
}

// watchNotReady reports, on the channel, when the node turned NotReady
// (how long after since), or why it did not within NodeGrace + 30 s.
func (m *k8sMulti) watchNotReady(node string, since time.Time) <-chan notReady {
	ch := make(chan notReady, 1)
	go func() {
		ctx, cancel := context.WithTimeout(m.t.Context(), k8slab.NodeGrace+30*time.Second)
		defer cancel()
		st, err := m.c.WaitNodeNotReady(ctx, node)
		ch <- notReady{status: st, after: time.Since(since), err: err}
	}()
	return ch
}

// TestK8sMultiNodeCatalog: the chart on three nodes, node1 and node2 on
// LAN segment a with two servers, node3 alone on segment b with one. One pod
// per node, each server registered once and passing, one pod leads. A helm
// upgrade rolls the pods node by node while a poller reads the instances
// every 100 ms: none goes missing and none fails, segment b's either,
// although its only pod is replaced (the old pod hands its observation over
// on exit and the new one, of the same bridge_id, takes it over). Segment
// b's only node fails: its server turns
// critical and is removed, segment a's stay passing. Then the leader's node
// of segment a fails: the other pod leads, writes nothing, and the servers
// stay passing. A failed node turns NotReady and its pod stays in the API.
func TestK8sMultiNodeCatalog(t *testing.T) {
	k8slab.Require(t)
	lab := netns.New(t)
	seg := map[string]*netns.Bridge{"a": lab.Bridge("lana"), "b": lab.Bridge("lanb")}
	server := func(seg *netns.Bridge, name, ip string) string {
		harness.Respond(t, lab.Host(name, seg, ip+"/24"), 1, "--ip", ip)
		return harness.ServerID(catalogh.Service, ip, 8000)
	}
	wantA := []string{server(seg["a"], "sa0", "10.213.41.31"), server(seg["a"], "sa1", "10.213.41.32")}
	wantB := []string{server(seg["b"], "sb0", "10.213.42.31")}
	nodes := []string{"node1", "node2", "node3"}
	m := startK8sMulti(t, lab, []k8slab.NodeSpec{
		{Name: nodes[0], LAN: seg["a"], LANAddr: "10.213.41.21/24"},
		{Name: nodes[1], LAN: seg["a"], LANAddr: "10.213.41.22/24"},
		{Name: nodes[2], LAN: seg["b"], LANAddr: "10.213.42.21/24"},
	})
	everything := catalogh.All("passing", wantA, wantB)

	m.writeValues(`"v1"`)
	took := m.rollout("install")
	t.Logf("MEASURED: helm install to every pod Ready (3 nodes): %s", took.Round(100*time.Millisecond))
	pods := m.pods()
	byNode := map[string]int{}
	for _, p := range pods {
		byNode[p.Node]++
	}
	if len(pods) != 3 || byNode[nodes[0]] != 1 || byNode[nodes[1]] != 1 || byNode[nodes[2]] != 1 {
		t.Fatalf("pods %v; want one on each node", pods)
	}
	for _, p := range pods {
		if !p.Ready {
			t.Errorf("pod %s on %s not Ready after the rollout", p.Name, p.Node)
		}
	}
	// Each node's bridge process runs in that node's network namespace.
	if by := m.bridgesByNode(); len(by) != 3 || by[nodes[0]] != 1 || by[nodes[1]] != 1 || by[nodes[2]] != 1 {
		t.Errorf("bridge processes by node namespace: %v; want one in each node's", by)
	}
	took = m.lc.WaitCatalog(60*time.Second, "each server once, passing", everything)
	t.Logf("MEASURED: 3 servers of 2 segments in the catalog, once each, passing, %s after the rollout", took.Round(100*time.Millisecond))
	leader, _ := m.waitOneLeader(30*time.Second, nodes...)
	t.Logf("pod on %s leads", leader)

	// helm upgrade (a tag changed) rolls the pods one node at a time; no
	// read of the passing instances misses one.
	poll := m.lc.Poll(everything)
	upgraded := time.Now().Truncate(time.Second)
	m.writeValues(`"v2"`)
	took = m.rollout("upgrade")
	harness.Wait(t, 60*time.Second, "tag v2 on every server", func() (bool, string) {
		_, byID, _, err := catalogh.Entries(t, m.lc.Consul)
		if err != nil {
			return false, err.Error()
		}
		for id := range everything {
			if e := byID[id]; e == nil || !slices.Contains(e.Service.Tags, "v2") {
				return false, fmt.Sprintf("%s: %v", id, e)
			}
		}
		return true, ""
	})
	reads, missing, critical, errs := poll.Finish()
	// Segment a's servers keep a second observer while a node's pod is
	// replaced. Segment b's only bridge is replaced by a new one of the same
	// bridge_id (the node's name): the old pod hands its observation over on
	// exit, the leader stands it in for its grace, the new pod takes it
	// over (README, Catalog mode). Passing in every read, either way.
	var loneCritical []string
	for _, c := range critical {
		if strings.Contains(c, " "+wantB[0]+" ") {
			loneCritical = append(loneCritical, c)
		}
		t.Errorf("helm upgrade: a server not passing: %s", c)
	}
	if len(missing) > 0 {
		t.Errorf("helm upgrade: servers missing in %d of %d reads: %v", len(missing), reads, missing[:min(10, len(missing))])
	}
	m.lc.WaitCatalog(30*time.Second, "every server passing after the upgrade", everything)
	pods = m.pods()
	for _, p := range pods {
		if p.Created.Before(upgraded) {
			t.Errorf("after the upgrade: pod %s on %s was created before it", p.Name, p.Node)
		}
	}
	if len(pods) != 3 {
		t.Errorf("after the upgrade: pods %v; want three", pods)
	}
	t.Logf("MEASURED: helm upgrade rolled 3 nodes in %s; %d reads of the instances at 100 ms: %d missing, "+
		"segment b's lone node's server critical in %d (%s), %d errors",
		took.Round(100*time.Millisecond), reads, len(missing), len(loneCritical), spanOf(loneCritical), errs)

	// Segment b's only node fails (whether or not its pod leads): its
	// server turns critical, then is removed deregister_after (10s) later;
	// segment a's servers stay passing throughout.
	poll = m.lc.Poll(catalogh.All("passing", wantA))
	failed := time.Now()
	if err := m.c.FailNode(nodes[2]); err != nil {
		t.Fatal(err)
	}
	nrB := m.watchNotReady(nodes[2], failed)
	crit := catalogh.All("passing", wantA)
	crit[wantB[0]] = "critical"
	m.lc.WaitCatalog(2*10*time.Second+15*time.Second, "segment b's server critical", crit)
	t.Logf("MEASURED: segment b's only node failed; its server critical %s later", time.Since(failed).Round(100*time.Millisecond))
	m.lc.WaitCatalog(30*time.Second, "segment b's server removed", catalogh.All("passing", wantA))
	t.Logf("MEASURED: and removed %s after the node failed (deregister_after 10s)", time.Since(failed).Round(100*time.Millisecond))
	reads, missing, critical, errs = poll.Finish()
	if len(missing)+len(critical) > 0 {
		t.Errorf("segment b failed: segment a's servers missing in %d and not passing in %d of %d reads: %v %v", len(missing), len(critical), reads,
			missing[:min(10, len(missing))], critical[:min(10, len(critical))])
	}
	if nr := <-nrB; nr.err != nil {
		t.Error(nr.err)
	} else {
		t.Logf("MEASURED: node %s NotReady (Ready=%s) %s after it failed", nodes[2], nr.status, nr.after.Round(100*time.Millisecond))
	}

	// The leader's node of segment a fails: kubelet, containerd, shims and
	// the pod killed, links cut. The other pod leads within about twice the
	// lock session's TTL (10s) and, never having led, writes nothing: its
	// segment's servers stay passing.
	leader, _ = m.waitOneLeader(30*time.Second, nodes[:2]...)
	other := nodes[0]
	if other == leader {
		other = nodes[1]
	}
	idx := m.lc.SettledIndex(30 * time.Second)
	poll = m.lc.Poll(catalogh.All("passing", wantA))
	failed = time.Now()
	if err := m.c.FailNode(leader); err != nil {
		t.Fatal(err)
	}
	nrA := m.watchNotReady(leader, failed)
	next, _ := m.waitOneLeader(2*10*time.Second+15*time.Second, other)
	t.Logf("MEASURED: the leader's node %s failed; the pod on %s led %s later", leader, next, time.Since(failed).Round(100*time.Millisecond))
	nr := <-nrA
	if nr.err != nil {
		t.Fatal(nr.err)
	}
	t.Logf("MEASURED: node %s NotReady (Ready=%s) %s after it failed", leader, nr.status, nr.after.Round(100*time.Millisecond))
	// The new leader merges the live observation, waits out its start-up
	// grace (interval + timeout) and finds nothing to write.
	time.Sleep(1500*time.Millisecond + 3*time.Second)
	if w, _, err := m.metric(next, "udp_discovery_bridge_consul_catalog_writes_total"); err != nil || w != 0 {
		t.Errorf("the new leader on %s wrote %v catalog operations (%v); want 0: nothing changed", next, w, err)
	}
	if now := m.lc.ServiceIndex(); now != idx {
		t.Errorf("after the leader's node failed the service's index moved from %d to %d; want it unchanged", idx, now)
	}
	reads, missing, critical, errs = poll.Finish()
	if len(missing)+len(critical) > 0 {
		t.Errorf("node failure: servers missing in %d and not passing in %d of %d reads: %v %v", len(missing), len(critical), reads,
			missing[:min(10, len(missing))], critical[:min(10, len(critical))])
	}
	t.Logf("leader's node failure: %d reads of the passing instances at 100 ms: %d missing, %d not passing, %d errors", reads, len(missing), len(critical), errs)
	// The failed nodes' pods stay in the API (DaemonSet pods tolerate the
	// unreachable taint), marked not Ready by the node controller.
	for _, n := range []string{nodes[2], leader} {
		harness.Wait(t, 15*time.Second, "the pod of failed node "+n+" in the API, not Ready", func() (bool, string) {
			var on []k8sPod
			for _, p := range m.pods() {
				if p.Node == n {
					on = append(on, p)
				}
			}
			return len(on) == 1 && !on[0].Ready, fmt.Sprintf("pods on %s: %v", n, on)
		})
	}
}

// startNodeAgent runs a Consul client agent in the node's namespace, bound
// to the node's address on the management network (status.hostIP, where
// the chart's agent mode finds it), joined to the servers; it returns a
// client of that agent.
func (m *k8sMulti) startNodeAgent(n *k8slab.Node) *api.Client {
	m.t.Helper()
	dir := m.t.TempDir()
	var join []string
	for _, s := range m.cl.Servers {
		join = append(join, fmt.Sprintf("%q", s.IP.String()))
	}
	cfg := fmt.Sprintf(`node_name = %q
datacenter = "dc1"
data_dir = %q
server = false
bind_addr = %q
advertise_addr = %q
client_addr = %q
retry_join = [%s]
retry_interval = "1s"
disable_update_check = true
log_level = "warn"
ports {
  http = %d
  dns = -1
  grpc = -1
  grpc_tls = -1
  https = -1
}
`, n.Name(), filepath.Join(dir, "data"), n.IP(), n.IP(), n.IP(), strings.Join(join, ", "), consulcluster.HTTPPort)
	path := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		m.t.Fatal(err)
	}
	p, err := n.Host().Start(m.t.Context(), consulbin.Path(m.t), "agent", "-config-file", path)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() {
		if m.t.Failed() {
			stdout, stderr := p.Output()
			m.t.Logf("agent on %s:\n%s%s", n.Name(), harness.Tail(stdout, 30), harness.Tail(stderr, 30))
		}
	})
	cfgAPI := api.DefaultConfig()
	cfgAPI.Address = fmt.Sprintf("%s:%d", n.IP(), consulcluster.HTTPPort)
	cfgAPI.Transport = netns.Transport(n.Host().NS)
	cl, err := api.NewClient(cfgAPI)
	if err != nil {
		m.t.Fatal(err)
	}
	harness.Wait(m.t, 30*time.Second, "agent on "+n.Name()+" joined", func() (bool, string) {
		members, err := cl.Agent().Members(false)
		return err == nil && len(members) >= 1+len(m.cl.Servers), fmt.Sprint(len(members), err)
	})
	return cl
}

// agentEntries counts the instances of the service by node and ID, and
// their status.
func (m *k8sMulti) agentEntries() (map[string]int, map[string]string, error) {
	entries, _, err := m.lc.Consul.Health().Service(catalogh.Service, "", false, nil)
	if err != nil {
		return nil, nil, err
	}
	count, status := map[string]int{}, map[string]string{}
	for _, e := range entries {
		k := e.Node.Node + "/" + e.Service.ID
		count[k]++
		status[k] = e.Checks.AggregatedStatus()
	}
	return count, status, nil
}

// waitAgentEntries waits until the instances are exactly want (node/ID ->
// status), each listed once.
func (m *k8sMulti) waitAgentEntries(timeout time.Duration, what string, want map[string]string) time.Duration {
	m.t.Helper()
	return harness.Wait(m.t, timeout, what, func() (bool, string) {
		count, status, err := m.agentEntries()
		if err != nil {
			return false, err.Error()
		}
		if len(count) != len(want) {
			return false, fmt.Sprintf("have %v", status)
		}
		for k, s := range want {
			if count[k] != 1 || status[k] != s {
				return false, fmt.Sprintf("%s: %d times, %q; have %v", k, count[k], status[k], status)
			}
		}
		return true, ""
	})
}

// TestK8sMultiNodeAgent: agent mode on two nodes of one segment, each with
// its own Consul client agent in its namespace (at the node's IP, where
// the chart points the bridge). Without a lock each server is registered
// once on each agent; `helm upgrade` setting consul_lock leaves each server
// registered once in all, by the lock holder.
func TestK8sMultiNodeAgent(t *testing.T) {
	k8slab.Require(t)
	lab := netns.New(t)
	lan := lab.Bridge("lan")
	var ids []string
	for i := range 2 {
		ip := fmt.Sprintf("10.213.41.%d", 31+i)
		harness.Respond(t, lab.Host(fmt.Sprintf("s%d", i), lan, ip+"/24"), 1, "--ip", ip)
		ids = append(ids, harness.ServerID(catalogh.Service, ip, 8000))
	}
	nodes := []string{"node1", "node2"}
	m := startK8sMulti(t, lab, []k8slab.NodeSpec{
		{Name: nodes[0], LAN: lan, LANAddr: "10.213.41.21/24"},
		{Name: nodes[1], LAN: lan, LANAddr: "10.213.41.22/24"},
	})
	for _, n := range m.c.Nodes() {
		m.startNodeAgent(n)
	}
	agentValues := func(lock string) {
		m.writeValues(`"agent"`)
		f, err := os.OpenFile(m.values, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintf(f, "  consul_mode: agent\n  consul_deregister_after: 1m\n  consul_lock: %q\n", lock)
	}
	agentValues("")
	took := m.rollout("install")
	t.Logf("MEASURED: agent mode: helm install to every pod Ready (2 nodes): %s", took.Round(100*time.Millisecond))
	perAgent := map[string]string{}
	for _, n := range nodes {
		for _, id := range ids {
			perAgent[n+"/"+id] = "passing"
		}
	}
	took = m.waitAgentEntries(60*time.Second, "each server once per agent, passing", perAgent)
	t.Logf("MEASURED: agent mode, no lock: 2 servers once on each of 2 agents, passing, %s after the rollout", took.Round(100*time.Millisecond))

	agentValues("udp-discovery-bridge/lock")
	took = m.rollout("upgrade")
	var holder string
	took += harness.Wait(t, 60*time.Second, "each server once in all, passing", func() (bool, string) {
		count, status, err := m.agentEntries()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			ok := len(count) == len(ids)
			for _, id := range ids {
				ok = ok && count[n+"/"+id] == 1 && status[n+"/"+id] == "passing"
			}
			if ok {
				holder = n
				return true, ""
			}
		}
		return false, fmt.Sprintf("have %v", status)
	})
	t.Logf("MEASURED: agent mode with consul_lock: helm upgrade to each server once in all (on %s's agent), passing: %s", holder, took.Round(100*time.Millisecond))
}
