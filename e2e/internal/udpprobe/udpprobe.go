// Package udpprobe is a stock-style discovery client driven from the test
// process inside a lab host's namespace: it sends a probe (broadcast or
// unicast) and collects every reply until a deadline, with each reply's
// arrival time, as the stock client's discover() does, and parses replies
// by the stock client's rules.
package udpprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Prober is a client socket in a lab host.
type Prober struct {
	t    testing.TB
	conn *net.UDPConn
}

// Reply is one datagram a Prober read.
type Reply struct {
	Src     netip.AddrPort
	Payload string
	After   time.Duration // from the probe's send
}

// New opens a UDP socket on local ("10.213.33.50:0") in h's namespace.
// Go sets SO_BROADCAST on every UDP socket, as a stock client sets it.
func New(t testing.TB, h *netns.Host, local string) *Prober {
	t.Helper()
	pc, err := netns.ListenPacket(context.Background(), h.NS, "udp4", local)
	if err != nil {
		t.Fatalf("prober on %s in %s: %v", local, h.Name, err)
	}
	t.Cleanup(func() { pc.Close() })
	return &Prober{t: t, conn: pc.(*net.UDPConn)}
}

// Addr is the prober's own address.
func (p *Prober) Addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Probe sends payload to to and returns every reply read within wait.
func (p *Prober) Probe(to netip.AddrPort, payload []byte, wait time.Duration) []Reply {
	p.t.Helper()
	// Drop what a previous probe's late replies left in the buffer.
	_ = p.conn.SetReadDeadline(time.Now())
	buf := make([]byte, 2048)
	for {
		if _, _, err := p.conn.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
	}
	start := time.Now()
	if _, err := p.conn.WriteToUDPAddrPort(payload, to); err != nil {
		p.t.Fatalf("probe %s from %s: %v", to, p.Addr(), err)
	}
	_ = p.conn.SetReadDeadline(start.Add(wait))
	var out []Reply
	for {
		n, src, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				p.t.Fatalf("read replies on %s: %v", p.Addr(), err)
			}
			return out
		}
		out = append(out, Reply{Src: netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), Payload: string(buf[:n]), After: time.Since(start)})
	}
}

// Named is the "ip:port" each reply names, by the stock client's parsing
// (the prefix, then ip[:port], port 8000 when absent); replies that do
// not parse are returned apart.
func Named(rs []Reply) (servers []string, bad []string) {
	for _, r := range rs {
		rest, ok := strings.CutPrefix(r.Payload, "SERVER_IP:")
		if !ok {
			bad = append(bad, r.Payload)
			continue
		}
		rest = strings.TrimSpace(rest)
		ip, port, hasPort := strings.Cut(rest, ":")
		if !hasPort {
			port = "8000"
		}
		a, err := netip.ParseAddr(ip)
		n, perr := strconv.Atoi(port)
		if err != nil || !a.Is4() || perr != nil || n < 1 || n > 65535 {
			bad = append(bad, r.Payload)
			continue
		}
		servers = append(servers, fmt.Sprintf("%s:%d", a, n))
	}
	slices.Sort(servers)
	return slices.Compact(servers), bad
}

// Median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// Removal measures how long a server stays in a relay's answers after its
// registry dropped it: Run stops the server, then probes To from the
// Probers in turn every Every (spreading the probes over their source
// addresses' rate allowances) while Gone is polled every 100 ms, until
// After has passed since Gone first held.
type Removal struct {
	Probers []*Prober
	To      netip.AddrPort
	Payload []byte
	Every   time.Duration
	Server  string      // "ip:port" as Named gives it
	Gone    func() bool // the registry no longer lists Server as ready
	After   time.Duration
	Timeout time.Duration // from the stop to Gone
}

// RemovalResult is what Removal.Run saw.
type RemovalResult struct {
	Stopped, Gone time.Time // the stop, Gone's first true poll
	// LastWith is the send time of the last answered probe naming the
	// server (zero: none did), FirstWithout that of the first answered
	// probe after it that did not.
	LastWith, FirstWithout time.Time
	Answered               int
}

// Run stops the server with stop and measures.
func (r Removal) Run(t testing.TB, stop func()) RemovalResult {
	t.Helper()
	var (
		mu   sync.Mutex
		gone time.Time
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if r.Gone() {
				mu.Lock()
				gone = time.Now()
				mu.Unlock()
				return
			}
		}
	})
	res := RemovalResult{Stopped: time.Now()}
	stop()
	for i := 0; ; i++ {
		at := time.Now()
		rs := r.Probers[i%len(r.Probers)].Probe(r.To, r.Payload, r.Every)
		if len(rs) > 0 {
			res.Answered++
			names, _ := Named(rs)
			switch {
			case slices.Contains(names, r.Server):
				res.LastWith, res.FirstWithout = at, time.Time{}
			case res.FirstWithout.IsZero():
				res.FirstWithout = at
			}
		}
		mu.Lock()
		g := gone
		mu.Unlock()
		if !g.IsZero() && at.Sub(g) > r.After {
			res.Gone = g
			return res
		}
		if at.Sub(res.Stopped) > r.Timeout {
			t.Fatalf("%s still listed %s after its server stopped", r.Server, r.Timeout)
		}
	}
}
