package iface

import (
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// node is an IPVS Kubernetes node as it lists: the LAN on eth0, the pod
// networks, flannel's /32, three of kube-ipvs0's ClusterIPs and tunl0.
func node(t *testing.T) []Interface {
	t.Helper()
	withIndex := func(i Interface, idx int) Interface { i.Index = idx; return i }
	return []Interface{
		withIndex(fake(t, "lo", "127.0.0.1/8", true, true), 1),
		withIndex(fake(t, "eth0", "192.168.10.5/24", true, false), 2),
		withIndex(fake(t, "cni0", "10.244.1.1/24", true, false), 3),
		withIndex(fake(t, "docker0", "172.17.0.1/16", true, false), 4),
		withIndex(fake(t, "flannel.1", "10.244.1.0/32", true, false), 5),
		withIndex(fake(t, "kube-ipvs0", "10.96.0.1/32", true, false), 6),
		withIndex(fake(t, "kube-ipvs0", "10.96.0.10/32", true, false), 6),
		withIndex(fake(t, "kube-ipvs0", "10.96.14.7/32", true, false), 6),
		withIndex(fake(t, "tunl0", "10.244.1.1/32", true, false), 7),
		withIndex(fake(t, "eth1", "10.0.0.9/31", true, false), 8),
		withIndex(fake(t, "ens5", "10.30.0.7/22", false, false), 9),
	}
}

// routeVia is a Router whose every route leaves through the interface
// index (0: no route).
func routeVia(index int) Router {
	return RouterFunc(func(dst netip.Addr) (Route, error) {
		if index == 0 {
			return Route{}, errors.New("network is unreachable")
		}
		return Route{Dst: dst, Index: index}, nil
	})
}

func TestDecide(t *testing.T) {
	type verdict struct{ name, rule string }
	upstream := []verdict{
		{"lo=127.0.0.1", RuleLoopback},
		{"eth0=192.168.10.5", "+" + RuleDefault},
		{"cni0=10.244.1.1", "+" + RuleDefault},
		{"docker0=172.17.0.1", "+" + RuleDefault},
		{"flannel.1=10.244.1.0", RuleNoBroadcast},
		{"kube-ipvs0=10.96.0.1", RuleNoBroadcast},
		{"kube-ipvs0=10.96.0.10", RuleNoBroadcast},
		{"kube-ipvs0=10.96.14.7", RuleNoBroadcast},
		{"tunl0=10.244.1.1", RuleNoBroadcast},
		{"eth1=10.0.0.9", RuleNoBroadcast},
		{"ens5=10.30.0.7", RuleDown},
	}
	with := func(changes map[string]string) []verdict {
		out := slices.Clone(upstream)
		for i, v := range out {
			if r, ok := changes[v.name]; ok {
				out[i].rule = r
			}
		}
		return out
	}
	tests := []struct {
		name   string
		rules  Rules
		router Router
		want   []verdict // rule, "+rule" when taken
	}{
		{"zero rules", Rules{}, nil, upstream},
		{"skip container", Rules{SkipContainer: true}, nil, with(map[string]string{
			"cni0=10.244.1.1": RuleSkipContainer, "docker0=172.17.0.1": RuleSkipContainer})},
		{"regex", Rules{Regex: `eth[0-9]+|ens[0-9]+|bond[0-9]+(\.[0-9]+)?`}, nil, with(map[string]string{
			"eth0=192.168.10.5": "+" + RuleRegex, "cni0=10.244.1.1": RuleRegex, "docker0=172.17.0.1": RuleRegex})},
		{"regex is anchored", Rules{Regex: `eth`}, nil, with(map[string]string{
			"eth0=192.168.10.5": RuleRegex, "cni0=10.244.1.1": RuleRegex, "docker0=172.17.0.1": RuleRegex})},
		{"cidrs", Rules{CIDRs: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.96.0.0/12")}}, nil, with(map[string]string{
			"eth0=192.168.10.5": "+" + RuleCIDRs, "cni0=10.244.1.1": RuleCIDRs, "docker0=172.17.0.1": RuleCIDRs})},
		{"can reach", Rules{CanReach: netip.MustParseAddr("192.168.10.1")}, routeVia(2), with(map[string]string{
			"eth0=192.168.10.5": "+" + RuleCanReach, "cni0=10.244.1.1": RuleCanReach, "docker0=172.17.0.1": RuleCanReach})},
		{"can reach, no route", Rules{CanReach: netip.MustParseAddr("192.168.10.1")}, routeVia(0), with(map[string]string{
			"eth0=192.168.10.5": RuleCanReach, "cni0=10.244.1.1": RuleCanReach, "docker0=172.17.0.1": RuleCanReach})},
		{"can reach, no router", Rules{CanReach: netip.MustParseAddr("192.168.10.1")}, nil, with(map[string]string{
			"eth0=192.168.10.5": RuleCanReach, "cni0=10.244.1.1": RuleCanReach, "docker0=172.17.0.1": RuleCanReach})},
		{"can reach, route through an unlisted interface", Rules{CanReach: netip.MustParseAddr("192.168.10.1")}, routeVia(42), with(map[string]string{
			"eth0=192.168.10.5": RuleCanReach, "cni0=10.244.1.1": RuleCanReach, "docker0=172.17.0.1": RuleCanReach})},
		{"whitelist cannot take a /32", Rules{Whitelist: []string{"kube-ipvs0", "eth0"}}, nil, with(map[string]string{
			"eth0=192.168.10.5": "+" + RuleWhitelist, "cni0=10.244.1.1": RuleWhitelist, "docker0=172.17.0.1": RuleWhitelist})},
		{"whitelist then skip container", Rules{Whitelist: []string{"docker0", "eth0"}, SkipContainer: true}, nil, with(map[string]string{
			"eth0=192.168.10.5": "+" + RuleWhitelist, "cni0=10.244.1.1": RuleWhitelist, "docker0=172.17.0.1": RuleSkipContainer})},
		{"blacklist and skip regex", Rules{Blacklist: []string{"docker0"}, SkipRegex: `cni.*`}, nil, with(map[string]string{
			"cni0=10.244.1.1": RuleSkipRegex, "docker0=172.17.0.1": RuleBlacklist})},
		{"every rule", Rules{Whitelist: []string{"eth0", "cni0"}, Regex: `.*0`, CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
			CanReach: netip.MustParseAddr("8.8.8.8"), SkipContainer: true}, routeVia(2), with(map[string]string{
			"eth0=192.168.10.5": "+" + RuleCanReach, "cni0=10.244.1.1": RuleCanReach, "docker0=172.17.0.1": RuleWhitelist})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := node(t)
			s, err := tt.rules.Compile()
			if err != nil {
				t.Fatal(err)
			}
			ds := s.Decide(all, tt.router)
			var got []verdict
			for _, d := range ds {
				r := d.Rule
				if d.Taken {
					r = "+" + r
				}
				if d.Reason == "" {
					t.Errorf("%s %s: no reason", d.Name, d.Addr)
				}
				got = append(got, verdict{d.Name + "=" + d.Addr.String(), r})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Decide =\n %v\nwant\n %v", got, tt.want)
			}
			for _, i := range Taken(ds) {
				if !slices.Contains(got, verdict{i.Name + "=" + i.Addr.String(), "+" + ruleOf(ds, i)}) {
					t.Errorf("Taken lists %s %s, which was not taken", i.Name, i.Addr)
				}
			}
		})
	}
}

func ruleOf(ds []Decision, i Interface) string {
	for _, d := range ds {
		if d.Interface == i {
			return d.Rule
		}
	}
	return ""
}

// TestDecideReasons pins the reasons `bridge interfaces` prints.
func TestDecideReasons(t *testing.T) {
	s, err := Rules{Regex: `eth[0-9]+|cni0`, CanReach: netip.MustParseAddr("192.168.10.1"), SkipContainer: true}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"lo 127.0.0.1":          "loopback interface",
		"eth0 192.168.10.5":     `name matches interfaces_regex "eth[0-9]+|cni0"; reaches interfaces_can_reach 192.168.10.1`,
		"cni0 10.244.1.1":       "interfaces_can_reach 192.168.10.1 is reached through eth0",
		"docker0 172.17.0.1":    `name does not match interfaces_regex "eth[0-9]+|cni0"`,
		"kube-ipvs0 10.96.14.7": "/32 address has no broadcast domain (a probe would be a unicast to 10.96.14.7)",
		"eth1 10.0.0.9":         "/31 address has no broadcast domain (a probe would be a unicast to 10.0.0.9)",
		"ens5 10.30.0.7":        "interface is down",
	}
	for _, d := range s.Decide(node(t), routeVia(2)) {
		k := d.Name + " " + d.Addr.String()
		if w, ok := want[k]; ok && d.Reason != w {
			t.Errorf("%s: reason %q, want %q", k, d.Reason, w)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("%s not decided", k)
	}
	s, _ = Rules{SkipContainer: true}.Compile()
	for _, d := range s.Decide(node(t), nil) {
		if d.Name == "docker0" && d.Reason != "container/CNI interface: Docker's default bridge" {
			t.Errorf("docker0: reason %q", d.Reason)
		}
		if d.Name == "eth0" && d.Reason != "up, IPv4, with a broadcast domain; no selecting rule set" {
			t.Errorf("eth0: reason %q", d.Reason)
		}
	}
}

func TestRulesCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules Rules
		want  []string // substrings of the error
	}{
		{"bad regex", Rules{Regex: "eth["}, []string{`interfaces_regex: bad pattern "eth["`, "missing closing ]"}},
		{"half-anchored regex", Rules{Regex: "a)|(b"}, []string{`interfaces_regex: bad pattern "a)|(b"`}},
		{"bad skip regex", Rules{SkipRegex: "(cni"}, []string{`interfaces_skip_regex: bad pattern "(cni"`}},
		{"v6 cidr", Rules{CIDRs: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}}, []string{"interfaces_cidrs: fd00::/8 is not an IPv4 network"}},
		{"v6 can reach", Rules{CanReach: netip.MustParseAddr("fd00::1")}, []string{"interfaces_can_reach: fd00::1 is not an IPv4 address"}},
		{"all at once", Rules{Regex: "[", SkipRegex: "[", CanReach: netip.MustParseAddr("::2")}, []string{"interfaces_regex", "interfaces_skip_regex", "interfaces_can_reach"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.rules.Compile()
			if err == nil {
				t.Fatal("Compile: no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	s, err := Rules{CIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")}, CanReach: netip.MustParseAddr("::ffff:10.0.0.1")}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Rules(); r.CIDRs[0] != netip.MustParsePrefix("10.1.0.0/16") || r.CanReach != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("compiled rules not normalised: %+v", r)
	}
}

func TestRouteName(t *testing.T) {
	all := node(t)
	tests := []struct {
		name string
		rt   Route
		want string
	}{
		{"by name", Route{Name: "ens5", Index: 2}, "ens5"},
		{"by index", Route{Index: 3}, "cni0"},
		{"by source (portable lookup)", Route{Src: netip.MustParseAddr("172.17.0.1")}, "docker0"},
		{"unknown index, known source", Route{Index: 99, Src: netip.MustParseAddr("192.168.10.5")}, "eth0"},
		{"nothing known", Route{Index: 99}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := routeName(all, tt.rt); got != tt.want {
				t.Errorf("routeName(%+v) = %q, want %q", tt.rt, got, tt.want)
			}
		})
	}
}

func TestContainerInterface(t *testing.T) {
	container := []string{
		"docker0", "docker_gwbridge", "br-1a2b3c4d5e6f", "veth12ab34", "vethwe-bridge", "cni0", "cni-podman0", "cbr0",
		"podman0", "nerdctl0", "flannel.1", "flannel-v6.1", "flannel-wg", "flannel", "cali1a2b3c4d5e6", "vxlan.calico",
		"vxlan-v6.calico", "wireguard.cali", "tunl0", "kube-ipvs0", "kube-bridge", "kube-dummy-if", "nodelocaldns",
		"cilium_host", "cilium_net", "cilium_vxlan", "lxc1234abcd", "lxc_health", "lxcbr0", "weave", "datapath",
		"vxlan-6784", "genev_sys_6081", "vxlan_sys_4789", "ovs-system", "br-int", "ovn-k8s-mp0", "ovn0",
		"antrea-gw0", "antrea-tun0", "eni1a2b3c4d5e6", "vlan.eth.1", "gke1a2b3c4d5e", "azv1a2b3c4d5e", "azure0",
		"virbr0", "lxdbr0", "incusbr0",
	}
	lan := []string{
		"eth0", "eth1", "ens5", "ens192", "enp3s0", "eno1", "enx00e04c680001", "bond0", "bond0.100", "br0", "breth0",
		"br-lan", "br-ex", "team0", "em1", "wlan0", "wlp2s0", "ib0", "tun0", "wg0", "tailscale0", "lo", "",
		"Docker0", "eni0", "kube-ipvs1", "cilium",
	}
	for _, n := range container {
		if what, ok := ContainerInterface(n); !ok || what == "" {
			t.Errorf("ContainerInterface(%q) = %q, %v; want a container interface", n, what, ok)
		}
	}
	for _, n := range lan {
		if what, ok := ContainerInterface(n); ok {
			t.Errorf("ContainerInterface(%q) = %q; want not a container interface", n, what)
		}
	}
}

// FuzzCompilePattern checks that a pattern from configuration either is
// refused or matches whole names only: whatever it matches, the same
// pattern unanchored matches too, and a quoted name matches itself only.
func FuzzCompilePattern(f *testing.F) {
	for _, s := range []string{"eth[0-9]+", `eth[0-9]+|ens[0-9]+|bond[0-9]+(\.[0-9]+)?`, "a)|(b", "eth", ".*", "", "(", `\`, "[)]", "x{1,2}", "^eth0$", "(?i)ETH0", `\Q`, `\Qeth0.1`} {
		f.Add(s, "eth0")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		re, err := CompilePattern(pattern)
		if err != nil {
			if _, plain := regexp.Compile(pattern); plain == nil {
				t.Fatalf("CompilePattern(%q) refused a valid pattern: %v", pattern, err)
			}
			return
		}
		if re.MatchString(name) {
			plain := regexp.MustCompile(pattern)
			if !plain.MatchString(name) {
				t.Fatalf("%q matches %q anchored but not unanchored", pattern, name)
			}
		}
		if !utf8.ValidString(name) {
			return // interface names from the kernel are bytes; patterns are UTF-8
		}
		q, err := CompilePattern(regexp.QuoteMeta(name))
		if err != nil {
			t.Fatalf("quoted %q: %v", name, err)
		}
		if !q.MatchString(name) || (name != "" && q.MatchString(name+"x")) || q.MatchString("x"+name) {
			t.Fatalf("quoted %q matches more or less than itself", name)
		}
	})
}

// TestCompilePatternQuoted: \Q quotes to the end of the pattern; anchoring
// must not quote the anchors with it (found by FuzzCompilePattern).
func TestCompilePatternQuoted(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{`\Q`, "", true},
		{`\Qeth0.1`, "eth0.1", true},
		{`\Qeth0.1`, "eth0x1", false},
		{`\Qeth0.1`, "eth0.10", false},
		{`a|b\Q)`, "b)", true},
	} {
		re, err := CompilePattern(tt.pattern)
		if err != nil {
			t.Fatalf("CompilePattern(%q): %v", tt.pattern, err)
		}
		if got := re.MatchString(tt.name); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}
