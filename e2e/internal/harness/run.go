package harness

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

const (
	// ClientIP is the client's (bridge's and agent's) address.
	ClientIP = "10.213.1.10"
	// ConsulAddr is the agent's HTTP address inside the client namespace.
	ConsulAddr = ClientIP + ":8500"
	// MetricsAddr is where bridges serve /metrics inside their namespace.
	MetricsAddr = "127.0.0.1:9108"
	// BridgeService is the name of the bridge's own Consul service.
	BridgeService = "udp-discovery-bridge"
)

// Fast are the loop flags of every long-running bridge here: a round a
// second, each 0.5 s long.
var Fast = []string{"--interval", "1s", "--timeout", "0.5"}

// loadTestMax is the value of the limits in the load tests: max_replies'
// default, so that no limit is below what a round keeps anyway.
const loadTestMax = "100000"

// LoadTestDiscoverFlags admit the replies of a load test's responder: one
// `bridge respond --replies N` host answering each probe as N servers that
// advertise addresses off its LAN (10.213.100.1 and up). The defaults
// refuse all but a few of them: advertised_addresses local refuses every
// address that is neither the source nor on the LAN (foreign_address),
// and max_servers_per_source 8 caps what one source introduces in a
// round (source_cap). The issue of those limits: "The project's own load
// tests set them high." These are `bridge discover`'s (and run's) flags.
var LoadTestDiscoverFlags = []string{"--advertised-addresses", "any", "--max-servers-per-source", loadTestMax}

// LoadTestFlags are LoadTestDiscoverFlags plus `bridge run`'s own limit:
// max_servers (10,000 by default, which the 10,000-server tests reach
// exactly and the churn test passes), and max_servers_per_source also caps
// what one source holds in `bridge run`.
var LoadTestFlags = append(slices.Clone(LoadTestDiscoverFlags), "--max-servers", loadTestMax)

// RunLAN is one segment: a client at 10.213.1.10 (bridge and, optionally, the
// Consul agent) and server hosts from 10.213.1.11 up.
type RunLAN struct {
	Lab     *netns.Lab
	Br      *netns.Bridge
	Client  *netns.Host
	Servers []*netns.Host
	Agent   *consulagent.Agent // nil without Consul
	Consul  *api.Client
}

// NewRunLAN builds the segment; withConsul starts a dev agent inside the
// client namespace, bound to 10.213.1.10 (a loopback agent in the root
// namespace would be unreachable from the bridge).
func NewRunLAN(t testing.TB, servers int, withConsul bool) *RunLAN {
	t.Helper()
	l := &RunLAN{Lab: netns.New(t)}
	l.Br = l.Lab.Bridge("lan")
	l.Client = l.Lab.Host("client", l.Br, ClientIP+"/24")
	for i := range servers {
		l.Servers = append(l.Servers, l.Lab.Host(fmt.Sprintf("s%d", i+1), l.Br, fmt.Sprintf("10.213.1.%d/24", 11+i)))
	}
	bridgebin.Path(t)
	if withConsul {
		l.Agent = consulagent.Start(t, consulagent.Options{Netns: l.Client.NS, BindAddr: ClientIP})
		l.Consul = l.Agent.Client()
	}
	return l
}

// BridgeProc is a long-running `bridge run` process.
type BridgeProc struct {
	*netns.Proc
	Name string
	Args []string
}

// StartRun starts `bridge run args...` on h. When the test fails, its
// output is logged.
func StartRun(t testing.TB, h *netns.Host, name string, args ...string) *BridgeProc {
	t.Helper()
	return StartRunEnv(t, h, name, nil, args...)
}

// StartRunEnv is StartRun with env added to the hermetic environment
// (DISCOVERY_CLIENT_... settings).
func StartRunEnv(t testing.TB, h *netns.Host, name string, env []string, args ...string) *BridgeProc {
	t.Helper()
	argv := append([]string{bridgebin.Path(t), "run"}, args...)
	p, err := h.WithEnv(HermeticEnv(env...)).Start(t.Context(), argv...)
	if err != nil {
		t.Fatal(err)
	}
	b := &BridgeProc{Proc: p, Name: name, Args: args}
	t.Cleanup(func() {
		if t.Failed() {
			stdout, stderr := p.Output()
			t.Logf("bridge %s (%s %s), exit %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(env, " "), strings.Join(args, " "), p.ExitCode(), Tail(stdout, 60), Tail(stderr, 120))
		}
	})
	return b
}

// Kill9 sends SIGKILL to the bridge and waits for it to die.
func (b *BridgeProc) Kill9(t testing.TB) {
	t.Helper()
	if b.Exited() {
		t.Fatalf("bridge %s already exited (%d) before kill -9", b.Name, b.ExitCode())
	}
	if err := syscall.Kill(b.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", b.PID, err)
	}
	_ = b.Wait()
}

// Sigterm sends SIGTERM, waits up to grace and returns the exit status (-1
// when it had to be killed).
func (b *BridgeProc) Sigterm(t testing.TB, grace time.Duration) int {
	t.Helper()
	if b.Exited() {
		t.Fatalf("bridge %s exited (%d) before SIGTERM", b.Name, b.ExitCode())
	}
	start := time.Now()
	_ = b.StopWithin(grace)
	t.Logf("bridge %s: SIGTERM to exit %d took %s", b.Name, b.ExitCode(), time.Since(start).Round(time.Millisecond))
	return b.ExitCode()
}

// RunCmd runs `bridge args...` on h to completion (60 s at most).
func RunCmd(t testing.TB, h *netns.Host, args ...string) netns.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	return h.WithEnv(HermeticEnv()).Run(ctx, append([]string{bridgebin.Path(t)}, args...)...)
}

// Wait polls cond every 100 ms until it holds, failing the test after
// timeout with cond's last detail. It returns how long it waited.
func Wait(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, detail := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, detail)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Keys returns the keys of m, sorted.
func Keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
