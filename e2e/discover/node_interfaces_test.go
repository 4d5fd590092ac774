package discover_test

// Interface choice on a Kubernetes node (issue 17, item 8): the real bridge
// binary in a namespace shaped like an IPVS node, with the chart's default
// interface settings and with each way of choosing the LAN interface.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/helmbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// ipvsNode is a node namespace with the interfaces of a flannel + IPVS
// Kubernetes node: eth0 on the lab LAN (servers behind it), cni0 and
// docker0 (bridges, each with a veth port so they have carrier), flannel.1
// (vxlan, /32), kube-ipvs0 (20 ClusterIP /32s) and tunl0 (/32).
type ipvsNode struct {
	node    *netns.Host
	servers []string // "ip:port" of the responders on the LAN
}

const nodeClusterIPs = 20

func newIPVSNode(t *testing.T) *ipvsNode {
	t.Helper()
	lab := netns.New(t)
	lan := lab.Bridge("lan")
	node := lab.Host("node", lan, "10.213.71.10/24")
	n := &ipvsNode{node: node}
	for i := range 2 {
		ip := fmt.Sprintf("10.213.71.%d", 11+i)
		srv := lab.Host(fmt.Sprintf("srv%d", i), lan, ip+"/24")
		harness.Respond(t, srv, 1, "--ip", ip)
		n.servers = append(n.servers, harness.Endpoint(ip, 8000))
	}

	ip := func(args ...string) {
		t.Helper()
		if r := node.Run(t.Context(), append([]string{"ip"}, args...)...); r.Err != nil {
			t.Fatalf("node: ip %s: %v\n%s", strings.Join(args, " "), r.Err, r.Stderr)
		}
	}
	has := func(dev string) bool {
		return node.Run(t.Context(), "ip", "link", "show", dev).Err == nil
	}
	// The LAN leg becomes eth0, as on a node.
	dev := node.Dev(lan)
	ip("link", "set", dev, "down")
	ip("link", "set", dev, "name", "eth0")
	ip("link", "set", "eth0", "up")
	ip("route", "add", "default", "via", "10.213.71.1", "dev", "eth0")

	for _, b := range []struct{ dev, addr, port string }{{"cni0", "10.244.1.1/24", "vethpod"}, {"docker0", "172.17.0.1/16", "vethdock"}} {
		ip("link", "add", b.dev, "type", "bridge")
		ip("addr", "add", b.addr, "brd", "+", "dev", b.dev)
		ip("link", "add", b.port, "type", "veth", "peer", "name", b.port+"p")
		ip("link", "set", b.port, "master", b.dev)
		ip("link", "set", b.port, "up")
		ip("link", "set", b.port+"p", "up")
		ip("link", "set", b.dev, "up")
	}
	ip("link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "nolearning")
	ip("addr", "add", "10.244.1.0/32", "dev", "flannel.1")
	ip("link", "set", "flannel.1", "up")

	// kube-proxy makes kube-ipvs0 a dummy; where the kernel lacks the
	// module a bridge of that name holds the addresses just the same.
	if r := node.Run(t.Context(), "ip", "link", "add", "kube-ipvs0", "type", "dummy"); r.Err != nil {
		ip("link", "add", "kube-ipvs0", "type", "bridge")
	}
	for i := range nodeClusterIPs {
		ip("addr", "add", fmt.Sprintf("10.96.0.%d/32", 1+i), "dev", "kube-ipvs0")
	}
	ip("link", "set", "kube-ipvs0", "up")

	// With the ipip module loaded every new namespace already has tunl0.
	if !has("tunl0") {
		if r := node.Run(t.Context(), "ip", "link", "add", "tunl0", "type", "ipip"); r.Err != nil {
			ip("link", "add", "tunl0", "type", "bridge")
		}
	}
	ip("addr", "add", "10.244.1.1/32", "dev", "tunl0")
	ip("link", "set", "tunl0", "up")
	return n
}

// chartInterfaceEnv renders the chart with its default values and returns
// the DaemonSet's DISCOVERY_CLIENT_INTERFACES_* variables: the chart's
// default interface settings, as a bridge on a node gets them.
func chartInterfaceEnv(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmbin.Path(t), "template", "udb", harness.ChartDir(t), "--show-only", "templates/daemonset.yaml")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var ds appsv1.DaemonSet
	if err := yaml.Unmarshal(out, &ds); err != nil {
		t.Fatalf("rendered DaemonSet: %v\n%s", err, out)
	}
	var env []string
	for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
		if strings.HasPrefix(e.Name, "DISCOVERY_CLIENT_INTERFACES_") {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env
}

// probeLog is what a `bridge discover --log-level debug --log-format json`
// round logged: the destination of every probe sent and the round's
// probes_sent.
type probeLog struct {
	to         []string
	probesSent int
}

func parseProbeLog(t *testing.T, stderr string) probeLog {
	t.Helper()
	var pl probeLog
	pl.probesSent = -1
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			To      string `json:"to"`
			Stats   *struct {
				ProbesSent int `json:"probes_sent"`
			} `json:"stats"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Message {
		case "probe sent":
			pl.to = append(pl.to, line.To)
		case "round finished":
			if line.Stats != nil {
				pl.probesSent = line.Stats.ProbesSent
			}
		}
	}
	if pl.probesSent < 0 {
		t.Fatalf("no \"round finished\" line with stats in the log:\n%s", stderr)
	}
	return pl
}

// TestNodeInterfaces: on an IPVS node, the chart's default interface
// settings probe eth0 only (once per send: 4 probes in a round of 3
// retries, where the upstream-style selection sent 25 per send, 100 in
// all: every pod network and every ClusterIP) and find the servers; a
// choice by regex, by CIDR and by can-reach each picks eth0; `bridge
// interfaces` and `bridge doctor` name the rule that skipped every other
// address.
func TestNodeInterfaces(t *testing.T) {
	t.Parallel()
	n := newIPVSNode(t)
	chartEnv := chartInterfaceEnv(t)
	if !slices.Contains(chartEnv, "DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER=true") {
		t.Errorf("the chart's interface settings %v do not skip container interfaces", chartEnv)
	}
	const sends = 4 // the first burst and --retries 3
	eth0 := []string{"10.213.71.255:9999"}

	tests := []struct {
		name   string
		env    []string
		args   []string
		wantTo []string // destinations of one send
	}{
		{"chart default", chartEnv, nil, eth0},
		// The bridge's own default (upstream's selection) still probes the
		// pod networks, but no /32.
		{"bridge default", nil, nil, []string{"10.213.71.255:9999", "10.244.1.255:9999", "172.17.255.255:9999"}},
		{"regex", nil, []string{"--interfaces-regex", `eth[0-9]+|ens[0-9]+|bond[0-9]+(\.[0-9]+)?`}, eth0},
		{"cidr", nil, []string{"--interfaces-cidr", "10.213.0.0/16"}, eth0},
		{"can reach", nil, []string{"--interfaces-can-reach", "192.0.2.1"}, eth0},
		{"can reach, env", []string{"DISCOVERY_CLIENT_INTERFACES_CAN_REACH=10.213.71.1"}, nil, eth0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--retries", "3", "--timeout", "1", "--log-level", "debug", "--log-format", "json"}, tt.args...)
			got, r := harness.DiscoverJSON(t, n.node, tt.env, 0, args...)
			harness.WantServers(t, got, r, n.servers...)
			for _, s := range got {
				if s.Interface != "eth0" {
					t.Errorf("server %s:%d answered on %q, want eth0", s.IP, s.Port, s.Interface)
				}
			}
			pl := parseProbeLog(t, r.Stderr)
			t.Logf("%s: %d probes in the round, destinations of the first send %v", tt.name, pl.probesSent, pl.to)
			if pl.probesSent != sends*len(tt.wantTo) {
				t.Errorf("probes sent in the round = %d, want %d (%v, %d sends)", pl.probesSent, sends*len(tt.wantTo), tt.wantTo, sends)
			}
			if !slices.Equal(pl.to, tt.wantTo) {
				t.Errorf("first send went to %v, want only %v", pl.to, tt.wantTo)
			}
		})
	}

	t.Run("library, same variables", func(t *testing.T) {
		bin := buildLibdemo(t)
		for _, env := range [][]string{chartEnv, {"DISCOVERY_CLIENT_INTERFACES_CAN_REACH=192.0.2.1"}, {`DISCOVERY_CLIENT_INTERFACES_REGEX=eth[0-9]+`}} {
			out, r := libdemo(t, n.node, bin, append([]string{"DISCOVERY_CLIENT_TIMEOUT=1"}, env...))
			if r.ExitCode != 0 {
				t.Fatalf("libdemo %v: exit %d\n%s\n%s", env, r.ExitCode, r.Stdout, r.Stderr)
			}
			if !slices.Equal(out.Interfaces, []string{"eth0"}) {
				t.Errorf("libdemo %v: interfaces %v, want [eth0]", env, out.Interfaces)
			}
			var got []string
			for _, s := range out.Servers {
				got = append(got, harness.Endpoint(s.IP, s.Port))
			}
			slices.Sort(got)
			if !slices.Equal(got, n.servers) {
				t.Errorf("libdemo %v: servers %v, want %v", env, got, n.servers)
			}
		}
	})

	t.Run("run --once logs the choice", func(t *testing.T) {
		r := harness.Bridge(t, n.node, chartEnv, "run", "--once", "--sink", "stdout", "--metrics-addr", "", "--timeout", "1", "--log-format", "json")
		if r.ExitCode != 0 {
			t.Fatalf("bridge run --once: exit %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
		}
		var probing []string
		var skipped map[string]any
		sc := bufio.NewScanner(strings.NewReader(r.Stderr))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line["message"] {
			case "probing interface":
				probing = append(probing, fmt.Sprint(line["interface"], " ", line["ip"], " ", line["rule"]))
			case "interface addresses skipped, by rule (bridge interfaces lists them)":
				skipped = line
			}
		}
		if !slices.Equal(probing, []string{"eth0 10.213.71.10 default"}) {
			t.Errorf("probing %v, want eth0 alone\n%s", probing, r.Stderr)
		}
		for rule, want := range map[string]float64{"no_broadcast_domain": nodeClusterIPs + 2, "interfaces_skip_container": 2, "loopback": 1} {
			if skipped[rule] != want {
				t.Errorf("skipped by %s: %v, want %v\n%s", rule, skipped[rule], want, r.Stderr)
			}
		}
		for _, s := range n.servers {
			if !strings.Contains(r.Stdout, strings.Split(s, ":")[0]) {
				t.Errorf("run --once did not export %s:\n%s", s, r.Stdout)
			}
		}
	})

	t.Run("interfaces shows the skip reasons", func(t *testing.T) {
		r := harness.Bridge(t, n.node, chartEnv, "interfaces", "--json")
		if r.ExitCode != 0 {
			t.Fatalf("bridge interfaces: exit %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
		}
		var out struct {
			Interfaces []struct{ Name, IP, Rule, Reason string } `json:"interfaces"`
			Skipped    []struct{ Name, IP, Rule, Reason string } `json:"skipped"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("bridge interfaces --json: %v\n%s", err, r.Stdout)
		}
		if len(out.Interfaces) != 1 || out.Interfaces[0].Name != "eth0" || out.Interfaces[0].IP != "10.213.71.10" {
			t.Errorf("taken = %+v, want eth0 10.213.71.10 alone", out.Interfaces)
		}
		rules := map[string][]string{}
		for _, s := range out.Skipped {
			if s.Reason == "" {
				t.Errorf("%s %s skipped with no reason", s.Name, s.IP)
			}
			rules[s.Name] = append(rules[s.Name], s.Rule)
		}
		want := map[string][]string{
			"cni0": {"interfaces_skip_container"}, "docker0": {"interfaces_skip_container"},
			"flannel.1": {"no_broadcast_domain"}, "tunl0": {"no_broadcast_domain"},
			"kube-ipvs0": slices.Repeat([]string{"no_broadcast_domain"}, nodeClusterIPs),
		}
		for name, w := range want {
			if !slices.Equal(rules[name], w) {
				t.Errorf("%s skipped by %v, want %v\n%s", name, rules[name], w, r.Stdout)
			}
		}
		doc := harness.Bridge(t, n.node, chartEnv, "doctor", "--timeout", "1")
		if doc.ExitCode != 0 {
			t.Fatalf("bridge doctor: exit %d\n%s\n%s", doc.ExitCode, doc.Stdout, doc.Stderr)
		}
		for _, w := range []string{"yes (default)", "no: interfaces_skip_container: container/CNI interface: Docker's default bridge",
			"no: no_broadcast_domain: /32 address has no broadcast domain", "probes sent 4 (send errors 0)"} {
			if !strings.Contains(doc.Stdout, w) {
				t.Errorf("bridge doctor lacks %q:\n%s", w, doc.Stdout)
			}
		}
		text := harness.Bridge(t, n.node, chartEnv, "interfaces")
		t.Logf("bridge interfaces with the chart's settings:\n%s", text.Stdout)
		for _, w := range []string{"interfaces_skip_container", "container/CNI interface: the CNI bridge plugin", "/32 address has no broadcast domain (a probe would be a unicast to 10.96.0.20)"} {
			if !strings.Contains(text.Stdout, w) {
				t.Errorf("bridge interfaces text lacks %q:\n%s", w, text.Stdout)
			}
		}
	})
}
