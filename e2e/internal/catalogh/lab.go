package catalogh

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Service is the name the lab's bridges register their servers under
// (their default).
const Service = "django"

// Lab is the two-segment lab. Tests build it with NewLab, start Consul
// on it (StartCluster, StartACLCluster or StartDevConsul), servers
// (Servers, Shared) and bridges (Bridge); k8s tests that bring their own
// Consul fill in T and Consul only, for the read helpers.
type Lab struct {
	T       testing.TB
	Lab     *netns.Lab
	Cons    *netns.Bridge // the Consul network
	Seg     map[string]*netns.Bridge
	Hosts   map[string]*netns.Host // bridge hosts by name
	Bridges map[string]*harness.BridgeProc
	// ConsulAddrs is the --consul-addr value of every bridge.
	ConsulAddrs string
	Consul      *api.Client
	Args        []string // extra flags of every bridge
	// multiHomed is set once Shared() started its server: segment b's
	// bridges then admit advertised addresses off their segment.
	multiHomed bool
	// Started, when set, is called with every bridge right after it
	// started.
	Started func(*harness.BridgeProc)
}

// SegNet is the /24 of segment "a" (31), "b" (32), or "c" (33, which
// only tests that add it have).
func SegNet(seg string) int {
	return 31 + int(seg[0]-'a')
}

// NewLab builds the Consul network and the two segments, and the bridge
// binary.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	l := &Lab{T: t, Lab: netns.New(t), Seg: map[string]*netns.Bridge{}, Hosts: map[string]*netns.Host{}, Bridges: map[string]*harness.BridgeProc{}}
	l.Cons = l.Lab.Bridge("cons")
	l.Seg["a"] = l.Lab.Bridge("sega")
	l.Seg["b"] = l.Lab.Bridge("segb")
	bridgebin.Path(t)
	return l
}

// Servers starts n responders on segment seg, at 10.213.<31|32>.<31+i>,
// and returns their service IDs.
func (l *Lab) Servers(seg string, n int) []string {
	l.T.Helper()
	var ids []string
	for i := range n {
		h, ip := l.ServerHost(seg, i)
		harness.Respond(l.T, h, 1, "--ip", ip)
		ids = append(ids, harness.ServerID(Service, ip, 8000))
	}
	return ids
}

// ServerHost creates the host of server i of segment seg, at
// 10.213.<31|32>.<31+i>, and returns it with that address.
func (l *Lab) ServerHost(seg string, i int) (*netns.Host, string) {
	l.T.Helper()
	ip := fmt.Sprintf("10.213.%d.%d", SegNet(seg), 31+i)
	return l.Lab.Host(fmt.Sprintf("s%s%d", seg, i), l.Seg[seg], ip+"/24"), ip
}

// Shared starts a responder on a host with a leg in both segments, which
// answers with its segment-a address, and returns its service ID. It is a
// multi-homed server: segment b's bridges get its replies from
// 10.213.32.90 naming 10.213.31.90, outside their whitelisted segment,
// which advertised_addresses local refuses (foreign_address). The bridges
// of segment b started from now on run with advertised_addresses any, the
// setting for such a server (SegmentArgs); segment a's keep the default,
// which admits the address: it is on their segment.
func (l *Lab) Shared() string {
	l.T.Helper()
	h := l.Lab.Host("sab", l.Seg["a"], "10.213.31.90/24")
	h.AddLink(l.Seg["b"], "10.213.32.90/24")
	harness.Respond(l.T, h, 1, "--ip", "10.213.31.90")
	l.multiHomed = true
	return harness.ServerID(Service, "10.213.31.90", 8000)
}

// SegmentArgs are the flags of every bridge (and one-shot run) on segment
// seg: advertised_addresses any on segment b once the multi-homed shared
// server answers there.
func (l *Lab) SegmentArgs(seg string) []string {
	if l.multiHomed && seg == "b" {
		return []string{"--advertised-addresses", "any"}
	}
	return nil
}

// BridgeHost returns the host of bridge name ("a1": segment a, number 1),
// creating it on first use: 10.213.<segment>.<20+n> on its segment and a
// leg on the Consul network.
func (l *Lab) BridgeHost(name string) *netns.Host {
	l.T.Helper()
	if h := l.Hosts[name]; h != nil {
		return h
	}
	seg := name[:1]
	n, _ := strconv.Atoi(name[1:])
	h := l.Lab.Host("b"+name, l.Seg[seg], fmt.Sprintf("10.213.%d.%d/24", SegNet(seg), 20+n))
	h.AddLink(l.Cons, fmt.Sprintf("10.213.30.%d/24", 20+10*(SegNet(seg)-31)+n))
	l.Hosts[name] = h
	return h
}

// Bridge starts (or restarts) catalog-mode bridge name (e.g. "a1") on its
// segment. Its host is created on first use.
func (l *Lab) Bridge(name string, extra ...string) *harness.BridgeProc {
	l.T.Helper()
	seg := name[:1]
	h := l.BridgeHost(name)
	args := []string{"--sink", "consul", "--consul-mode", "catalog", "--consul-addr", l.ConsulAddrs,
		"--bridge-id", name, "--whitelist", h.Dev(l.Seg[seg]), "--metrics-addr", harness.MetricsAddr,
		"--interval", "1s", "--timeout", "0.5", "--log-format", "json"}
	args = append(append(append(args, l.SegmentArgs(seg)...), l.Args...), extra...)
	b := harness.StartRun(l.T, h, name, args...)
	l.Bridges[name] = b
	if l.Started != nil {
		l.Started(b)
	}
	return b
}
