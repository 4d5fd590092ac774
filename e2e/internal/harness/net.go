package harness

import (
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/freeport"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// FreePort returns a port free for TCP and UDP, outside the kernel's
// ephemeral range (see package freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Take(1)
	if err != nil {
		t.Fatal(err)
	}
	return p[0]
}

// MustHost runs a command on h or fails the test.
func MustHost(t testing.TB, h *netns.Host, argv ...string) {
	t.Helper()
	if r := h.Run(t.Context(), argv...); r.Err != nil {
		t.Fatalf("%s: %v: %v %s", h.Name, argv, r.Err, r.Stderr)
	}
}

// NewRoutedLab is the routed scan's topology: the bridge's LAN a
// (10.213.1.0/24, the client at .10 with its default route via the
// router at .1) and a transit segment t (10.213.3.0/24) where RoutedServer
// places the servers of the networks behind the router.
func NewRoutedLab(t testing.TB) (lab *netns.Lab, brA, brT *netns.Bridge, router, client *netns.Host) {
	t.Helper()
	lab = netns.New(t)
	brA, brT = lab.Bridge("a"), lab.Bridge("t")
	router = lab.Router("r", map[*netns.Bridge]string{brA: "10.213.1.1/24", brT: "10.213.3.1/24"})
	client = lab.Host("client", brA, "10.213.1.10/24")
	client.SetDefaultRoute("10.213.1.1")
	return lab, brA, brT, router, client
}

// RoutedServer makes srv (on the transit segment at transit) own addr
// (a /32 on lo) and answer from it, with the router sending net to it.
// Probes to the other addresses of net reach srv and are dropped there (it
// does not forward): no host ARPs for the scanned hosts that do not exist,
// so the routed scan costs no neighbour entries anywhere.
func RoutedServer(t testing.TB, router, srv *netns.Host, transit, addr, network string) {
	t.Helper()
	MustHost(t, srv, "ip", "addr", "add", addr+"/32", "dev", "lo")
	MustHost(t, srv, "ip", "route", "add", "default", "via", "10.213.3.1", "src", addr)
	MustHost(t, router, "ip", "route", "add", network, "via", transit)
}
