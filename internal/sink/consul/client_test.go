package consul

import (
	"context"
	"net"
	"testing"
)

// TestFailoverDialer: the dialer skips an address that refuses, sticks to
// the one that answered, and names every failure when none answers.
func TestFailoverDialer(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more: connections are refused
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	f := &failoverDialer{addrs: []string{deadAddr, live.Addr().String()}}
	for range 2 {
		c, err := f.DialContext(context.Background(), "tcp", "ignored:8500")
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if c.RemoteAddr().String() != live.Addr().String() {
			t.Errorf("connected to %s, want %s", c.RemoteAddr(), live.Addr())
		}
		c.Close()
	}
	if f.good != 1 {
		t.Errorf("preferred address index = %d, want 1 (the one that answered)", f.good)
	}
	f = &failoverDialer{addrs: []string{deadAddr, deadAddr}}
	if _, err := f.DialContext(context.Background(), "tcp", "x:1"); err == nil {
		t.Fatal("dial succeeded with no live address")
	}
}

func TestClientConfigSeveralAddrs(t *testing.T) {
	ac, _, _, err := ClientConfig{Addr: "10.0.0.1:8500, 10.0.0.2:8500"}.apiConfig()
	if err != nil || ac.Address != "10.0.0.1:8500" || ac.Transport == nil || ac.Transport.DialContext == nil {
		t.Fatalf("apiConfig = %+v, %v", ac, err)
	}
	if _, _, _, err := (ClientConfig{Addr: "https://a:8501,https://b:8501"}).apiConfig(); err == nil {
		t.Fatal("URLs in a list accepted")
	}
}
