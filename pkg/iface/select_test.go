package iface

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// fake builds an Interface from "name addr/len" with the given flags.
func fake(t *testing.T, name, cidrStr string, up, loopback bool) Interface {
	t.Helper()
	p := netip.MustParsePrefix(cidrStr)
	return Interface{
		Name: name, Addr: p.Addr(), Prefix: p.Masked(),
		Broadcast: cidr.Broadcast(p), Up: up, Loopback: loopback, Virtual: IsVirtual(name),
	}
}

func names(ifs []Interface) []string {
	var out []string
	for _, i := range ifs {
		out = append(out, i.Name+"="+i.Addr.String())
	}
	return out
}

func TestSelect(t *testing.T) {
	all := []Interface{
		fake(t, "lo", "127.0.0.1/8", true, true),
		fake(t, "eth0", "10.1.2.3/16", true, false),
		fake(t, "eth1", "192.168.1.5/24", true, false),
		fake(t, "eth2", "172.16.0.9/24", false, false), // down
		fake(t, "docker0", "172.17.0.1/16", true, false),
		fake(t, "eth0", "10.9.9.9/24", true, false), // second address on eth0
		fake(t, "v6only", "2001:db8::1/64", true, false),
		{Name: "noaddr", Up: true},
		fake(t, "Eth1", "10.5.5.5/24", true, false),
	}
	tests := []struct {
		name      string
		whitelist []string
		blacklist []string
		want      []string
	}{
		{"no lists", nil, nil, []string{"eth0=10.1.2.3", "eth1=192.168.1.5", "docker0=172.17.0.1", "eth0=10.9.9.9", "Eth1=10.5.5.5"}},
		{"empty lists", []string{}, []string{}, []string{"eth0=10.1.2.3", "eth1=192.168.1.5", "docker0=172.17.0.1", "eth0=10.9.9.9", "Eth1=10.5.5.5"}},
		{"whitelist", []string{"eth1", "eth0"}, nil, []string{"eth0=10.1.2.3", "eth1=192.168.1.5", "eth0=10.9.9.9"}},
		{"blacklist", nil, []string{"docker0", "eth0"}, []string{"eth1=192.168.1.5", "Eth1=10.5.5.5"}},
		{"whitelist then blacklist", []string{"eth0", "eth1"}, []string{"eth0"}, []string{"eth1=192.168.1.5"}},
		{"case-sensitive", []string{"ETH0", "Eth1"}, nil, []string{"Eth1=10.5.5.5"}},
		{"no partial match", []string{"eth"}, nil, nil},
		{"whitelisted loopback stays out", []string{"lo"}, nil, nil},
		{"whitelisted down stays out", []string{"eth2"}, nil, nil},
		{"whitelisted v6 stays out", []string{"v6only", "noaddr"}, nil, nil},
		{"blacklist everything", nil, []string{"eth0", "eth1", "Eth1", "docker0"}, nil},
		{"unknown blacklist ignored", nil, []string{"wlan9"}, []string{"eth0=10.1.2.3", "eth1=192.168.1.5", "docker0=172.17.0.1", "eth0=10.9.9.9", "Eth1=10.5.5.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(all)
			got := Select(all, tt.whitelist, tt.blacklist)
			if !slices.Equal(names(got), tt.want) {
				t.Errorf("Select = %v, want %v", names(got), tt.want)
			}
			if !slices.Equal(all, before) {
				t.Error("Select modified its input")
			}
			if len(got) > 0 {
				got[0].Name = "mutated"
				if all[1].Name == "mutated" {
					t.Error("Select result aliases its input")
				}
			}
		})
	}
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		name string
		ifs  []Interface
		want []string // "name network likely-domain"
	}{
		{"none", nil, nil},
		{
			"mixed",
			[]Interface{
				fake(t, "eth0", "10.1.2.3/16", true, false),
				fake(t, "eth1", "192.168.1.5/16", true, false),
				fake(t, "eth2", "172.31.200.7/20", true, false),
				fake(t, "eth3", "172.32.0.1/16", true, false),
				fake(t, "eth4", "10.0.0.5/24", true, false),
				fake(t, "docker0", "172.17.0.1/24", true, false),
				fake(t, "link", "169.254.3.4/16", true, false),
			},
			[]string{"eth0 10.1.0.0/16 10.1.2.0/24", "eth2 172.31.192.0/20 172.31.200.0/24"},
		},
		{
			"os broadcast of the /24 is not segmented",
			[]Interface{func() Interface {
				i := fake(t, "eth0", "10.1.2.3/16", true, false)
				i.Broadcast, i.BroadcastFromOS = netip.MustParseAddr("10.1.2.255"), true
				return i
			}()},
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, s := range Diagnose(tt.ifs) {
				got = append(got, s.Interface+" "+s.Network.String()+" "+s.LikelyBroadcastDomain.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Diagnose = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUnmatched(t *testing.T) {
	all := []Interface{
		fake(t, "lo", "127.0.0.1/8", true, true),
		fake(t, "eth0", "10.1.2.3/16", true, false),
		fake(t, "wlan0", "192.168.1.5/24", false, false),
	}
	tests := []struct {
		name  string
		names []string
		want  []string
	}{
		{"nil", nil, nil},
		{"all match, down and loopback included", []string{"eth0", "lo", "wlan0"}, nil},
		{"typos", []string{"eth0", "eht0", "ETH0", "wlan0", "eth"}, []string{"eht0", "ETH0", "eth"}},
		{"duplicates once", []string{"x", "eth0", "x", "y"}, []string{"x", "y"}},
		{"empty name", []string{""}, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unmatched(all, tt.names); !slices.Equal(got, tt.want) {
				t.Errorf("Unmatched(%q) = %q, want %q", tt.names, got, tt.want)
			}
		})
	}
	if got := Unmatched(nil, []string{"eth0"}); !slices.Equal(got, []string{"eth0"}) {
		t.Errorf("Unmatched with no interfaces = %q", got)
	}
}

func TestIsVirtual(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"docker0", true}, {"br-1a2b3c", true}, {"veth12ab", true}, {"virbr0", true},
		{"cni0", true}, {"flannel.1", true}, {"cali123", true}, {"vxlan.calico", true},
		{"tun0", true}, {"tap0", true}, {"lxcbr0", true}, {"kube-bridge", true},
		{"podman0", true}, {"cilium_host", true}, {"weave", true}, {"vboxnet0", true}, {"vmnet8", true},
		{"eth0", false}, {"enp3s0", false}, {"wlan0", false}, {"lo", false}, {"br0", false},
		{"bond0", false}, {"Docker0", false}, {"", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsVirtual(tt.name); got != tt.want {
				t.Errorf("IsVirtual(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestListerFunc(t *testing.T) {
	want := []Interface{fake(t, "eth0", "10.1.2.3/16", true, false)}
	got, err := ListerFunc(func() ([]Interface, error) { return want, nil }).Interfaces()
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ListerFunc.Interfaces() = %v, %v", got, err)
	}
}
