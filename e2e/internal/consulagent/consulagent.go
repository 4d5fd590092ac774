// Package consulagent runs a real Consul dev agent for end-to-end tests.
//
// Start launches `consul agent -dev` (the binary from consulbin) on free
// loopback ports, or inside a network namespace the test created, waits for
// a leader and registers a cleanup that kills it by PID. A dev agent keeps
// its state in memory, so Stop followed by Start is exactly "the agent
// restarted and lost everything", which the bridge must heal
// (Options.KeepLocalState gives it a data directory instead).
package consulagent

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/freeport"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Options configures Start.
type Options struct {
	// Netns, when set, runs the agent as `ip netns exec <Netns> consul ...`
	// bound to BindAddr (required then), on Consul's standard ports; the
	// namespace is the caller's. Client and the readiness check dial into the
	// namespace, so no route from the root namespace is needed.
	Netns    string
	BindAddr string
	// ACLToken, when set, enables ACLs with default policy deny and this
	// initial management token; Client uses it.
	ACLToken string
	// ExtraHCL is appended to the agent configuration.
	ExtraHCL string
	// ReadyTimeout bounds the wait for a leader (default 30s).
	ReadyTimeout time.Duration
	// KeepLocalState gives the agent a data directory, so a restarted agent
	// restores the services and checks registered with it (like a real
	// agent). By default a restarted dev agent comes back empty.
	KeepLocalState bool
}

// Agent is a running (or stopped) dev agent.
type Agent struct {
	// Addr is the HTTP address (host:port).
	Addr string
	// PID is the agent's process ID while it runs (0 when stopped).
	PID int
	// LogPath is the agent's log file (printed when the test fails).
	LogPath string

	t       testing.TB
	opts    Options
	node    string // the agent's node name
	bin     string
	args    []string
	dataDir string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	httpc   *http.Client
}

// Start runs a dev agent for the duration of t and returns when it has a
// leader (and, with ACLs, accepts the management token).
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.Netns != "" && opts.BindAddr == "" {
		t.Fatal("consulagent: Options.BindAddr is required with Netns")
	}
	dir := t.TempDir()
	a := &Agent{node: fmt.Sprintf("udb-e2e-%08x", rand.Uint32()),
		t:       t,
		opts:    opts,
		bin:     consulbin.Path(t),
		dataDir: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "consul.log"),
	}
	bind := "127.0.0.1"
	var ports [5]int // http, dns, serf_lan, serf_wan, server
	if opts.Netns != "" {
		bind = opts.BindAddr
		ports = [5]int{8500, 8600, 8301, 8302, 8300}
	} else {
		free, err := freeport.Take(len(ports))
		if err != nil {
			t.Fatalf("consulagent: %v", err)
		}
		copy(ports[:], free)
	}
	a.Addr = net.JoinHostPort(bind, strconv.Itoa(ports[0]))
	hcl := fmt.Sprintf(`ports { http = %d  dns = %d  serf_lan = %d  serf_wan = %d  server = %d  grpc = -1  grpc_tls = -1  https = -1 }`,
		ports[0], ports[1], ports[2], ports[3], ports[4])
	if opts.ACLToken != "" {
		hcl += fmt.Sprintf(` acl { enabled = true  default_policy = "deny"  enable_token_persistence = false  tokens { initial_management = %q  agent = %q } }`,
			opts.ACLToken, opts.ACLToken)
	}
	if opts.ExtraHCL != "" {
		hcl += "\n" + opts.ExtraHCL
	}
	a.args = []string{"agent", "-dev",
		"-node", a.node,
		"-bind", bind, "-client", bind, "-advertise", bind,
		"-log-level", "warn",
		"-hcl", hcl,
	}
	if opts.KeepLocalState {
		a.args = append(a.args, "-data-dir", a.dataDir)
	}
	a.httpc = &http.Client{Transport: a.transport(), Timeout: 5 * time.Second}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(a.LogPath); err == nil {
				t.Logf("consul agent log (%s):\n%s", a.LogPath, b)
			}
		}
	})
	a.Start()
	return a
}

// Start (re)starts a stopped agent with the same ports and arguments and
// waits until it is ready. A dev agent comes back empty unless
// Options.KeepLocalState is set.
func (a *Agent) Start() {
	a.t.Helper()
	a.mu.Lock()
	if a.cmd != nil {
		a.mu.Unlock()
		a.t.Fatal("consulagent: Start on a running agent")
	}
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.mu.Unlock()
		a.t.Fatalf("consulagent: log file: %v", err)
	}
	var cmd *exec.Cmd
	if a.opts.Netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", a.opts.Netns, a.bin}, a.args...)...)
	} else {
		cmd = exec.Command(a.bin, a.args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		a.mu.Unlock()
		a.t.Fatalf("consulagent: start %s: %v", a.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	a.cmd, a.done, a.PID = cmd, done, cmd.Process.Pid
	a.mu.Unlock()

	if err := a.waitReady(done); err != nil {
		a.Stop()
		b, _ := os.ReadFile(a.LogPath)
		a.t.Fatalf("consulagent: agent at %s not ready: %v\nlog:\n%s", a.Addr, err, b)
	}
}

// Stop kills the agent by PID and waits for it to exit. It is a no-op when
// the agent is not running.
func (a *Agent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	a.cmd, a.done, a.PID = nil, nil, 0
}

// Client returns a consul/api client for the agent (with the management
// token when ACLs are on).
func (a *Agent) Client() *api.Client {
	a.t.Helper()
	c, err := api.NewClient(a.APIConfig())
	if err != nil {
		a.t.Fatalf("consulagent: client: %v", err)
	}
	return c
}

// APIConfig returns the consul/api configuration Client uses; tests may
// copy Address and HttpClient into a sink's configuration.
func (a *Agent) APIConfig() *api.Config {
	return &api.Config{
		Address:    a.Addr,
		Scheme:     "http",
		Token:      a.opts.ACLToken,
		HttpClient: &http.Client{Transport: a.transport()},
	}
}

// waitReady polls /v1/status/leader until it names a leader, with ACLs
// until /v1/agent/self accepts the management token, and until the agent's
// own node is in the catalog.
func (a *Agent) waitReady(exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-exited:
			return fmt.Errorf("agent exited")
		case <-ctx.Done():
			return fmt.Errorf("timeout after %s: %v", a.opts.ReadyTimeout, last)
		case <-tick.C:
		}
		body, err := a.get(ctx, "/v1/status/leader", "")
		if err != nil {
			last = err
			continue
		}
		if s := strings.Trim(strings.TrimSpace(body), `"`); s == "" {
			last = fmt.Errorf("no leader yet")
			continue
		}
		if a.opts.ACLToken != "" {
			if _, err := a.get(ctx, "/v1/agent/self", a.opts.ACLToken); err != nil {
				last = err
				continue
			}
		}
		// A leader is not enough: until the agent has registered its own
		// node, sessions on it fail ("Missing node registration").
		if body, err := a.get(ctx, "/v1/catalog/node/"+a.node, a.opts.ACLToken); err != nil || strings.TrimSpace(body) == "null" {
			last = fmt.Errorf("node %s not registered yet (%v)", a.node, err)
			continue
		}
		return nil
	}
}

func (a *Agent) get(ctx context.Context, path, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Addr+path, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := a.httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// transport returns an HTTP transport that dials the agent, entering the
// agent's network namespace when it runs in one.
func (a *Agent) transport() *http.Transport {
	if a.opts.Netns != "" {
		return netns.Transport(a.opts.Netns)
	}
	return &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
}
