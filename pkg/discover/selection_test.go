package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func TestRoundNoInterfaces(t *testing.T) {
	tests := []struct {
		name      string
		whitelist []string
		blacklist []string
	}{
		{"only loopback", nil, nil},
		{"whitelist matches nothing", []string{"eth9"}, nil},
		{"blacklist removes all", nil, []string{"fake2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l iface.Lister = lister(t)
			if tc.name != "only loopback" {
				l = lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"))
			}
			o := testOptions(freePort(t))
			o.Whitelist, o.Blacklist = tc.whitelist, tc.blacklist
			c := newClient(t, o, l, nil)
			_, err := c.Round(context.Background())
			if !errors.Is(err, ErrNoInterfaces) || !strings.Contains(err.Error(), "lo 127.0.0.1 (loopback: loopback interface)") {
				t.Fatalf("Round = %v, want ErrNoInterfaces listing what exists", err)
			}
			if _, err := c.Selected(); !errors.Is(err, ErrNoInterfaces) {
				t.Errorf("Selected = %v", err)
			}
		})
	}
	t.Run("lister fails", func(t *testing.T) {
		boom := errors.New("netlink: boom")
		c := newClient(t, testOptions(1), iface.ListerFunc(func() ([]iface.Interface, error) { return nil, boom }), nil)
		if _, err := c.Round(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("Round = %v", err)
		}
	})
}

// nodeLister is a fake Kubernetes node whose interfaces "broadcast" to
// loopback addresses, and whose routes all leave through eth0 (it is an
// iface.Router too, which New prefers to the OS's).
type nodeLister struct{ ifs []iface.Interface }

func (n nodeLister) Interfaces() ([]iface.Interface, error) { return n.ifs, nil }

func (n nodeLister) Route(dst netip.Addr) (iface.Route, error) {
	return iface.Route{Dst: dst, Name: "eth0"}, nil
}

// TestRoundOnANode runs rounds on a node-shaped interface list: eth0 (the
// LAN), cni0 and docker0 (pod networks), and /32s on flannel.1, kube-ipvs0
// and tunl0, each /32 with a responder behind its own address (as a
// ClusterIP forwards to a pod). The /32s are never probed; skipping
// container interfaces leaves eth0 alone; each way of choosing picks eth0.
func TestRoundOnANode(t *testing.T) {
	p := freePort(t)
	mk := func(name, addr, bcast string, bits int) iface.Interface {
		i := fakeIf(name, addr, bcast)
		i.Prefix = netip.PrefixFrom(i.Addr, bits).Masked()
		return i
	}
	ifs := []iface.Interface{
		mk("eth0", "127.0.10.5", "127.0.10.255", 24),
		mk("cni0", "127.0.20.1", "127.0.20.255", 24),
		mk("docker0", "127.0.30.1", "127.0.30.255", 24),
		mk("flannel.1", "127.0.40.1", "127.0.40.1", 32),
		mk("kube-ipvs0", "127.0.50.1", "127.0.50.1", 32),
		mk("kube-ipvs0", "127.0.50.2", "127.0.50.2", 32),
		mk("tunl0", "127.0.60.1", "127.0.60.1", 32),
	}
	// Each responder listens on a probe destination (or a /32's address)
	// and advertises an address of its own, 10.213.<third octet>.1: a
	// subnet's broadcast address is never registered (RefusedSubnetEdge).
	for _, a := range []string{"127.0.10.255", "127.0.20.255", "127.0.40.1", "127.0.50.1"} {
		b := netip.MustParseAddr(a).As4()
		startResponder(t, addrPort(a, p), plainResponder(fmt.Sprintf("10.213.%d.1", b[2]), 0))
	}
	tests := []struct {
		name    string
		set     func(*Options)
		targets []string // probe destinations, once each per send
		servers []string
	}{
		{"no rule: no /32 is probed", func(*Options) {}, []string{"127.0.10.255", "127.0.20.255", "127.0.30.255"}, []string{"10.213.10.1:8000", "10.213.20.1:8000"}},
		{"skip container interfaces", func(o *Options) { o.SkipContainerInterfaces = true }, []string{"127.0.10.255"}, []string{"10.213.10.1:8000"}},
		{"regex", func(o *Options) { o.InterfaceRegex = `eth[0-9]+|ens[0-9]+` }, []string{"127.0.10.255"}, []string{"10.213.10.1:8000"}},
		{"cidrs", func(o *Options) { o.InterfaceCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.8.0/21")} }, []string{"127.0.10.255"}, []string{"10.213.10.1:8000"}},
		{"can reach", func(o *Options) { o.InterfaceCanReach = netip.MustParseAddr("192.0.2.1") }, []string{"127.0.10.255"}, []string{"10.213.10.1:8000"}},
		{"whitelisted /32 is still not probed", func(o *Options) { o.Whitelist = []string{"eth0", "kube-ipvs0"} }, []string{"127.0.10.255"}, []string{"10.213.10.1:8000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(p)
			o.Retries = 0
			tt.set(&o)
			c := newClient(t, o, nodeLister{ifs}, nil)
			var mu sync.Mutex
			var sent []string
			c.sendHook = func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error {
				mu.Lock()
				sent = append(sent, dst.Addr().String())
				mu.Unlock()
				_, err := conn.WriteToUDPAddrPort(b, dst)
				return err
			}
			res, err := settledRoundOf(t, c, len(tt.servers)) // each target's server answers once
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(sent, tt.targets) || res.Stats.ProbesSent != len(tt.targets) {
				t.Errorf("probes to %v (%d), want %v", sent, res.Stats.ProbesSent, tt.targets)
			}
			if got := endpoints(res.Servers); !slices.Equal(got, tt.servers) {
				t.Errorf("servers %v, want %v", got, tt.servers)
			}
		})
	}
	t.Run("decisions name the rule", func(t *testing.T) {
		o := testOptions(p)
		o.SkipContainerInterfaces = true
		ds, err := newClient(t, o, nodeLister{ifs}, nil).Decisions()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.Name+" "+d.Rule)
		}
		want := []string{"eth0 default", "cni0 interfaces_skip_container", "docker0 interfaces_skip_container", "flannel.1 no_broadcast_domain",
			"kube-ipvs0 no_broadcast_domain", "kube-ipvs0 no_broadcast_domain", "tunl0 no_broadcast_domain"}
		if !slices.Equal(got, want) {
			t.Errorf("decisions %v, want %v", got, want)
		}
	})
}
