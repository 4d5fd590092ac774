package cidr_test

import (
	"fmt"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// Netmask to prefix length and back, as upstream's helpers; a
// non-contiguous mask is an error.
func ExamplePrefixLenFromMask() {
	n, err := cidr.PrefixLenFromMask(netip.MustParseAddr("255.255.240.0"))
	fmt.Println(n, err)
	m, err := cidr.MaskFromPrefixLen(22)
	fmt.Println(m, err)
	_, err = cidr.PrefixLenFromMask(netip.MustParseAddr("255.0.255.0"))
	fmt.Println(err)
	// Output:
	// 20 <nil>
	// 255.255.252.0 <nil>
	// netmask "255.0.255.0": invalid netmask: ones are not contiguous
}

// The network and broadcast address of an address and a mask, given as a
// dotted mask or a prefix length.
func ExampleNetwork() {
	ip := netip.MustParseAddr("10.1.2.3")
	for _, mask := range []string{"255.255.0.0", "/22", "24"} {
		n, err := cidr.Network(ip, mask)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(mask, "->", n, cidr.Broadcast(n), cidr.HostCount(n), "hosts")
	}
	_, err := cidr.Network(ip, "255.255.0.255")
	fmt.Println(err)
	// Output:
	// 255.255.0.0 -> 10.1.0.0/16 10.1.255.255 65534 hosts
	// /22 -> 10.1.0.0/22 10.1.3.255 1022 hosts
	// 24 -> 10.1.2.0/24 10.1.2.255 254 hosts
	// network of 10.1.2.3: netmask "255.255.0.255": invalid netmask: ones are not contiguous
}

// The segmented-network diagnosis of one interface: a corporate /20 whose
// broadcast probably reaches only the /24 of the address.
func ExampleDetectSegmented() {
	s, ok := cidr.DetectSegmented("eth0", netip.MustParseAddr("10.8.3.7"),
		netip.MustParsePrefix("10.8.0.0/20"), netip.Addr{}, false)
	fmt.Println(ok, s.Network, s.CalculatedBroadcast, s.LikelyBroadcastDomain, s.Segments, s.IsCorporate)

	_, ok = cidr.DetectSegmented("wlan0", netip.MustParseAddr("192.168.3.7"),
		netip.MustParsePrefix("192.168.0.0/16"), netip.Addr{}, false)
	fmt.Println(ok)
	// Output:
	// true 10.8.0.0/20 10.8.15.255 10.8.3.0/24 16 true
	// false
}
