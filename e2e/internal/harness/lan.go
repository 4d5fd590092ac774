package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// CommandTimeout bounds every bridge invocation; rounds here last 1-2 s.
const CommandTimeout = 30 * time.Second

// HermeticEnv is the test's environment without DISCOVERY_*, BRIDGE_* and CONSUL_*
// variables, plus extra; so a developer's shell cannot change a result.
func HermeticEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DISCOVERY_") || strings.HasPrefix(kv, "BRIDGE_") || strings.HasPrefix(kv, "CONSUL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Bridge runs the bridge binary with args on h, with the hermetic environment
// plus env.
func Bridge(t testing.TB, h *netns.Host, env []string, args ...string) netns.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), CommandTimeout)
	defer cancel()
	return h.WithEnv(HermeticEnv(env...)).Run(ctx, append([]string{bridgebin.Path(t)}, args...)...)
}

// Respond starts `bridge respond args...` on h and waits until h has at least
// listeners UDP sockets on port 9999 (counting responders already running).
func Respond(t testing.TB, h *netns.Host, listeners int, args ...string) *netns.Proc {
	t.Helper()
	p, err := h.WithEnv(HermeticEnv()).Start(t.Context(), append([]string{bridgebin.Path(t), "respond"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := h.WaitUDPListeners(ctx, 9999, listeners); err != nil {
		stdout, stderr := p.Output()
		t.Fatalf("bridge respond %s on %s did not bind :9999: %v\nexit %d\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), h.Name, err, p.ExitCode(), stdout, stderr)
	}
	return p
}

// LAN is one segment with a client at 10.213.1.10 and servers from .11 up,
// for one-shot commands (Bridge, DiscoverJSON); RunLAN is the one of
// `bridge run`.
type LAN struct {
	Lab     *netns.Lab
	Br      *netns.Bridge
	Client  *netns.Host
	Servers []*netns.Host
}

// NewLAN builds the segment with servers server hosts.
func NewLAN(t testing.TB, servers int) *LAN {
	t.Helper()
	l := &LAN{Lab: netns.New(t)}
	l.Br = l.Lab.Bridge("lan")
	l.Client = l.Lab.Host("client", l.Br, "10.213.1.10/24")
	for i := range servers {
		l.Servers = append(l.Servers, l.Lab.Host(fmt.Sprintf("s%d", i+1), l.Br, fmt.Sprintf("10.213.1.%d/24", 11+i)))
	}
	return l
}

// StopResponder stops a responder and fails the test unless it is gone.
func StopResponder(t testing.TB, p *netns.Proc) {
	t.Helper()
	_ = p.StopWithin(2 * time.Second)
	if !p.Exited() {
		t.Fatalf("responder %d did not exit", p.PID)
	}
}
