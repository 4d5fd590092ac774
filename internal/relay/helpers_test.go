package relay

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// hangGuard only stops a test that would otherwise hang; no result depends
// on it.
const hangGuard = 30 * time.Second

// The host of the tests: the relay answers on eth0 (index 2: 10.1.0.1/24
// and a second address 192.168.50.1/24); eth1 (index 3, 10.2.0.1/24) and
// lo (index 1) are not relay interfaces.
const (
	loIndex   = 1
	eth0Index = 2
	eth1Index = 3
)

var hostIfs = []iface.Interface{
	{Name: "lo", Index: loIndex, Addr: netip.MustParseAddr("127.0.0.1"), Prefix: netip.MustParsePrefix("127.0.0.0/8"), Up: true, Loopback: true},
	{Name: "eth0", Index: eth0Index, Addr: netip.MustParseAddr("10.1.0.1"), Prefix: netip.MustParsePrefix("10.1.0.0/24"), Up: true},
	{Name: "eth0", Index: eth0Index, Addr: netip.MustParseAddr("192.168.50.1"), Prefix: netip.MustParsePrefix("192.168.50.0/24"), Up: true},
	{Name: "eth1", Index: eth1Index, Addr: netip.MustParseAddr("10.2.0.1"), Prefix: netip.MustParsePrefix("10.2.0.0/24"), Up: true},
}

func hostLister() iface.Lister {
	return iface.ListerFunc(func() ([]iface.Interface, error) { return hostIfs, nil })
}

// testConfig is the defaults on eth0 with no delay and no rate limits:
// each test sets what it exercises.
func testConfig() Config {
	c := DefaultConfig()
	c.Interfaces = []string{"eth0"}
	c.Delay = 0
	c.Rate, c.GlobalRate = 0, 0
	return c
}

// fixed returns a Targets source that always offers set, fresh.
func fixed(set ...Target) Targets {
	return TargetsFunc(func() ([]Target, time.Duration, bool) { return set, 0, true })
}

// targets parses "ip" and "ip:port" strings.
func targets(ss ...string) []Target {
	out := make([]Target, len(ss))
	for i, s := range ss {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out[i] = Target{Addr: ap.Addr(), Port: ap.Port()}
			continue
		}
		out[i] = Target{Addr: netip.MustParseAddr(s)}
	}
	return out
}

// probe is a datagram with payload from src arriving on ifindex.
func probe(payload []byte, src string, ifindex int) Datagram {
	return Datagram{Payload: payload, Source: netip.MustParseAddrPort(src), IfIndex: ifindex}
}

var plainProbe = []byte("DISCOVER_SERVER")

// written is one datagram the relay sent.
type written struct {
	to   netip.AddrPort
	data string
}

// fakeConn is a Conn fed by the test in batches. After the last datagram
// of a batch is read, the next read signals idle: by then Serve has
// handled the whole batch.
type fakeConn struct {
	in      chan []Datagram
	idle    chan struct{}
	pending []Datagram
	stop    chan struct{}
	once    sync.Once

	mu    sync.Mutex
	out   []written
	wrote chan struct{}
}

func newFakeConn() *fakeConn {
	return &fakeConn{
		in: make(chan []Datagram, 1), idle: make(chan struct{}, 1),
		stop: make(chan struct{}), wrote: make(chan struct{}, 1),
	}
}

func (c *fakeConn) ReadDatagram(b []byte) (Datagram, error) {
	for len(c.pending) == 0 {
		select {
		case c.idle <- struct{}{}:
		default:
		}
		select {
		case c.pending = <-c.in:
		case <-c.stop:
			return Datagram{}, os.ErrDeadlineExceeded
		}
	}
	d := c.pending[0]
	c.pending = c.pending[1:]
	d.Payload = b[:copy(b, d.Payload)]
	return d, nil
}

func (c *fakeConn) WriteTo(b []byte, to netip.AddrPort) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, written{to, string(b)})
	c.mu.Unlock()
	select {
	case c.wrote <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (c *fakeConn) SetReadDeadline(time.Time) error {
	c.once.Do(func() { close(c.stop) })
	return nil
}

// sent returns and forgets the datagrams written so far.
func (c *fakeConn) sent() []written {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

// count is how many datagrams were written and not yet taken by sent.
func (c *fakeConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}

// waitWritten waits until n datagrams were written and not yet taken.
func (c *fakeConn) waitWritten(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(hangGuard)
	for c.count() < n {
		select {
		case <-c.wrote:
		case <-deadline:
			t.Fatalf("%d datagrams written, want %d", c.count(), n)
		}
	}
}

// served is a Relay running Serve on a fakeConn until the test ends.
type served struct {
	r    *Relay
	c    *fakeConn
	clk  *clocktest.Clock
	feed func(...Datagram)
}

// start runs r.Serve on conn until the test ends, and then checks that
// it returned nil.
func start(t *testing.T, r *Relay, conn Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
}

// serve starts a Relay for cfg on a fakeConn, with the host's interfaces
// and a manual clock; feed hands Serve a batch and returns once Serve has
// handled all of it (with a Delay: queued it).
func serve(t *testing.T, cfg Config, src Targets) served {
	t.Helper()
	return serveOn(t, cfg, src, hostLister())
}

// serveOn is serve with the interfaces of lister.
func serveOn(t *testing.T, cfg Config, src Targets, lister iface.Lister) served {
	t.Helper()
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	r, err := New(cfg, src, lister, clk, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeConn()
	start(t, r, c)
	wait := func() {
		select {
		case <-c.idle:
		case <-time.After(hangGuard):
			t.Fatal("Serve did not come back for more datagrams")
		}
	}
	wait()
	return served{r: r, c: c, clk: clk, feed: func(ds ...Datagram) {
		t.Helper()
		c.in <- ds
		wait()
	}}
}

// waitTimers waits until the relay's goroutines wait on n timers of the
// manual clock (the interface refresh holds one).
func (s served) waitTimers(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := s.clk.WaitForTimers(ctx, n); err != nil {
		t.Fatal(err)
	}
}
