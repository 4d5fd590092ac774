package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// loBroadcast is loopback's directed broadcast address (the kernel's local
// table lists it for 127.0.0.0/8): the unit tests' broadcast, which never
// leaves the host.
var loBroadcast = netip.MustParseAddr("127.255.255.255")

// broadcastClient is a UDP socket on 127.0.0.2, allowed to send to a
// broadcast address (Go sets SO_BROADCAST on every UDP socket).
func broadcastClient(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listenBroadcast opens Sockets on a free port, skipping where the
// platform lacks what they need.
func listenBroadcast(t *testing.T) *Sockets {
	t.Helper()
	s, err := ListenBroadcast(context.Background(), 0)
	if errors.Is(err, ErrNoInterfaceInfo) {
		t.Skipf("no IP_PKTINFO here: %v", err)
	}
	if err != nil {
		t.Skipf("cannot bind 255.255.255.255: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readUntil reads s until a datagram with payload marker arrives and
// returns the payloads read before it, and the marker's datagram.
func readUntil(t *testing.T, s *Sockets, marker string) ([]string, Datagram) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(hangGuard))
	defer s.SetReadDeadline(time.Time{})
	var before []string
	buf := make([]byte, 2048)
	for {
		d, err := s.ReadDatagram(buf)
		if err != nil {
			t.Fatalf("waiting for %q (read before: %q): %v", marker, before, err)
		}
		if string(d.Payload) == marker {
			return before, d
		}
		before = append(before, string(d.Payload))
	}
}

// TestSocketsBroadcastOnly: the relay's sockets receive what is sent to
// a broadcast address they are bound to, with the interface and the
// destination, and never a unicast datagram: with a stock server's
// socket (SO_REUSEADDR only) bound to the wildcard address after them,
// the server gets every unicast probe, which a relay bound to the
// wildcard would have taken from it (e2e/relay measures both).
func TestSocketsBroadcastOnly(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo interface: %v", err)
	}
	s := listenBroadcast(t)
	if err := s.Bind([]netip.Addr{loBroadcast}); err != nil {
		t.Skipf("cannot bind %s: %v", loBroadcast, err)
	}
	if got := s.Bound(); !slices.Equal(got, []netip.Addr{LimitedBroadcast, loBroadcast}) {
		t.Fatalf("bound %v", got)
	}
	port := s.Port()
	stock := stockSocket(t, port)
	client := broadcastClient(t)
	send := func(payload string, to netip.Addr) {
		t.Helper()
		if _, err := client.WriteToUDPAddrPort([]byte(payload), netip.AddrPortFrom(to, port)); err != nil {
			t.Fatalf("send %q to %s: %v", payload, to, err)
		}
	}
	send("unicast", netip.MustParseAddr("127.0.0.1"))
	send("broadcast", loBroadcast)
	before, d := readUntil(t, s, "broadcast")
	if len(before) != 0 {
		t.Errorf("the relay's sockets read %q before the broadcast", before)
	}
	if d.IfIndex != lo.Index || d.Dst != loBroadcast || d.Source.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("broadcast datagram %+v: want interface %d (lo), to %s, from 127.0.0.2", d, lo.Index, loBroadcast)
	}
	// The stock socket got both: the unicast alone, and its copy of the
	// broadcast.
	_ = stock.SetReadDeadline(time.Now().Add(hangGuard))
	buf := make([]byte, 2048)
	for _, want := range []string{"unicast", "broadcast"} {
		n, _, err := stock.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("the stock socket read %q (%v), want %q", buf[:n], err, want)
		}
	}

	// A reply leaves from the port, from the address the route chooses.
	if _, err := s.WriteTo([]byte("SERVER_IP:10.2.0.5"), client.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(hangGuard))
	n, from, err := client.ReadFromUDPAddrPort(buf)
	if err != nil || from != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) {
		t.Errorf("reply %q from %s (%v): want it from 127.0.0.1:%d", buf[:n], from, err, port)
	}

	// Unbound, the directed broadcast reaches the stock socket only.
	if err := s.Bind(nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Bound(); !slices.Equal(got, []netip.Addr{LimitedBroadcast}) {
		t.Fatalf("bound after Bind(nil): %v", got)
	}
	send("after unbind", loBroadcast)
	if n, _, err := stock.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "after unbind" {
		t.Fatalf("the stock socket read %q (%v)", buf[:n], err)
	}
	_ = s.SetReadDeadline(time.Now())
	if d, err := s.ReadDatagram(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after Bind(nil) the relay read %q (%v), want nothing", d.Payload, err)
	}
}

// stockSocket binds the wildcard address on port as the stock server
// does (SO_REUSEADDR only).
func stockSocket(t *testing.T, port uint16) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) }); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), port).String())
	if err != nil {
		t.Fatalf("stock socket on :%d: %v", port, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// TestSocketsDeadlineAndClose: a blocked ReadDatagram returns when the
// deadline is moved into the past, or when the sockets close.
func TestSocketsDeadlineAndClose(t *testing.T) {
	s := listenBroadcast(t)
	errc := make(chan error, 1)
	go func() {
		_, err := s.ReadDatagram(make([]byte, 64))
		errc <- err
	}()
	_ = s.SetReadDeadline(time.Unix(1, 0))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the deadline moved: %v", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	go func() {
		_, err := s.ReadDatagram(make([]byte, 64))
		errc <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if err := s.Bind([]netip.Addr{loBroadcast}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Bind after Close: %v", err)
	}
}

// TestServeBindsBroadcasts: the engine hands a Binder its relay
// interfaces' directed broadcasts (none for a /32) at start, and again
// when they change.
func TestServeBindsBroadcasts(t *testing.T) {
	ifs := []iface.Interface{
		{Name: "eth1", Index: 3, Addr: netip.MustParseAddr("10.3.0.2"), Prefix: netip.MustParsePrefix("10.3.0.0/24"), Up: true},
		{Name: "eth1", Index: 3, Addr: netip.MustParseAddr("10.9.0.2"), Prefix: netip.MustParsePrefix("10.9.0.2/32"), Up: true},
		{Name: "eth2", Index: 4, Addr: netip.MustParseAddr("10.4.0.2"), Prefix: netip.MustParsePrefix("10.4.0.0/16"), Up: true},
	}
	cur := make(chan []iface.Interface, 1)
	cur <- ifs
	lister := iface.ListerFunc(func() ([]iface.Interface, error) {
		l := <-cur
		cur <- l
		return l, nil
	})
	cfg := testConfig()
	cfg.Interfaces = []string{"eth1"}
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	r, err := New(cfg, fixed(), lister, clk, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	conn := &bindConn{fakeConn: newFakeConn(), binds: make(chan []netip.Addr, 4)}
	start(t, r, conn)
	if got := <-conn.binds; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.3.0.255")}) {
		t.Errorf("bound %v at start, want eth1's 10.3.0.255 only", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := clk.WaitForTimers(ctx, 1); err != nil { // the refresh's sleep
		t.Fatal(err)
	}
	<-cur
	cur <- append(slices.Clone(ifs), iface.Interface{Name: "eth1", Index: 3, Addr: netip.MustParseAddr("10.5.0.2"), Prefix: netip.MustParsePrefix("10.5.0.0/25"), Up: true})
	clk.Advance(cfg.RefreshEvery)
	if got := <-conn.binds; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.3.0.255"), netip.MustParseAddr("10.5.0.127")}) {
		t.Errorf("bound %v after eth1 gained 10.5.0.2/25", got)
	}
}

// bindConn is a fake Conn that records what it is asked to bind.
type bindConn struct {
	*fakeConn
	binds chan []netip.Addr
}

func (c *bindConn) Bind(addrs []netip.Addr) error {
	c.binds <- slices.Clone(addrs)
	return nil
}
