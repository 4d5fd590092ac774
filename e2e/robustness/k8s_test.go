package robustness_test

// The harness with the kubernetes sink (TestK8sRobustness): the chart's
// DaemonSet on the multi-node lab (e2e/internal/k8slab.StartMulti), one
// pod per node, each node a network namespace with a leg on the
// management network (the apiserver) and one on its LAN segment; the
// fleet writes the EndpointSlices of service django. The faults are the
// catalog harness's where they have a Kubernetes meaning, and the
// Kubernetes ones: the apiserver stopped, every node cut from it (requests
// time out), a bridge's observation ConfigMap overwritten, and a rollout
// of the DaemonSet (the disruption budget per rollout).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/faults"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/history"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8sh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// k8sCISeeds run in CI (one lab at a time: a multi-node lab is heavy),
// each for k8sCIDuration of faults.
var k8sCISeeds = []int64{11}

const k8sCIDuration = 60 * time.Second

const (
	k8sRelease = "udb"
	k8sDS      = k8sRelease + "-udp-discovery-bridge"
	k8sLease   = 6 * time.Second // k8s_lease_duration: renewed every 2 s
	k8sForeign = "django-foreign"
	k8sSlices  = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D" + catalogh.Service
)

// TestK8sRobustness runs the Kubernetes CI seed, or the one of
// ROBUST_SEED for ROBUST_DURATION (make robustness-k8s).
func TestK8sRobustness(t *testing.T) {
	k8slab.Require(t)
	dockerimg.Require(t)
	runSeeds(t, "k8s-seed", "robustness-k8s", k8sCISeeds, k8sCIDuration, runK8sScenario)
}

// k8sScenario is one seeded run on the multi-node lab.
type k8sScenario struct {
	t     *testing.T
	c     *k8slab.Cluster
	nodes map[string]*k8slab.Node // by bridge name (a1 a2 b1 b2: the node's name, the pod's bridge_id)
	nsOf  map[string]string       // bridge name → the node's network namespace
	segs  map[string]*netns.Bridge

	recorder // its mu also guards pids
	servers  []*server
	pids     map[string]int // each node's bridge process as the watcher last saw it
	settled  time.Time      // the fault loop's goroutine only
	logs     string         // the pods' logs, copied as they grow
}

// runK8sScenario builds the lab, installs the chart, injects faults for dur
// from seed's schedule, heals everything, waits out the convergence bound
// and returns the history.
func runK8sScenario(t *testing.T, seed int64, dur time.Duration) []history.Event {
	img := dockerimg.Build(t)
	lab := netns.New(t)
	seg := map[string]*netns.Bridge{"a": lab.Bridge("lana"), "b": lab.Bridge("lanb")}
	subnet := map[string]int{"a": 51, "b": 52}
	var specs []k8slab.NodeSpec
	for _, b := range bridgeNames {
		n, _ := strconv.Atoi(b[1:])
		specs = append(specs, k8slab.NodeSpec{Name: b, LAN: seg[b[:1]], LANAddr: fmt.Sprintf("10.213.%d.%d/24", subnet[b[:1]], 20+n)})
	}
	c := k8slab.StartMulti(t, k8slab.MultiOptions{Lab: lab, Nodes: specs})
	s := &k8sScenario{t: t, c: c, nodes: map[string]*k8slab.Node{}, nsOf: map[string]string{}, pids: map[string]int{}, segs: seg,
		logs: filepath.Join(t.TempDir(), "pod-logs")}
	for _, b := range bridgeNames {
		s.nodes[b] = c.Node(b)
		s.nsOf[b] = c.Node(b).Host().NS
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	k8sh.ImportImage(ctx, t, c, img.Tag)

	cfg := historyConfig(seed, k8sLease)
	for _, sg := range []string{"a", "b"} {
		hs := history.Segment{Name: sg, Bridges: scenarioBridges[sg]}
		for i := range scenarioServers[sg] {
			ip := fmt.Sprintf("10.213.%d.%d", subnet[sg], 41+i)
			sv := &server{id: harness.ServerID(catalogh.Service, ip, 8000), seg: sg, ip: ip,
				host: lab.Host(fmt.Sprintf("r%s%d", sg, i), seg[sg], ip+"/24")}
			s.servers = append(s.servers, sv)
			hs.Servers = append(hs.Servers, sv.id)
		}
		cfg.Segments = append(cfg.Segments, hs)
	}
	s.record(history.Event{Config: cfg})
	for _, sv := range s.servers {
		startServer(t, s.record, sv)
	}
	s.install(img.Tag)
	s.registerForeign()
	stopWatch := s.watch()
	stopPoll := s.poll()
	want := map[string]history.Health{}
	for _, sv := range s.servers {
		want[sv.id] = history.Passing
	}
	harness.Wait(t, 2*time.Minute, "every server ready in the slices, once", func() (bool, string) {
		r := s.read()
		return r.Err == "" && maps.Equal(r.Servers, want), fmt.Sprintf("%v %s", r.Servers, r.Err)
	})
	time.Sleep((scMissed+2)*scRound + scSlack + 2*scRound + 2*time.Second)

	ws := weightsOfK8s(k8sKinds)
	for n, st := range schedule(seed, dur, ws) {
		f, id := k8sKinds[st.kind], fmt.Sprintf("f%d", n+1)
		t.Logf("robustness: %s %s %s (target %d) for %s", time.Now().Format("15:04:05.000"), id, f.kind, st.target, st.d)
		runFault(t, s.record, &s.settled, 2*k8sLease+3*scRound+scSlack, id, f.kind, f.target(s, st), func() { f.run(s, id, st) })
		time.Sleep(st.gap)
	}
	for _, sv := range s.servers {
		if sv.proc == nil {
			startServer(t, s.record, sv)
		}
	}
	wait := max(2*k8sLease, (scMissed+1)*scRound) + 2*(scRound+scRound) + 3*scRound + scGuard*scRound + scSlack + 10*time.Second
	t.Logf("robustness: faults over; waiting %s for convergence", wait)
	time.Sleep(wait)
	stopPoll()
	stopWatch()
	s.copyLogs()
	s.logEvents()
	return s.history()
}

// install installs the chart: the kubernetes sink, the whitelist pinned to
// the nodes' LAN leg, the catalog harness's rounds and guard, the pods
// talking to the apiserver on the management network (the lab has no
// kube-proxy for the kubernetes Service).
func (s *k8sScenario) install(tag string) {
	t := s.t
	repo, ver, _ := strings.Cut(tag, ":")
	host, port, _ := strings.Cut(strings.TrimPrefix(s.c.APIServerURL(), "https://"), ":")
	values := fmt.Sprintf(`image:
  repository: %s
  tag: %q
  pullPolicy: Never
metrics:
  port: %d
terminationGracePeriodSeconds: 10
extraEnv:
  - {name: KUBERNETES_SERVICE_HOST, value: %q}
  - {name: KUBERNETES_SERVICE_PORT, value: %q}
config:
  sinks: [kubernetes]
  interfaces_whitelist: [%q]
  interval: 1s
  timeout: 0.5
  missed_rounds: %d
  k8s_lease_duration: %s
  k8s_deregister_after: %s
`, repo, ver, harness.FreePort(t), host, port, s.nodes["a1"].LANDev(), scMissed, k8sLease, scDereg)
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := k8sh.Helm(t, s.c.Kubeconfig(), "install", k8sRelease, harness.ChartDir(t), "-f", path, "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	s.rolloutStatus()
}

// rolloutStatus waits until the DaemonSet is rolled out on every node.
func (s *k8sScenario) rolloutStatus() {
	ctx, cancel := context.WithTimeout(s.t.Context(), 3*time.Minute)
	defer cancel()
	if out, err := s.c.Kubectl(ctx, "rollout", "status", "ds/"+k8sDS, "--timeout", "180s"); err != nil {
		s.t.Fatalf("rollout status: %v\n%s", err, out)
	}
}

// registerForeign writes a slice of another controller under the same
// service: the fleet must never touch it.
func (s *k8sScenario) registerForeign() {
	body := fmt.Sprintf(`{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":%q,"labels":{"kubernetes.io/service-name":%q,"endpointslice.kubernetes.io/managed-by":"another-controller.example.com"}},"addressType":"IPv4","ports":[{"name":"http","port":8000,"protocol":"TCP"}],"endpoints":[{"addresses":["10.213.99.1"],"conditions":{"ready":true}}]}`,
		k8sForeign, catalogh.Service)
	ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
	defer cancel()
	if _, err := s.c.APISend(ctx, "POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", "application/json", []byte(body)); err != nil {
		s.t.Fatalf("create the foreign slice: %v", err)
	}
}

// k8sSliceList is what read takes of the slices.
type k8sSliceList struct {
	Items []struct {
		Metadata struct {
			Name            string            `json:"name"`
			ResourceVersion string            `json:"resourceVersion"`
			Labels          map[string]string `json:"labels"`
		} `json:"metadata"`
		Ports []struct {
			Port int `json:"port"`
		} `json:"ports"`
		Endpoints []struct {
			Addresses  []string `json:"addresses"`
			Conditions struct {
				Ready *bool `json:"ready"`
			} `json:"conditions"`
		} `json:"endpoints"`
	} `json:"items"`
}

// read lists the service's slices: each server ready (passing) or not
// (critical), the index a hash of our slices' names and resource versions
// (it changes with every write to them, and only then), the foreign
// slice's resource version.
func (s *k8sScenario) read() *history.SinkRead {
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Second)
	defer cancel()
	body, err := s.c.APIGet(ctx, k8sSlices)
	if err != nil {
		return &history.SinkRead{Sink: "kubernetes", Err: err.Error()}
	}
	var l k8sSliceList
	if err := json.Unmarshal(body, &l); err != nil {
		return &history.SinkRead{Sink: "kubernetes", Err: "decode the slices: " + err.Error()}
	}
	r := &history.SinkRead{Sink: "kubernetes", Servers: map[string]history.Health{}, Foreign: map[string]uint64{}}
	h := fnv.New64a()
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Metadata.Name < l.Items[j].Metadata.Name })
	for _, it := range l.Items {
		rv, _ := strconv.ParseUint(it.Metadata.ResourceVersion, 10, 64)
		if it.Metadata.Name == k8sForeign {
			r.Foreign[it.Metadata.Name] = rv
			continue
		}
		fmt.Fprintf(h, "%s=%s;", it.Metadata.Name, it.Metadata.ResourceVersion)
		if len(it.Ports) == 0 {
			continue
		}
		for _, ep := range it.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			st := history.Critical
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				st = history.Passing
			}
			r.Servers[harness.ServerID(catalogh.Service, ep.Addresses[0], it.Ports[0].Port)] = st
		}
	}
	r.Index = h.Sum64()
	return r
}

// poll reads the slices every 100 ms until the returned stop is called.
func (s *k8sScenario) poll() (stop func()) {
	return every(100*time.Millisecond, func() {
		s.record(history.Event{Read: s.read()})
	})
}

// every calls f every period until the returned stop is called (and
// waits for the last call).
func every(period time.Duration, f func()) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			f()
		}
	}()
	return func() { close(quit); <-done }
}

// watch follows each node's bridge process (every 200 ms): a process gone
// is the bridge down, a new one the bridge up, whoever stopped or started
// it (a fault, the kubelet, a rollout). It copies the pods' logs every
// second too: the kubelet removes a deleted pod's.
func (s *k8sScenario) watch() (stop func()) {
	stopPIDs := every(200*time.Millisecond, s.watchPIDs)
	stopLogs := every(time.Second, s.copyLogs)
	return func() { stopPIDs(); stopLogs() }
}

func (s *k8sScenario) watchPIDs() {
	now := k8sh.BridgePIDs(s.nsOf)
	for _, b := range bridgeNames {
		pid := 0
		if ps := now[b]; len(ps) > 0 {
			pid = slices.Max(ps)
		}
		s.mu.Lock()
		was := s.pids[b]
		s.pids[b] = pid
		s.mu.Unlock()
		if pid == was {
			continue
		}
		if was != 0 {
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeDown}})
		}
		if pid != 0 {
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeUp}})
		}
	}
}

// pid is the node's bridge process as the watcher last saw it (0: none).
func (s *k8sScenario) pid(b string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pids[b]
}

// copyLogs copies every container log of every node into s.logs
// (<node>/<pod dir>/<container>/<n>.log), whole: the files only grow.
func (s *k8sScenario) copyLogs() {
	for _, b := range bridgeNames {
		root := s.nodes[b].PodLogsDir()
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			dst := filepath.Join(s.logs, b, rel)
			src, err := d.Info()
			if err != nil {
				return nil
			}
			if old, err := os.Stat(dst); err == nil && old.Size() >= src.Size() {
				return nil // not grown since the last copy: no read
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			_ = os.MkdirAll(filepath.Dir(dst), 0o755)
			_ = os.WriteFile(dst, data, 0o644)
			return nil
		})
	}
}

// logEvents adds the terms and writes every pod logged (the bridge's JSON
// lines inside the kubelet's CRI log format: "<time> <stream> <tag> <line>").
func (s *k8sScenario) logEvents() {
	for _, b := range bridgeNames {
		_ = filepath.WalkDir(filepath.Join(s.logs, b), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			lines := func(yield func(string) bool) {
				for line := range bytes.Lines(data) {
					f := strings.SplitN(string(line), " ", 4)
					if len(f) == 4 && !yield(f[3]) {
						return
					}
				}
			}
			s.add(leaderEvents(b, "endpointslices", lines)...)
			return nil
		})
	}
}

// k8sFaultKind is one kind of fault of the Kubernetes runs.
type k8sFaultKind struct {
	kind   string
	weight int
	target func(s *k8sScenario, st step) string
	run    func(s *k8sScenario, id string, st step)
}

func weightsOfK8s(ks []k8sFaultKind) []weighted {
	out := make([]weighted, len(ks))
	for i, k := range ks {
		out[i] = weighted{k.kind, k.weight}
	}
	return out
}

func bridgeOf(_ *k8sScenario, st step) string { return bridgeNames[st.target%len(bridgeNames)] }
func segOf(_ *k8sScenario, st step) string    { return "segment " + []string{"a", "b"}[st.target%2] }
func fleetWide(*k8sScenario, step) string     { return "every bridge" }

// signal sends sig to node b's bridge process, if it runs.
func (s *k8sScenario) signal(b string, sig syscall.Signal) bool {
	pid := s.pid(b)
	if pid == 0 {
		return false
	}
	return syscall.Kill(pid, sig) == nil
}

// k8sKinds are the faults of a Kubernetes run.
var k8sKinds = []k8sFaultKind{
	{"bridge-kill", 3, bridgeOf, func(s *k8sScenario, id string, st step) {
		// kill -9 of the container's process: the kubelet starts it
		// again (after its back-off, when it crashed before).
		if !s.signal(bridgeOf(s, st), syscall.SIGKILL) {
			s.t.Logf("robustness: %s: %s runs no bridge", id, bridgeOf(s, st))
		}
		time.Sleep(st.d)
	}},
	{"bridge-pause", 2, bridgeOf, func(s *k8sScenario, id string, st step) {
		b := bridgeOf(s, st)
		if !s.signal(b, syscall.SIGSTOP) {
			s.t.Logf("robustness: %s: %s runs no bridge", id, b)
			return
		}
		pid := s.pid(b)
		s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgePaused}})
		time.Sleep(st.d)
		_ = syscall.Kill(pid, syscall.SIGCONT)
		s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgePaused, Back: true}})
	}},
	{"bridge-cut-registry", 2, bridgeOf, func(s *k8sScenario, _ string, st step) {
		// The node cut from the management network: its bridge (and its
		// kubelet) reach no apiserver; requests time out.
		b := bridgeOf(s, st)
		h := s.nodes[b].Host()
		s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutRegistry}})
		heal := faults.Partition(s.t, h, h.Dev(s.c.Management()))
		time.Sleep(st.d)
		heal()
		s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutRegistry, Back: true}})
	}},
	{"bridge-cut-segment", 2, bridgeOf, func(s *k8sScenario, _ string, st step) {
		b := bridgeOf(s, st)
		n := s.nodes[b]
		s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutSegment}})
		heal := faults.DropUDP(s.t, n.Host(), n.LANDev())
		time.Sleep(st.d)
		heal()
		s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutSegment, Back: true}})
	}},
	{"server-stop", 3, func(s *k8sScenario, st step) string { return s.servers[st.target%len(s.servers)].id }, func(s *k8sScenario, _ string, st step) {
		sv := s.servers[st.target%len(s.servers)]
		stopServer(s.t, s.record, sv)
		time.Sleep(st.d)
		startServer(s.t, s.record, sv)
	}},
	{"segment-silence", 2, segOf, func(s *k8sScenario, _ string, st step) {
		seg := []string{"a", "b"}[st.target%2]
		for _, sv := range s.servers {
			if sv.seg == seg {
				stopServer(s.t, s.record, sv)
			}
		}
		time.Sleep(st.d)
		for _, sv := range s.servers {
			if sv.seg == seg {
				startServer(s.t, s.record, sv)
			}
		}
	}},
	{"segment-loss", 1, segOf, func(s *k8sScenario, _ string, st step) {
		seg := []string{"a", "b"}[st.target%2]
		var heals []func()
		for _, b := range bridgeNames {
			if b[:1] == seg {
				n := s.nodes[b]
				heals = append(heals, faults.Loss(s.t, n.Host(), n.LANDev(), 0.3))
			}
		}
		time.Sleep(st.d)
		for _, heal := range heals {
			heal()
		}
	}},
	{"segment-duplicates", 1, segOf, func(s *k8sScenario, _ string, st step) {
		seg := []string{"a", "b"}[st.target%2]
		duplicateReplies(s.t, s.servers, seg, s.segs[seg], func(b string) netip.Addr { return s.nodes[b].Host().IP(s.segs[seg]) }, st.d)
	}},
	{"api-outage", 1, func(*k8sScenario, step) string { return "kube-apiserver" }, func(s *k8sScenario, id string, st step) {
		s.record(history.Event{Registry: &history.RegistryChange{State: history.RegistryDown}})
		s.c.StopAPIServer()
		time.Sleep(st.d)
		ctx, cancel := context.WithTimeout(s.t.Context(), 2*time.Minute)
		defer cancel()
		if err := s.c.StartAPIServer(ctx); err != nil {
			s.t.Fatalf("robustness: %s: start the apiserver again: %v", id, err)
		}
		s.record(history.Event{Registry: &history.RegistryChange{State: history.RegistryUp}})
	}},
	{"api-timeouts", 1, fleetWide, func(s *k8sScenario, _ string, st step) {
		// Every node cut from the apiserver at once: every request of
		// every bridge times out (the apiserver itself is fine).
		var heals []func()
		for _, b := range bridgeNames {
			h := s.nodes[b].Host()
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutRegistry}})
			heals = append(heals, faults.Partition(s.t, h, h.Dev(s.c.Management())))
		}
		time.Sleep(st.d)
		for i, b := range bridgeNames {
			heals[i]()
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutRegistry, Back: true}})
		}
	}},
	{"hostile-configmap", 1, bridgeOf, func(s *k8sScenario, id string, st step) {
		// Someone with write access to the namespace overwrites a
		// bridge's observation with garbage.
		name := catalogh.Service + "-obs-" + bridgeOf(s, st)
		patch := fmt.Sprintf(`{"binaryData":{"0":%q}}`, base64.StdEncoding.EncodeToString([]byte("not an observation")))
		ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
		defer cancel()
		if _, err := s.c.APISend(ctx, "PATCH", "/api/v1/namespaces/default/configmaps/"+name, "application/merge-patch+json", []byte(patch)); err != nil {
			s.t.Logf("robustness: %s: overwrite configmap %s: %v", id, name, err)
		}
		time.Sleep(st.d)
	}},
	{"daemonset-rollout", 1, func(*k8sScenario, step) string { return "ds/" + k8sDS }, func(s *k8sScenario, id string, _ step) {
		// kubectl rollout restart: the DaemonSet replaces its pods one
		// node at a time (maxUnavailable 1).
		ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
		defer cancel()
		if out, err := s.c.Kubectl(ctx, "rollout", "restart", "ds/"+k8sDS); err != nil {
			s.t.Fatalf("robustness: %s: rollout restart: %v\n%s", id, err, out)
		}
		s.rolloutStatus()
	}},
}
