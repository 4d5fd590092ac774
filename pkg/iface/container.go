package iface

import "regexp"

// containerName is one pattern of container, CNI and cluster-internal
// interface names, matched against the whole name, and what creates such
// interfaces (for the skip reason).
type containerName struct {
	re   *regexp.Regexp
	what string
}

// containerNames are the interfaces a node agent's plugins create, which
// interfaces_skip_container skips: pod and container networks (a broadcast
// there reaches pods, not the LAN), overlay and tunnel devices, and devices
// that hold cluster-internal addresses (kube-ipvs0 holds every ClusterIP).
// A node's LAN interface (eth0, ens5, enp3s0, bond0.100, br0, breth0 on
// OVN-Kubernetes, which carries the node's own address) matches none.
var containerNames = []containerName{
	{regexp.MustCompile(`^docker[0-9]+$`), "Docker's default bridge"},
	{regexp.MustCompile(`^docker_gwbridge$`), "Docker Swarm's gateway bridge"},
	{regexp.MustCompile(`^br-[0-9a-f]{12}$`), "a Docker user-defined network"},
	{regexp.MustCompile(`^veth.*$`), "the host end of a container's veth pair"},
	{regexp.MustCompile(`^(cni[0-9]+|cni-podman[0-9]+|cbr0)$`), "the CNI bridge plugin (flannel, k3s, containerd, kubenet)"},
	{regexp.MustCompile(`^(podman|nerdctl)[0-9]+$`), "a Podman or nerdctl bridge"},
	{regexp.MustCompile(`^flannel([.-].*)?$`), "flannel's overlay"},
	{regexp.MustCompile(`^cali.+$`), "a Calico workload interface"},
	{regexp.MustCompile(`^(vxlan\.calico|vxlan-v6\.calico|wireguard\.cali|wg-v6\.cali)$`), "Calico's overlay"},
	{regexp.MustCompile(`^tunl0$`), "the IP-in-IP tunnel (Calico IPIP)"},
	{regexp.MustCompile(`^kube-ipvs0$`), "kube-proxy's IPVS device (every ClusterIP)"},
	{regexp.MustCompile(`^(kube-bridge|kube-dummy-if)$`), "kube-router"},
	{regexp.MustCompile(`^nodelocaldns$`), "NodeLocal DNSCache"},
	{regexp.MustCompile(`^cilium_.+$`), "Cilium"},
	{regexp.MustCompile(`^lxc.*$`), "a Cilium endpoint or an LXC bridge"},
	{regexp.MustCompile(`^(weave|datapath|vxlan-6784)$`), "Weave Net"},
	{regexp.MustCompile(`^(genev_sys_[0-9]+|vxlan_sys_[0-9]+|ovs-system|br-int|ovn-k8s-mp[0-9]+|ovn0)$`), "Open vSwitch / OVN-Kubernetes / Kube-OVN"},
	{regexp.MustCompile(`^antrea-.+$`), "Antrea"},
	{regexp.MustCompile(`^eni[0-9a-f]{11}$`), "an AWS VPC CNI pod interface"},
	{regexp.MustCompile(`^vlan\.eth\.[0-9]+$`), "an AWS VPC CNI branch interface"},
	{regexp.MustCompile(`^gke[0-9a-f]{10,}$`), "a GKE pod interface"},
	{regexp.MustCompile(`^(azv.+|azure0)$`), "Azure CNI"},
	{regexp.MustCompile(`^(virbr[0-9]+|lxdbr[0-9]+|incusbr[0-9]+)$`), "a libvirt, LXD or Incus bridge"},
}

// ContainerInterface reports whether name is a container, CNI or
// cluster-internal interface (see the list in docs/configuration/interfaces.md: docker0, br-<id>,
// veth*, cni0, cbr0, podman0, flannel.*, cali*, vxlan.calico, tunl0,
// kube-ipvs0, kube-bridge, nodelocaldns, cilium_*, lxc*, weave, genev_sys_*,
// ovn-k8s-mp0, antrea-*, eni*, gke*, azv*, virbr0, lxdbr0, ...) and, if so,
// what creates it. The match is on the whole name and case-sensitive.
func ContainerInterface(name string) (what string, ok bool) {
	for _, c := range containerNames {
		if c.re.MatchString(name) {
			return c.what, true
		}
	}
	return "", false
}
