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
	"errors"
	"fmt"
	"io"
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
	"syscall"
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

// hcl is server s's configuration.
//
// Raft: performance.raft_multiplier = 1 scales raft's base timings by one
// instead of Consul's default five: heartbeat and election timeouts of 1 s,
// leader lease 500 ms. Followers notice a dead leader after 1-2 s (the
// heartbeat timeout is randomised up to twice its value) and elect a new
// one in about as long again. This is what HashiCorp recommends for
// production servers on good hardware; the default 5 is for small VMs.
//
// Autopilot: cleanup_dead_servers = true (the default, spelled out because
// catalog-mode tests rely on it: a failed server is removed from raft and its
// catalog node deregistered, which invalidates the sessions on that node);
// last_contact_threshold = 1s instead of 200ms, so a briefly starved server
// on a loaded test machine is not reported unhealthy; and
// server_stabilization_time = 2s instead of 10s, so a server that rejoins
// after autopilot removed it is promoted to voter 2 s after it became
// healthy. min_quorum stays 0 (unset), as in a default cluster.
//
// retry_interval = 1s (default 30s): all servers start at once and the first
// join attempts race the others' startup. leave_on_terminate = false and
// skip_leave_on_interrupt = true are the server defaults, spelled out.
// disable_update_check: no call home (the namespaces have no route out
// anyway). DNS, gRPC, HTTPS, serf WAN, the UI, Connect and peering are off:
// nothing here uses them and they cost start-up time.
func (c *Cluster) hcl(s *Server) string {
	var join []string
	for _, o := range c.Servers {
		if o != s {
			join = append(join, strconv.Quote(o.IP.String()))
		}
	}
	return fmt.Sprintf(`node_name = %q
datacenter = "dc1"
data_dir = %q
server = true
bootstrap_expect = %d
bind_addr = %q
advertise_addr = %q
client_addr = %q
retry_join = [%s]
retry_interval = "1s"
leave_on_terminate = %t
skip_leave_on_interrupt = true
disable_update_check = true
log_level = %q
ports {
  http = %d
  server = %d
  serf_lan = %d
  serf_wan = -1
  dns = -1
  grpc = -1
  grpc_tls = -1
  https = -1
}
ui_config { enabled = false }
connect { enabled = false }
peering { enabled = false }
performance { raft_multiplier = 1 }
autopilot {
  cleanup_dead_servers = true
  last_contact_threshold = "1s"
  server_stabilization_time = "2s"
}
%s
`, s.Name, s.DataDir, len(c.Servers), s.IP, s.IP, s.IP, strings.Join(join, ", "),
		c.opts.LeaveOnTerminate, c.opts.LogLevel, HTTPPort, RPCPort, SerfPort, c.opts.ExtraHCL)
}

// spawn starts server i's process without waiting for it.
func (c *Cluster) spawn(i int) error {
	s := c.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("server %s already running (pid %d)", s.Name, s.pid)
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("server %s log: %w", s.Name, err)
	}
	fmt.Fprintf(logf, "==== consulcluster: starting %s at %s\n", s.Name, time.Now().Format(time.RFC3339Nano))
	// `ip netns exec` execs consul, so the PID is consul's.
	cmd := s.Host.Command(context.Background(), c.bin, "agent", "-config-file", s.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start server %s: %w", s.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done, s.pid = cmd, done, cmd.Process.Pid
	return nil
}

// signal sends sig to server s and waits up to grace for it to exit, then
// SIGKILLs it. It is a no-op when s is not running.
func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig) // pidfd-backed: never hits a reused PID
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done, s.pid = nil, nil, 0
}

func (s *Server) kill() { s.signal(syscall.SIGKILL, time.Minute) }

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

// Kill SIGKILLs server i by PID and waits for it to exit: a crash. No-op
// when it is not running.
func (c *Cluster) Kill(i int) { c.Servers[i].kill() }

// Stop SIGTERMs server i and waits (SIGKILL after 10 s). Without
// Options.LeaveOnTerminate the server shuts down without leaving: the
// others see it fail, as after Kill, but its data directory is flushed
// cleanly.
func (c *Cluster) Stop(i int) { c.Servers[i].signal(syscall.SIGTERM, 10*time.Second) }

// Start restarts a stopped or killed server i with its data directory and
// waits (Options.ReadyTimeout) until WaitReady holds again: a leader, and
// every running server, i included, a healthy voter. A server that
// autopilot removed meanwhile rejoins through retry_join as a non-voter
// and is promoted after server_stabilization_time. A server restarted
// before autopilot noticed its death is still a voter in the leader's raft
// configuration: it is back as soon as the leader's replication reaches it
// (it then reports the leader itself, which Leader checks), typically within
// a few hundred milliseconds. Failures are fatal.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if err := c.spawn(i); err != nil {
		c.t.Fatalf("consulcluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ReadyTimeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		c.t.Fatalf("consulcluster: %s restarted but cluster not ready after %s: %v", c.Servers[i].Name, c.opts.ReadyTimeout, err)
	}
}

// Leader asks every running server for the raft leader (/v1/status/leader)
// and returns the leader's index when they all name the same running
// server. It does not wait; WaitLeader does.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	var views []string
	leader := ""
	agree, asked := true, 0
	for i, s := range c.Servers {
		if !c.Running(i) {
			continue
		}
		asked++
		addr, err := c.statusLeader(ctx, s)
		switch {
		case err != nil:
			views = append(views, fmt.Sprintf("%s: %v", s.Name, err))
			agree = false
			continue
		case addr == "":
			views = append(views, s.Name+": no leader")
			agree = false
			continue
		}
		views = append(views, fmt.Sprintf("%s: leader %s", s.Name, c.nameOf(addr)))
		if leader == "" {
			leader = addr
		} else if addr != leader {
			agree = false
		}
	}
	if asked == 0 {
		return -1, errors.New("no server running")
	}
	idx := slices.IndexFunc(c.Servers, func(s *Server) bool { return s.RPCAddr == leader })
	switch {
	case !agree:
		return -1, fmt.Errorf("servers disagree or have no leader (%s)", strings.Join(views, "; "))
	case idx < 0:
		return -1, fmt.Errorf("leader %s is not a server of this cluster (%s)", leader, strings.Join(views, "; "))
	case !c.Running(idx):
		return -1, fmt.Errorf("leader %s is not running (%s)", c.Servers[idx].Name, strings.Join(views, "; "))
	}
	return idx, nil
}

// WaitLeader polls Leader every 50 ms until it succeeds or ctx ends; after
// a Kill of the leader it returns the newly elected one.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	for {
		i, err := c.Leader(ctx)
		if err == nil {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no leader: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitReady waits until the running servers agree on a running leader and,
// per the leader, every running server is a voter in the raft
// configuration and healthy in autopilot's view. Killed or stopped servers
// are not required. The error names what was missing last.
func (c *Cluster) WaitReady(ctx context.Context) error {
	var last error
	for {
		if last = c.ready(ctx); last == nil {
			return nil
		}
		for _, s := range c.Servers {
			select {
			case <-s.exited():
				return fmt.Errorf("server %s exited (see its log %s)", s.Name, s.LogPath)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exited is closed when the server's current process has exited (never, if
// it is not running).
func (s *Server) exited() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return nil
	}
	return s.done
}

func (c *Cluster) ready(ctx context.Context) error {
	li, err := c.Leader(ctx)
	if err != nil {
		return fmt.Errorf("no raft leader: %v", err)
	}
	cl, err := api.NewClient(c.APIConfig(li))
	if err != nil {
		return err
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	rc, err := cl.Operator().RaftGetConfiguration(q)
	if err != nil {
		return fmt.Errorf("raft configuration from leader %s: %v", c.Servers[li].Name, err)
	}
	health, err := cl.Operator().AutopilotServerHealth(q)
	if err != nil {
		return fmt.Errorf("autopilot health from leader %s: %v", c.Servers[li].Name, err)
	}
	var missing []string
	for i, s := range c.Servers {
		if !c.Running(i) {
			continue
		}
		k := slices.IndexFunc(rc.Servers, func(r *api.RaftServer) bool { return r.Node == s.Name })
		if k < 0 {
			missing = append(missing, s.Name+" not in the raft configuration")
			continue
		}
		if !rc.Servers[k].Voter {
			missing = append(missing, s.Name+" not a voter")
			continue
		}
		h := slices.IndexFunc(health.Servers, func(h api.ServerHealth) bool { return h.Name == s.Name })
		if h < 0 || !health.Servers[h].Healthy {
			missing = append(missing, s.Name+" not healthy per autopilot")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("leader %s: %s", c.Servers[li].Name, strings.Join(missing, "; "))
	}
	return nil
}

// RaftServers returns the raft configuration as server i sees it (node
// name → voter).
func (c *Cluster) RaftServers(ctx context.Context, i int) (map[string]bool, error) {
	cl, err := api.NewClient(c.APIConfig(i))
	if err != nil {
		return nil, err
	}
	rc, err := cl.Operator().RaftGetConfiguration((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range rc.Servers {
		out[r.Node] = r.Voter
	}
	return out, nil
}

// statusLeader returns server s's view of the leader's RPC address ("" when
// it knows none).
func (c *Cluster) statusLeader(ctx context.Context, s *Server) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr+"/v1/status/leader", nil)
	if err != nil {
		return "", err
	}
	resp, err := s.httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return strings.Trim(strings.TrimSpace(string(b)), `"`), nil
}

// nameOf maps a server RPC address to its name for messages.
func (c *Cluster) nameOf(rpcAddr string) string {
	for _, s := range c.Servers {
		if s.RPCAddr == rpcAddr {
			return s.Name
		}
	}
	return rpcAddr
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
