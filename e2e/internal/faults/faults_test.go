package faults

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestPartition: a host cut from its network reaches nothing on it until
// healed; the rule lives in its own namespace only.
func TestPartition(t *testing.T) {
	netns.Require(t)
	lab := netns.New(t)
	br := lab.Bridge("lan")
	a := lab.Host("a", br, "10.213.250.1/24")
	b := lab.Host("b", br, "10.213.250.2/24")
	ln, err := netns.Listen(t.Context(), b.NS, "tcp", "10.213.250.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	reach := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		c, err := netns.Dial(ctx, a.NS, "tcp", "10.213.250.2:7000")
		if err == nil {
			c.Close()
		}
		return err
	}
	// Reachable before the partition and after healing: a dial may need
	// more than one try (the first waits for ARP; on a loaded machine
	// longer than one try's 500 ms).
	reachSoon := func() error {
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			if err = reach(); err == nil || time.Now().After(deadline) {
				return err
			}
		}
	}
	if err := reachSoon(); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	heal := Partition(t, a, a.Dev(br))
	err = reach()
	var ne net.Error
	if err == nil {
		t.Fatal("a reached b through the partition")
	}
	if ok := asNetErr(err, &ne); !ok || !ne.Timeout() {
		t.Logf("dial through the partition: %v (a timeout is what a cut cable gives)", err)
	}
	heal()
	if err := reachSoon(); err != nil {
		t.Fatalf("after healing: %v", err)
	}
}

func asNetErr(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}

// TestDuplicate: with probability 1, every datagram a sends to b arrives
// twice; none after healing; a datagram to another host is not cloned.
func TestDuplicate(t *testing.T) {
	netns.Require(t)
	lab := netns.New(t)
	br := lab.Bridge("lan")
	a := lab.Host("a", br, "10.213.250.1/24")
	b := lab.Host("b", br, "10.213.250.2/24")
	pc, err := netns.ListenPacket(t.Context(), b.NS, "udp4", "10.213.250.2:7001")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := func(n int) int {
		c, err := netns.Dial(t.Context(), a.NS, "udp4", "10.213.250.2:7001")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		count, buf := 0, make([]byte, 16)
		for {
			_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return count
			}
			count++
		}
	}
	heal := Duplicate(t, a, a.Dev(br), netip.MustParseAddr("10.213.250.2"), 1)
	if n := got(5); n != 10 {
		t.Fatalf("5 datagrams with duplication: %d arrived, want 10", n)
	}
	heal()
	if n := got(5); n != 5 {
		t.Fatalf("5 datagrams after healing: %d arrived, want 5", n)
	}
}
