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
