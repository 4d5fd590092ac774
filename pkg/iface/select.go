package iface

import (
	"slices"
	"strings"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// virtualPrefixes are the name prefixes that mark an interface as virtual
// (container, bridge, overlay and tunnel devices): docker, br- (docker user
// networks), veth, virbr (libvirt), cni, flannel, cali (Calico), vxlan, tun,
// tap, lxc, kube, plus podman, cilium, weave, vboxnet and vmnet.
var virtualPrefixes = []string{
	"docker", "br-", "veth", "virbr", "cni", "flannel", "cali", "vxlan",
	"tun", "tap", "lxc", "kube",
	"podman", "cilium", "weave", "vboxnet", "vmnet",
}

// IsVirtual reports whether name starts with one of the virtual-interface
// prefixes: docker, br-, veth, virbr, cni, flannel, cali, vxlan, tun, tap,
// lxc, kube, podman, cilium, weave, vboxnet, vmnet. The match is
// case-sensitive, like interface names.
func IsVirtual(name string) bool {
	return slices.ContainsFunc(virtualPrefixes, func(p string) bool {
		return strings.HasPrefix(name, p)
	})
}

// Select returns the interfaces discovery broadcasts on, in their original
// order: those that are Up, not Loopback, have an IPv4 Addr and a broadcast
// domain (a prefix shorter than /31); then, if whitelist is non-empty, only
// those whose Name is in it; then without those whose Name is in blacklist.
// Names match exactly and case-sensitively. The result never aliases all.
// It is Rules{Whitelist: whitelist, Blacklist: blacklist}; Rules has the
// other ways of choosing.
func Select(all []Interface, whitelist, blacklist []string) []Interface {
	s, _ := Rules{Whitelist: whitelist, Blacklist: blacklist}.Compile() // names only: cannot fail
	return Taken(s.Decide(all, nil))
}

// Diagnose runs cidr.DetectSegmented over ifs (normally the selected
// interfaces) and returns the flagged ones in order; nil if none.
func Diagnose(ifs []Interface) []cidr.Segmentation {
	var out []cidr.Segmentation
	for _, i := range ifs {
		if s, ok := cidr.DetectSegmented(i.Name, i.Addr, i.Prefix, i.Broadcast, i.Virtual); ok {
			out = append(out, s)
		}
	}
	return out
}

// Unmatched returns the names (from a whitelist or blacklist) that equal the
// Name of no interface in all, each once, in their first-seen order; nil if
// every name matches. all should be the full listing, not the selection, so
// that a down or loopback interface is not reported as a typo.
func Unmatched(all []Interface, names []string) []string {
	var out []string
	for _, n := range names {
		if slices.Contains(out, n) {
			continue
		}
		if !slices.ContainsFunc(all, func(i Interface) bool { return i.Name == n }) {
			out = append(out, n)
		}
	}
	return out
}
