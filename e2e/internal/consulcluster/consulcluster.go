// Package consulcluster runs a real three-server Consul cluster for
// end-to-end tests: `consul agent -server -bootstrap-expect 3`, one server per
// network namespace, all plugged into one bridge of a netns.Lab.
//
// Each server listens on the standard ports of its namespace address (HTTP
// 8500, server RPC 8300, serf LAN 8301), so any other host the test puts on
// the same bridge (or routes to it) reaches the cluster at HTTPAddr(i), for
// example `bridge run --consul-addr 10.213.7.11:8500`. The test process itself
// reaches the servers through Client(i), whose transport dials from inside the
// server's namespace (netns.Transport), so no route from the root namespace
// is needed.
//
// The configuration favours quick failover over production realism in raft
// only (performance.raft_multiplier = 1: 1 s heartbeat and election
// timeouts instead of 5 s); gossip (serf) failure detection keeps Consul's
// defaults, so how fast a dead server is noticed, reaped by autopilot and its
// catalog node deregistered is what a real cluster would do. See baseHCL for
// every setting and why.
//
// Servers keep their state in a data directory under t.TempDir, so Kill or
// Stop followed by Start is a server restart, not a new server. Stop sends
// SIGTERM; servers do not leave the cluster on SIGTERM (leave_on_terminate is
// false unless Options.LeaveOnTerminate), so Stop is a crash with a clean
// shutdown, not a graceful departure. Every process is ended by PID in a
// t.Cleanup, and each server's log (a file beside its data directory) is
// printed with t.Log when the test failed.
package consulcluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Standard Consul ports every server uses inside its own namespace.
const (
	HTTPPort = 8500
	RPCPort  = 8300 // raft and server RPC
	SerfPort = 8301 // serf LAN (TCP and UDP)
)

// DefaultSubnet is used when Options.Subnet and Options.Addrs are empty.
const DefaultSubnet = "10.213.250.0/24"

// Options configures Start. The zero value is three servers c1..c3 at
// .11-.13 of DefaultSubnet.
type Options struct {
	// Names are the servers' lab host names and Consul node names (default
	// c1, c2, c3). Their number is the cluster size and bootstrap_expect;
	// it must be odd. Each must be a valid netns host name not yet used in
	// the lab.
	Names []string
	// Subnet is an IPv4 /24 (or wider) prefix such as "10.213.7.0/24";
	// server i gets host address 11+i in it. Ignored when Addrs is set.
	Subnet string
	// Addrs, when set, are the servers' CIDRs on the bridge, one per name
	// (for example "10.213.7.11/24").
	Addrs []string
	// ExtraHCL is appended to every server's configuration (later settings
	// win over baseHCL's, so autopilot or performance can be overridden).
	ExtraHCL string
	// LogLevel is Consul's log level (default "info": elections, autopilot
	// and serf membership changes are what a failing test needs).
	LogLevel string
	// ReadyTimeout bounds Start's and Cluster.Start's wait (default 30 s).
	ReadyTimeout time.Duration
	// LeaveOnTerminate makes SIGTERM (Stop) a graceful leave: the server
	// leaves serf and is removed from raft at once. Off by default, like a
	// Consul server's own default.
	LeaveOnTerminate bool
	// ACLManagementToken, when set, turns ACLs on with default_policy
	// "deny": this token is the initial management token and the servers'
	// agent token. Client and APIConfig carry it, and Start returns only
	// once the leader has bootstrapped ACLs and accepts it.
	ACLManagementToken string
}

// Server is one Consul server of a Cluster.
type Server struct {
	Name     string      // node name and lab host name
	Host     *netns.Host // the server's namespace
	IP       netip.Addr  // address on the bridge
	HTTPAddr string      // ip:8500
	RPCAddr  string      // ip:8300, as /v1/status/leader reports the leader
	DataDir  string
	LogPath  string

	cfgPath string
	httpc   *http.Client
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	pid     int
}

// Cluster is a running Consul cluster.
type Cluster struct {
	Servers []*Server
	Bridge  *netns.Bridge

	t    testing.TB
	bin  string
	opts Options
}

// Start creates one lab host per server on br, starts all servers and
// returns when the cluster has a raft leader and every server is a healthy
// voter (per the leader's autopilot). Failures are fatal to t. Must be
// called from the test's goroutine (it creates lab hosts).
func Start(t testing.TB, lab *netns.Lab, br *netns.Bridge, opts Options) *Cluster {
	t.Helper()
	if len(opts.Names) == 0 {
		opts.Names = []string{"c1", "c2", "c3"}
	}
	n := len(opts.Names)
	if n%2 == 0 {
		t.Fatalf("consulcluster: %d servers: the cluster size must be odd", n)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	cidrs := opts.Addrs
	if len(cidrs) == 0 {
		subnet := opts.Subnet
		if subnet == "" {
			subnet = DefaultSubnet
		}
		var err error
		if cidrs, err = subnetAddrs(subnet, n); err != nil {
			t.Fatalf("consulcluster: %v", err)
		}
	}
	if len(cidrs) != n {
		t.Fatalf("consulcluster: %d addresses for %d servers", len(cidrs), n)
	}

	c := &Cluster{Bridge: br, t: t, bin: consulbin.Path(t), opts: opts}
	root := t.TempDir()
	for i, name := range opts.Names {
		h := lab.Host(name, br, cidrs[i])
		ip := h.IP(br)
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("consulcluster: %v", err)
		}
		c.Servers = append(c.Servers, &Server{
			Name:     name,
			Host:     h,
			IP:       ip,
			HTTPAddr: net.JoinHostPort(ip.String(), strconv.Itoa(HTTPPort)),
			RPCAddr:  net.JoinHostPort(ip.String(), strconv.Itoa(RPCPort)),
			DataDir:  filepath.Join(dir, "data"),
			LogPath:  filepath.Join(dir, "consul.log"),
			cfgPath:  filepath.Join(dir, "consul.hcl"),
			httpc:    &http.Client{Transport: netns.Transport(h.NS), Timeout: 2 * time.Second},
		})
	}
	for _, s := range c.Servers {
		if err := os.WriteFile(s.cfgPath, []byte(c.hcl(s)), 0o644); err != nil {
			t.Fatalf("consulcluster: write %s: %v", s.cfgPath, err)
		}
	}
	// Registered after the lab's teardown, so it runs before it.
	t.Cleanup(func() {
		for _, s := range c.Servers {
			s.kill()
		}
		if t.Failed() {
			c.DumpLogs()
		}
	})

	start := time.Now()
	for i := range c.Servers {
		if err := c.spawn(i); err != nil {
			t.Fatalf("consulcluster: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.ReadyTimeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("consulcluster: cluster of %d not ready after %s: %v", n, time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("consulcluster: %d servers %s ready in %s", n, strings.Join(c.HTTPAddrs(), " "), time.Since(start).Round(time.Millisecond))
	return c
}

// subnetAddrs returns n CIDRs .11, .12... in subnet.
func subnetAddrs(subnet string, n int) ([]string, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
		return nil, fmt.Errorf("Options.Subnet %q: want an IPv4 prefix of /24 or wider (%v)", subnet, err)
	}
	base := p.Masked().Addr().As4()
	out := make([]string, n)
	for i := range out {
		a := base
		a[3] = byte(11 + i)
		out[i] = netip.PrefixFrom(netip.AddrFrom4(a), p.Bits()).String()
	}
	return out, nil
}

// N is the number of servers.
func (c *Cluster) N() int { return len(c.Servers) }

// HTTPAddr is server i's HTTP address (ip:8500), reachable from any host on
// the cluster's bridge.
func (c *Cluster) HTTPAddr(i int) string { return c.Servers[i].HTTPAddr }

// HTTPAddrs are all servers' HTTP addresses, in server order.
func (c *Cluster) HTTPAddrs() []string {
	out := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		out[i] = s.HTTPAddr
	}
	return out
}

// PID is server i's process ID, 0 when it is not running.
func (c *Cluster) PID(i int) int {
	s := c.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Running reports whether server i's process runs.
func (c *Cluster) Running(i int) bool { return c.PID(i) != 0 }

// Index returns the index of the server named name, or -1.
func (c *Cluster) Index(name string) int {
	return slices.IndexFunc(c.Servers, func(s *Server) bool { return s.Name == name })
}

// APIConfig is a consul/api configuration for server i whose HTTP client
// dials from inside the server's namespace.
func (c *Cluster) APIConfig(i int) *api.Config {
	s := c.Servers[i]
	return &api.Config{
		Address:    s.HTTPAddr,
		Scheme:     "http",
		Token:      c.opts.ACLManagementToken,
		HttpClient: &http.Client{Transport: netns.Transport(s.Host.NS)},
	}
}

// Client is a consul/api client talking to server i only (no failover),
// from the test process.
func (c *Cluster) Client(i int) *api.Client {
	c.t.Helper()
	cl, err := api.NewClient(c.APIConfig(i))
	if err != nil {
		c.t.Fatalf("consulcluster: client for %s: %v", c.Servers[i].Name, err)
	}
	return cl
}

// DumpLogs prints the tail (last 64 KiB) of every server's log with t.Log.
// Start's cleanup calls it when the test failed.
func (c *Cluster) DumpLogs() {
	const max = 64 << 10
	for _, s := range c.Servers {
		b, err := os.ReadFile(s.LogPath)
		if err != nil {
			c.t.Logf("consulcluster: %s log: %v", s.Name, err)
			continue
		}
		if len(b) > max {
			b = b[len(b)-max:]
		}
		c.t.Logf("consulcluster: log of %s (%s, tail):\n%s", s.Name, s.LogPath, b)
	}
}
