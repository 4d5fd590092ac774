package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func TestRespondFlagErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"negative global rate", []string{"--global-rate-limit", "-1"}, "--global-rate-limit: bad value -1: want >= 0 (0: no limit)"},
		{"NaN global rate", []string{"--global-rate-limit", "NaN"}, "--global-rate-limit: bad value NaN"},
		{"infinite global rate", []string{"--global-rate-limit", "+Inf"}, "--global-rate-limit: bad value +Inf"},
		{"zero global burst", []string{"--global-burst", "0"}, "--global-burst: bad value 0: want >= 1"},
		{"replies over the global burst", []string{"--replies", "1000"}, "--global-burst: bad value 200: below --replies 1000, so no probe could be answered"},
		{"replies over a set global burst", []string{"--replies", "11", "--global-burst", "10"}, "--global-burst: bad value 10: below --replies 11"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, append([]string{"respond", "--ip", "10.0.0.1"}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
		})
	}
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func ifc(prefix string) iface.Interface {
	p := netip.MustParsePrefix(prefix)
	return iface.Interface{Name: "eth0", Addr: p.Addr(), Prefix: p.Masked(), Up: true}
}

// TestHostNetworksWatch: the networks are re-read every period; a change
// is logged, a failed listing keeps the last networks and is logged once,
// the recovery too.
func TestHostNetworksWatch(t *testing.T) {
	lists := []struct {
		ifs []iface.Interface
		err error
	}{
		{[]iface.Interface{ifc("192.168.1.7/24"), ifc("127.0.0.1/8"), ifc("192.168.1.8/24")}, nil},
		{[]iface.Interface{ifc("192.168.1.7/24"), ifc("127.0.0.1/8")}, nil},
		{[]iface.Interface{ifc("10.1.2.3/16"), ifc("127.0.0.1/8")}, nil},
		{nil, errors.New("netlink: boom")},
		{nil, errors.New("netlink: boom")},
		{[]iface.Interface{ifc("10.1.2.3/16")}, nil},
	}
	var mu sync.Mutex
	i := 0
	h := &hostNetworks{lister: iface.ListerFunc(func() ([]iface.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		l := lists[min(i, len(lists)-1)]
		i++
		return l.ifs, l.err
	})}
	if err := h.refresh(); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"127.0.0.0/8", "192.168.1.0/24"}, // sorted, once
		{"127.0.0.0/8", "192.168.1.0/24"},
		{"10.1.0.0/16", "127.0.0.0/8"},
		{"10.1.0.0/16", "127.0.0.0/8"}, // failed: kept
		{"10.1.0.0/16", "127.0.0.0/8"},
		{"10.1.0.0/16"},
	}
	var logs syncBuf
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { h.watch(ctx, clk, 10*time.Second, zerolog.New(&logs)); close(done) }()
	defer func() { cancel(); <-done }()
	for step, w := range want {
		if step > 0 {
			clk.Advance(10 * time.Second)
		}
		if err := clk.WaitForTimers(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if got := prefixStrings(h.Get()); !slices.Equal(got, w) {
			t.Errorf("after refresh %d: networks %v, want %v", step, got, w)
		}
	}
	out := logs.String()
	for msg, n := range map[string]int{"host networks changed": 2, "host networks not refreshed": 1, "host networks listed again": 1} {
		if got := strings.Count(out, msg); got != n {
			t.Errorf("%q logged %d times, want %d:\n%s", msg, got, n, out)
		}
	}
	if !strings.Contains(out, "netlink: boom") {
		t.Errorf("the listing error is not logged:\n%s", out)
	}
}

func TestHostNetworksStartError(t *testing.T) {
	h := &hostNetworks{lister: iface.ListerFunc(func() ([]iface.Interface, error) { return nil, errors.New("no netlink") })}
	if err := h.refresh(); err == nil || !strings.Contains(err.Error(), "list the host's networks: no netlink") {
		t.Fatalf("refresh = %v", err)
	}
	if h.Get() != nil {
		t.Fatalf("networks %v after a failed first listing, want none", h.Get())
	}
}

// TestLogDropped: a WARN per period in which probes were refused, with the
// counts by reason; nothing in a quiet period.
func TestLogDropped(t *testing.T) {
	r := &discover.Responder{
		Message: []byte("DISCOVER_SERVER"), Prefix: []byte("SERVER_IP:"), IP: netip.MustParseAddr("10.0.0.1"),
		Networks: func() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.8/30")} },
	}
	conn, err := discover.ListenResponder(t.Context(), "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- r.Serve(sctx, conn) }()
	defer func() { stop(); <-served }()

	var logs syncBuf
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { logDropped(ctx, clk, 10*time.Second, r, zerolog.New(&logs)); close(done) }()
	defer func() { cancel(); <-done }()

	probe := func(from string, n int) {
		t.Helper()
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range n {
			if _, err := c.WriteTo([]byte("DISCOVER_SERVER"), conn.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// waitRefused polls the count; its 5 s deadline is a guard against a
	// hang, not a measure (the probes are handled within milliseconds).
	waitRefused := func(n uint64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got := r.Refused(discover.RefusedNetworkAddress) + r.Refused(discover.RefusedNetworkBroadcast)
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("responder refused %d probes, want %d", got, n)
			}
		}
	}
	period := func() {
		t.Helper()
		if err := clk.WaitForTimers(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Second)
		if err := clk.WaitForTimers(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	probe("127.0.0.8", 2)
	probe("127.0.0.11", 1)
	waitRefused(3)
	period()
	period() // quiet: no line
	probe("127.0.0.11", 1)
	waitRefused(4)
	period()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{
		`{"level":"warn","refused":3,"refused_total":3,"refused_network_address":2,"refused_network_broadcast":1,"message":"probes refused for their source address"}`,
		`{"level":"warn","refused":1,"refused_total":4,"refused_network_broadcast":1,"message":"probes refused for their source address"}`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
