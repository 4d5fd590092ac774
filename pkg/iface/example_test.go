package iface_test

import (
	"fmt"
	"log"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// interfaces is a host's listing as List would return it.
func interfaces() []iface.Interface {
	mk := func(name, addr string, up, loopback bool) iface.Interface {
		p := netip.MustParsePrefix(addr)
		return iface.Interface{Name: name, Addr: p.Addr(), Prefix: p.Masked(), Up: up, Loopback: loopback,
			Broadcast: cidr.Broadcast(p), Virtual: iface.IsVirtual(name)}
	}
	return []iface.Interface{
		mk("lo", "127.0.0.1/8", true, true),
		mk("eth0", "10.20.4.17/16", true, false),
		mk("wlan0", "192.168.1.5/24", true, false),
		mk("docker0", "172.17.0.1/16", true, false),
		mk("eth1", "10.9.0.2/24", false, false),
	}
}

// List the host's interfaces as upstream's get_interfaces() does.
// (Not run by go test: the output depends on the machine.)
func ExampleList() {
	all, err := iface.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, i := range iface.Select(all, nil, nil) {
		fmt.Println(i.Name, i.Addr, i.Netmask(), i.Broadcast)
	}
}

// Select the interfaces a round probes (upstream select_interfaces):
// active and not loopback, then the whitelist, then the blacklist.
func ExampleSelect() {
	all := interfaces()
	for _, i := range iface.Select(all, nil, []string{"docker0"}) {
		fmt.Println(i.Name, i.Addr, i.Netmask(), i.Broadcast)
	}
	fmt.Println(iface.Select(all, []string{"wlan0"}, nil)[0].Name)
	fmt.Println(iface.Unmatched(all, []string{"eth0", "eht0"}))
	// Output:
	// eth0 10.20.4.17 255.255.0.0 10.20.255.255
	// wlan0 192.168.1.5 255.255.255.0 192.168.1.255
	// wlan0
	// [eht0]
}

// The segmented-network diagnosis of a given interface list (upstream
// detect_segmented_network): eth0 sits on a corporate /16 whose broadcast
// probably reaches only its own /24.
func ExampleDiagnose() {
	for _, s := range iface.Diagnose(iface.Select(interfaces(), nil, nil)) {
		fmt.Printf("%s %s: network %s (%d hosts), likely broadcast domain %s, %d segments\n",
			s.Interface, s.IP, s.Network, s.TotalHosts, s.LikelyBroadcastDomain, s.Segments)
	}
	// Output:
	// eth0 10.20.4.17: network 10.20.0.0/16 (65534 hosts), likely broadcast domain 10.20.4.0/24, 256 segments
	// docker0 172.17.0.1: network 172.17.0.0/16 (65534 hosts), likely broadcast domain 172.17.0.0/24, 256 segments
}

// Choose interfaces on a Kubernetes node as a DaemonSet would: container
// and CNI interfaces skipped; /32s (flannel.1, kube-ipvs0's ClusterIPs) are
// never probed whatever the rules say.
func ExampleRules() {
	mk := func(name, addr string) iface.Interface {
		p := netip.MustParsePrefix(addr)
		return iface.Interface{Name: name, Addr: p.Addr(), Prefix: p.Masked(), Broadcast: cidr.Broadcast(p), Up: true}
	}
	node := []iface.Interface{
		mk("ens5", "10.20.4.17/24"),
		mk("cni0", "10.244.1.1/24"),
		mk("flannel.1", "10.244.1.0/32"),
		mk("kube-ipvs0", "10.96.0.10/32"),
	}
	sel, err := iface.Rules{SkipContainer: true}.Compile()
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range sel.Decide(node, nil) {
		fmt.Printf("%-10s %-5v %s: %s\n", d.Name, d.Taken, d.Rule, d.Reason)
	}
	// Output:
	// ens5       true  default: up, IPv4, with a broadcast domain; no selecting rule set
	// cni0       false interfaces_skip_container: container/CNI interface: the CNI bridge plugin (flannel, k3s, containerd, kubenet)
	// flannel.1  false no_broadcast_domain: /32 address has no broadcast domain (a probe would be a unicast to 10.244.1.0)
	// kube-ipvs0 false no_broadcast_domain: /32 address has no broadcast domain (a probe would be a unicast to 10.96.0.10)
}
