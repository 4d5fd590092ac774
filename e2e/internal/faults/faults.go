// Package faults injects the network and process faults of the robustness
// harness into hosts of a netns lab: a firewall rule in one host's own
// namespace (a partition from one network, loss, duplicates) and signals
// to its processes (pause, resume, kill). Every fault is undone by the
// function it returns, and undone at the test's cleanup if the test did
// not; nothing touches the root namespace.
package faults

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Rule is one iptables rule in a host's namespace: chain and match.
type Rule struct {
	Table string   // "" (filter) or e.g. mangle
	Chain string   // INPUT, OUTPUT, POSTROUTING...
	Match []string // e.g. -o dev -j DROP
}

// Partition drops every packet h sends or receives on dev (its leg on one
// network): the host is cut from that network while its link stays up, so
// its sockets see timeouts, not errors, as a pulled cable behind a switch
// gives.
func Partition(t testing.TB, h *netns.Host, dev string) (heal func()) {
	t.Helper()
	return apply(t, h, Rule{Chain: "INPUT", Match: []string{"-i", dev, "-j", "DROP"}}, Rule{Chain: "OUTPUT", Match: []string{"-o", dev, "-j", "DROP"}})
}

// DropUDP drops the UDP datagrams h receives on dev (discovery replies and
// probes): the host is cut from its segment's discovery, not from the rest.
func DropUDP(t testing.TB, h *netns.Host, dev string) (heal func()) {
	t.Helper()
	return apply(t, h, Rule{Chain: "INPUT", Match: []string{"-i", dev, "-p", "udp", "-j", "DROP"}})
}

// Loss drops each UDP datagram h receives on dev with probability p
// (iptables statistic: this kernel has no sch_netem).
func Loss(t testing.TB, h *netns.Host, dev string, p float64) (heal func()) {
	t.Helper()
	if p <= 0 || p >= 1 {
		t.Fatalf("faults.Loss: probability %g, want 0 < p < 1", p)
	}
	return apply(t, h, Rule{Chain: "INPUT", Match: []string{"-i", dev, "-p", "udp", "-m", "statistic", "--mode", "random",
		"--probability", strconv.FormatFloat(p, 'f', 3, 64), "-j", "DROP"}})
}

// Duplicate sends each UDP datagram h sends on dev to dst twice, with
// probability p: iptables TEE clones it with dst as its next hop, so dst
// receives the original and the clone (this kernel has no sch_netem).
func Duplicate(t testing.TB, h *netns.Host, dev string, dst netip.Addr, p float64) (heal func()) {
	t.Helper()
	if p <= 0 || p > 1 {
		t.Fatalf("faults.Duplicate: probability %g, want 0 < p <= 1", p)
	}
	return apply(t, h, Rule{Table: "mangle", Chain: "POSTROUTING", Match: []string{"-o", dev, "-p", "udp", "-d", dst.String(),
		"-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(p, 'f', 3, 64), "-j", "TEE", "--gateway", dst.String()}})
}

// apply inserts rules in h's namespace and returns their removal, which
// also runs at cleanup if the test did not call it.
func apply(t testing.TB, h *netns.Host, rules ...Rule) func() {
	t.Helper()
	ipt := netns.RequireTool(t, "iptables")
	for _, r := range rules {
		if res := h.Run(t.Context(), append(r.args(ipt, "-I"), r.Match...)...); res.Err != nil {
			t.Fatalf("iptables -I %s %s in %s: %v %s", r.Chain, strings.Join(r.Match, " "), h.Name, res.Err, res.Stderr)
		}
	}
	var once sync.Once
	heal := func() {
		once.Do(func() {
			for _, r := range rules {
				// The lab may be gone at cleanup: a failed delete is no
				// failure then.
				_ = h.Run(t.Context(), append(r.args(ipt, "-D"), r.Match...)...)
			}
		})
	}
	t.Cleanup(heal)
	return heal
}

// Pause stops p (SIGSTOP) and returns its resumption (SIGCONT), which also
// runs at cleanup.
func Pause(t testing.TB, p *netns.Proc) (resume func()) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %d: %v", p.PID, err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = p.Signal(syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
}

// Kill kills p at once (SIGKILL) and waits for it.
func Kill(t testing.TB, p *netns.Proc) {
	t.Helper()
	if err := p.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		t.Fatalf("SIGKILL %d: %v", p.PID, err)
	}
	_ = p.Wait()
}

// args is the iptables command line of op (-I, -D) on r's chain.
func (r Rule) args(ipt, op string) []string {
	if r.Table != "" {
		return []string{ipt, "-w", "-t", r.Table, op, r.Chain}
	}
	return []string{ipt, "-w", op, r.Chain}
}

// String names a rule for logs.
func (r Rule) String() string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Table, r.Chain, strings.Join(r.Match, " ")))
}
