package faults

import (
	"context"
	"net"
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
	if err := reach(); err != nil {
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
	if err := reach(); err != nil {
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
