package k8slab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// multiLeaseDuration is the nodes' lease duration in a multi-node lab; the
// kubelet renews the lease every quarter of it.
const multiLeaseDuration = 12 * time.Second

// NodeGrace is the controller-manager's node-monitor-grace-period in a
// multi-node lab (Kubernetes' default is 50 s): a node whose lease has not
// been renewed for this long is marked NotReady (Ready=Unknown), so a node
// failed by FailNode turns NotReady at most this long (plus the 1 s monitor
// period) after it failed.
const NodeGrace = 15 * time.Second

// NodeSpec is one worker node of a multi-node lab.
type NodeSpec struct {
	// Name is the node's name and its netns host's: a lowercase letter
	// then at most 7 lowercase letters or digits.
	Name string
	// LAN is the segment the node has a leg on, LANAddr its address there
	// (CIDR, e.g. "10.213.41.21/24").
	LAN     *netns.Bridge
	LANAddr string
}

// MultiOptions configure StartMulti.
type MultiOptions struct {
	// Lab is the test's netns.Lab: the nodes become hosts of it, the
	// management network one of its host bridges. Create it before
	// StartMulti (its teardown must run after the cluster's).
	Lab *netns.Lab
	// Nodes are the worker nodes, at least two.
	Nodes []NodeSpec
	// ReadyTimeout bounds the wait, after the binaries are built, for every
	// node to be Ready; default 3 minutes.
	ReadyTimeout time.Duration
	// Dir holds all state (one directory per node in it); default
	// t.TempDir(). Keep it short: containerd's socket paths must fit in
	// 108 bytes.
	Dir string
}

// StartMulti starts a cluster of several nodes, each a network namespace
// that is a host on the test's LAN: its containerd and kubelet run in it
// (nsenter --net), so the hostNetwork pods it runs see exactly its
// interfaces. The lab creates a management network, a bridge of
// opts.Lab in the root namespace (Management, on a free 10.213.x.0/24):
// the apiserver listens on the bridge's address (.1) only, the nodes have
// their first leg there (.21, .22, ... in the order of opts.Nodes: their
// InternalIP) and their second on their NodeSpec's LAN. etcd, the
// controller-manager and the scheduler listen on the root namespace's
// loopback, reachable from no network. Addresses .2-.20 of the management
// network are free for the test (a Consul cluster, say).
//
// Each node has its own containerd (config, root, state, socket under
// <Dir>/<name>), kubelet (root dir, cert dir, node name, node IP) and
// cgroup root (<hierarchy>/udb-k8slab/<name>); both images of the lab, the
// pause image and what ImportImage is given, are imported into every node.
// The teardown is the single-node lab's, for every node.
func StartMulti(t testing.TB, opts MultiOptions) *Cluster {
	t.Helper()
	Require(t)
	if opts.Lab == nil {
		t.Fatalf("k8slab: StartMulti needs the test's netns.Lab")
	}
	if len(opts.Nodes) < 2 {
		t.Fatalf("k8slab: StartMulti needs at least two nodes, got %d", len(opts.Nodes))
	}
	if len(opts.Nodes) > 20 {
		t.Fatalf("k8slab: at most 20 nodes, got %d", len(opts.Nodes))
	}
	var names []string
	for _, s := range opts.Nodes {
		if slices.Contains(names, s.Name) {
			t.Fatalf("k8slab: node %q given twice", s.Name)
		}
		if s.LAN == nil {
			t.Fatalf("k8slab: node %q has no LAN segment", s.Name)
		}
		names = append(names, s.Name)
	}
	c := newCluster(t, opts.Dir)
	var err error
	if c.nsenter, err = lookPath("nsenter"); err != nil {
		netns.SkipOrFail(t, "the multi-node Kubernetes lab needs nsenter (util-linux): %v", err)
	}
	c.multi = true
	c.launch(opts.ReadyTimeout, func() {
		c.mgmtNet = opts.Lab.HostSubnet()
		base := c.mgmtNet.Addr().As4()
		addr := func(last int) netip.Addr { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(last)}) }
		c.apiAddr = addr(1).String()
		c.mgmt = opts.Lab.HostBridge("k8smgmt", c.apiAddr+"/24")
		for i, s := range opts.Nodes {
			ip := addr(21 + i).String()
			h := opts.Lab.Host(s.Name, c.mgmt, ip+"/24")
			n := &Node{
				c: c, name: s.Name, ip: ip, dir: mkdir(filepath.Join(c.dir, s.Name)), host: h,
				cgroup: cgroupRoot + "/" + s.Name, prefix: s.Name + "-",
			}
			n.lanDev = h.AddLink(s.LAN, s.LANAddr)
			n.ctrSock = filepath.Join(n.dir, "containerd", "containerd.sock")
			c.nodes = append(c.nodes, n)
		}
	})
	return c
}

// Management is the management network of a multi-node lab (nil for the
// single-node lab): a bridge in the root namespace holding the apiserver's
// address, with a leg of every node.
func (c *Cluster) Management() *netns.Bridge { return c.mgmt }

// APIServerURL is the apiserver's address: on the management network's .1
// in a multi-node lab, reachable from every node's namespace (a hostNetwork
// pod there can use it in place of the kubernetes Service, which no proxy
// serves in the lab); the serving certificate names that address.
func (c *Cluster) APIServerURL() string { return c.apiURL }

// ManagementSubnet is the management network's /24.
func (c *Cluster) ManagementSubnet() netip.Prefix { return c.mgmtNet }

// FailNode fails a node of a multi-node lab as a real node fails: its
// kubelet, containerd, containerd's shims and its pods' processes are
// killed (SIGKILL, by PID: the lab's own processes, the shims naming its
// containerd's socket, the processes in its cgroup root), then all of its
// links are set down. Nothing tells the API: the Node turns NotReady once
// the controller-manager misses its lease (NodeGrace), and its pods stay
// in the API (a DaemonSet's pods tolerate the unreachable taint).
func (c *Cluster) FailNode(name string) error {
	n := c.Node(name)
	if n == nil || n.host == nil {
		return fmt.Errorf("k8slab: no node %q in a multi-node lab", name)
	}
	c.mu.Lock()
	c.failed[name] = true
	c.mu.Unlock()
	n.proc("kubelet").kill()
	n.proc("containerd").kill()
	if err := killAll(func() []int { return append(pidsMentioning(n.ctrSock), cgroupPIDs(n.cgroup)...) }); err != nil {
		return fmt.Errorf("k8slab: fail node %s: %w", name, err)
	}
	if err := n.host.SetLinkDown(); err != nil {
		return fmt.Errorf("k8slab: fail node %s: %w", name, err)
	}
	return nil
}

// NodeReady returns the status of the node's Ready condition (True, False
// or Unknown) and its reason and message.
func (c *Cluster) NodeReady(name string) (status, reason string, err error) {
	return c.readyCondition(name)
}

// WaitNodeNotReady waits until the node's Ready condition is not True and
// returns its status.
func (c *Cluster) WaitNodeNotReady(ctx context.Context, name string) (string, error) {
	for {
		st, _, err := c.readyCondition(name)
		if err == nil && st != "True" {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("node %s still Ready (last: %s %v): %w", name, st, err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// liveNodes are the nodes FailNode has not failed.
func (c *Cluster) liveNodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if !c.failed[n.name] {
			out = append(out, n)
		}
	}
	return out
}
