package discover

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

func TestRoundNoProbeSent(t *testing.T) {
	t.Run("kernel refuses every send", func(t *testing.T) {
		o := testOptions(freePort(t))
		c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), nil)
		c.sendHook = func(*net.UDPConn, []byte, netip.AddrPort) error { return syscall.ENETUNREACH }
		res, err := c.Round(context.Background())
		if !errors.Is(err, ErrNoProbeSent) || !errors.Is(err, syscall.ENETUNREACH) ||
			!strings.Contains(err.Error(), "fake2 -> 127.0.0.2:") || !strings.Contains(err.Error(), "fake3 -> 127.0.0.3:") {
			t.Fatalf("Round = %v, want ErrNoProbeSent naming each interface", err)
		}
		if res.Stats.SendErrors != 2 || res.Stats.ProbesSent != 0 {
			t.Errorf("stats %+v", res.Stats)
		}
	})
	t.Run("one interface still works", func(t *testing.T) {
		p := freePort(t)
		startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 0))
		c := newClient(t, testOptions(p), lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), nil)
		c.sendHook = func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error {
			if dst.Addr() == netip.MustParseAddr("127.0.0.2") {
				return syscall.ENETDOWN
			}
			_, err := conn.WriteToUDPAddrPort(b, dst)
			return err
		}
		res, err := settledRoundOf(t, c, 1)
		if err != nil || len(res.Servers) != 1 || res.Stats.SendErrors != 1 {
			t.Fatalf("Round = %v, %v, stats %+v", endpoints(res.Servers), err, res.Stats)
		}
	})
	// In the next two the test sends each retry (fireRetry) and ends the
	// round, whose deadline is 10 minutes off, by Settle after the last
	// (settle): no retry and no reply has to make a real-time deadline.
	t.Run("a retry goes out after a failed first burst", func(t *testing.T) {
		p := freePort(t)
		startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 0))
		o := testOptions(p)
		o.Retries, o.Timeout, o.Settle = 2, longRound, 10*time.Millisecond
		c := newClient(t, o, lister(t, fakeIf("fake3", "127.0.1.3", "127.0.0.3")), nil)
		clk := clocktest.New(time.Unix(0, 0))
		c.retryClock = clk
		s := newSettler()
		s.install(c)
		var calls atomic.Int32
		c.sendHook = func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error {
			if calls.Add(1) == 1 { // the link is down for the first burst only
				return syscall.ENETDOWN
			}
			_, err := conn.WriteToUDPAddrPort(b, dst)
			return err
		}
		found := make(chan struct{})
		round := startRound(t, c, func(Server) { close(found) })
		fireRetry(t, clk)
		waitClosed(t, found, "server found by the first retry")
		fireRetry(t, clk)
		s.settle(t, 2, round.done) // the replies to the two retries
		res, err := round.wait()
		if err != nil || len(res.Servers) != 1 || res.Stats.SendErrors != 1 || res.Stats.ProbesSent != 2 {
			t.Fatalf("Round = %v, %v, stats %+v: want the server found by a retry", endpoints(res.Servers), err, res.Stats)
		}
	})
	t.Run("every burst failed", func(t *testing.T) {
		o := testOptions(freePort(t))
		o.Retries, o.Timeout, o.Settle = 2, longRound, 10*time.Millisecond
		c := newClient(t, o, lister(t, fakeIf("fake3", "127.0.1.3", "127.0.0.3")), nil)
		clk := clocktest.New(time.Unix(0, 0))
		c.retryClock = clk
		s := newSettler()
		s.install(c)
		c.sendHook = func(*net.UDPConn, []byte, netip.AddrPort) error { return syscall.ENETUNREACH }
		round := startRound(t, c, nil)
		fireRetry(t, clk)
		fireRetry(t, clk)
		s.settle(t, 0, round.done)
		res, err := round.wait()
		if !errors.Is(err, ErrNoProbeSent) || !errors.Is(err, syscall.ENETUNREACH) || res.Stats.SendErrors != 3 {
			t.Fatalf("Round = %v, stats %+v: want ErrNoProbeSent after the first burst and 2 retries", err, res.Stats)
		}
	})
	t.Run("no IPv4 broadcast at all", func(t *testing.T) {
		ifc := fakeIf("odd0", "127.0.1.2", "127.0.0.2")
		ifc.Broadcast, ifc.Prefix = netip.Addr{}, netip.Prefix{}
		c := newClient(t, testOptions(freePort(t)), lister(t, ifc), nil)
		if _, err := c.Round(context.Background()); !errors.Is(err, ErrNoInterfaces) ||
			!strings.Contains(err.Error(), "odd0 127.0.1.2 (no_broadcast_domain: address has no network prefix") {
			t.Fatalf("Round = %v, want ErrNoInterfaces naming odd0's missing broadcast domain", err)
		}
	})
}

func TestRoundSubnetScan(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.5", p), plainResponder("10.213.0.5", 0))
	o := testOptions(p)
	o.SubnetScan = true
	o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/29")}
	o.ScanRate = 1000
	// The round ends by Settle, once the scan is done and the one reply
	// is in; its deadline, and the scan's stop time, are 10 minutes off
	// (testOptions).
	// The broadcast (127.0.0.7) reaches nobody; our own address 127.0.0.2 is skipped.
	c := newClient(t, o, lister(t, fakeIf("fake7", "127.0.0.2", "127.0.0.7")), nil)
	res, err := settledRoundOf(t, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := endpoints(res.Servers); !slices.Equal(got, []string{"10.213.0.5:8000"}) {
		t.Fatalf("servers %v, stats %+v", got, res.Stats)
	}
	// Hosts .1-.6 minus our .2 (and lo's .1).
	if res.Stats.ScanTargets != 4 || res.Stats.ProbesSent != 5 {
		t.Errorf("stats %+v, want 4 scan targets and 5 probes", res.Stats)
	}
	t.Run("off", func(t *testing.T) {
		o.SubnetScan = false
		res, err := settledRoundOf(t, newClient(t, o, lister(t, fakeIf("fake7", "127.0.0.2", "127.0.0.7")), nil), 0)
		if err != nil || len(res.Servers) != 0 || res.Stats.ScanTargets != 0 {
			t.Fatalf("servers %v, stats %+v, err %v", endpoints(res.Servers), res.Stats, err)
		}
	})
}
