package checker

import (
	"net/netip"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// TestInitialTargets: the servers held at start-up are checked at once
// (even with jitter), a first pass makes one ready (a restart is no news),
// a first failure leaves one pending until fall; Settled closes once each
// had a result. A server found later needs rise passes, and one of the
// initial set that failed and recovers needs rise passes too.
func TestInitialTargets(t *testing.T) {
	o := testOptions()
	o.Jitter = 0.5
	h := start(t, o, func() float64 { return 0.9 })
	addrC := netip.MustParseAddrPort("192.0.2.3:80")
	h.p.set(addrB, true)
	select {
	case <-h.c.Settled():
		t.Fatal("settled before any target")
	default:
	}
	h.c.SetInitialTargets([]endpoint.Endpoint{{Addr: addrA}, {Addr: addrB}})
	h.settle()
	if a, b := h.p.callsOf(addrA), h.p.callsOf(addrB); a != 1 || b != 1 {
		t.Fatalf("initial targets checked %d, %d times at once, want 1 each (no jitter at start-up)", a, b)
	}
	select {
	case <-h.c.Settled():
	default:
		t.Fatal("not settled after every initial target had its result")
	}
	if h.state(addrA) != endpoint.Ready || h.state(addrB) != endpoint.Pending {
		t.Fatalf("after one check: A %s (want ready at its first pass), B %s (want pending)", h.state(addrA), h.state(addrB))
	}
	// A later server: rise 2, and its first check waits for its jitter.
	h.targets(addrA, addrB, addrC)
	if h.p.callsOf(addrC) != 0 {
		t.Fatal("a later server was checked before its jitter")
	}
	h.advance(5 * time.Second) // 0.9 × 0.5 × 10 s = 4.5 s
	if h.p.callsOf(addrC) != 1 || h.state(addrC) != endpoint.Pending {
		t.Fatalf("later server: %d checks, %s, want 1 and pending (rise 2)", h.p.callsOf(addrC), h.state(addrC))
	}
	// B recovers after failing: rise applies.
	h.advance(15 * time.Second)
	h.advance(15 * time.Second)
	if h.state(addrB) != endpoint.Failing {
		t.Fatalf("B after 3 failures: %s, want failing", h.state(addrB))
	}
	h.p.set(addrB, false)
	h.advance(15 * time.Second)
	if h.state(addrB) != endpoint.Failing {
		t.Fatalf("B after one pass from failing: %s, want failing (rise 2)", h.state(addrB))
	}
	h.advance(15 * time.Second)
	if h.state(addrB) != endpoint.Ready {
		t.Fatalf("B after two passes: %s, want ready", h.state(addrB))
	}
}

// TestInitialTargetsSettleWhenDropped: an initial server that leaves the
// set before its first result counts as settled; an empty initial set
// settles at once; SetInitialTargets after SetTargets is SetTargets.
func TestInitialTargetsSettleWhenDropped(t *testing.T) {
	h := start(t, testOptions(), nil)
	h.p.setHold(addrA, true)
	h.inFlight = 1
	h.c.SetInitialTargets([]endpoint.Endpoint{{Addr: addrA}, {Addr: addrB}})
	h.settle()
	select {
	case <-h.c.Settled():
		t.Fatal("settled while A's check is in flight")
	default:
	}
	h.c.SetTargets([]endpoint.Endpoint{{Addr: addrB}})
	select {
	case <-h.c.Settled():
	default:
		t.Fatal("not settled after the unsettled server left")
	}
	h.p.setHold(addrA, false)
	h.p.release <- struct{}{}
	h.inFlight = 0
	h.settle()

	e := start(t, testOptions(), nil)
	e.c.SetInitialTargets(nil)
	select {
	case <-e.c.Settled():
	default:
		t.Fatal("an empty initial set did not settle")
	}
	l := start(t, testOptions(), nil)
	l.targets(addrA)
	l.c.SetInitialTargets([]endpoint.Endpoint{{Addr: addrA}, {Addr: addrB}})
	l.settle()
	if l.state(addrB) != endpoint.Pending {
		t.Fatalf("a server handed over after SetTargets: %s after one pass, want pending (rise 2)", l.state(addrB))
	}
}
