package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// TestLoopbackSocket runs the relay on a real socket on 127.0.0.1 (a
// random port): IP_PKTINFO reports the loopback interface and the
// destination of each datagram, and a probe from 127.0.0.2 gets its reply
// from the relay's port after the default delay, on the real clock. The
// listing is injected: lo with its real index, 127.0.0.1/8, so 127.0.0.2
// is an on-link neighbour rather than this host.
func TestLoopbackSocket(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo interface: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := Listen(ctx, "127.0.0.1:0")
	if errors.Is(err, ErrNoInterfaceInfo) {
		t.Skipf("no IP_PKTINFO here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // after Serve stopped: cleanups run last first
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	defer client.Close()
	clientAddr := client.LocalAddr().(*net.UDPAddr).AddrPort()

	// IP_PKTINFO: the interface and the destination of a datagram.
	if _, err := client.WriteToUDPAddrPort([]byte("hello"), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(hangGuard))
	d, err := conn.ReadDatagram(make([]byte, 2048))
	if err != nil {
		t.Fatal(err)
	}
	if d.IfIndex != lo.Index || d.Dst != netip.MustParseAddr("127.0.0.1") || d.Source != clientAddr || string(d.Payload) != "hello" {
		t.Fatalf("datagram %+v: want interface %d (lo), to 127.0.0.1, from %s, %q", d, lo.Index, clientAddr, "hello")
	}
	_ = conn.SetReadDeadline(time.Time{})

	lister := iface.ListerFunc(func() ([]iface.Interface, error) {
		return []iface.Interface{{
			Name: "lo", Index: lo.Index, Addr: netip.MustParseAddr("127.0.0.1"),
			Prefix: netip.MustParsePrefix("127.0.0.0/8"), Up: true, Loopback: true,
		}}, nil
	})
	cfg := DefaultConfig()
	cfg.Interfaces = []string{"lo"}
	r, err := New(cfg, fixed(targets("10.2.0.5:8000")...), lister, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	start(t, r, conn)
	if _, err := client.WriteToUDPAddrPort(plainProbe, conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(hangGuard))
	buf := make([]byte, 2048)
	n, from, err := client.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no reply: %v (stats %+v)", err, r.Stats())
	}
	if string(buf[:n]) != "SERVER_IP:10.2.0.5:8000" || from != conn.LocalAddr() {
		t.Errorf("reply %q from %s, want %q from %s", buf[:n], from, "SERVER_IP:10.2.0.5:8000", conn.LocalAddr())
	}
	// The reply can arrive before the relay's sender counted it.
	for deadline := time.Now().Add(hangGuard); r.Stats().Replies == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if st := r.Stats(); st.Relayed != 1 || st.Replies != 1 || st.Dropped.Total() != 0 {
		t.Errorf("stats %+v: want one probe relayed with one reply", st)
	}
}
