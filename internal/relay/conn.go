package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// Datagram is one datagram the relay received.
type Datagram struct {
	// Payload is valid until the next read.
	Payload []byte
	Source  netip.AddrPort
	// IfIndex is the index of the interface it arrived on (IP_PKTINFO),
	// 0 when unknown.
	IfIndex int
	// Dst is the address it was sent to (a broadcast address, or one of
	// this host's), from IP_PKTINFO; the zero Addr when unknown.
	Dst netip.Addr
}

// Conn is the relay's socket: probes in, each with the interface it
// arrived on, and replies out. PacketConn is the real one; tests feed
// datagrams through their own.
type Conn interface {
	// ReadDatagram reads the next datagram into b.
	ReadDatagram(b []byte) (Datagram, error)
	// WriteTo sends b to addr.
	WriteTo(b []byte, addr netip.AddrPort) (int, error)
	// SetReadDeadline makes a blocked ReadDatagram return (Serve uses it
	// to stop).
	SetReadDeadline(t time.Time) error
}

// ErrNoInterfaceInfo is wrapped by Listen's error when the platform cannot
// tell which interface a datagram arrived on (IP_PKTINFO).
var ErrNoInterfaceInfo = errors.New("the platform does not report a datagram's interface (IP_PKTINFO)")

// pktinfoFlags are the control messages asked for: the interface a
// datagram arrived on and its destination.
const pktinfoFlags = ipv4.FlagInterface | ipv4.FlagDst

// PacketConn is a UDP socket bound as a stock server binds its own
// (discover.ListenResponder: SO_REUSEADDR and SO_REUSEPORT), with
// IP_PKTINFO on: each datagram comes with the interface it arrived on, no
// privilege needed (unlike SO_BINDTODEVICE). One goroutine may read while
// others write.
type PacketConn struct {
	udp *net.UDPConn
	oob []byte
	cm  ipv4.ControlMessage
}

// Listen opens a PacketConn on addr ("0.0.0.0:9999"). The error wraps
// ErrNoInterfaceInfo when the platform lacks IP_PKTINFO.
func Listen(ctx context.Context, addr string) (*PacketConn, error) {
	pc, err := discover.ListenResponder(ctx, addr)
	if err != nil {
		return nil, err
	}
	udp, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("listen for probes on %s: not a UDP socket (%T)", addr, pc)
	}
	if err := ipv4.NewPacketConn(udp).SetControlMessage(pktinfoFlags, true); err != nil {
		udp.Close()
		return nil, fmt.Errorf("listen for probes on %s: %w: %w", addr, ErrNoInterfaceInfo, err)
	}
	return &PacketConn{udp: udp, oob: ipv4.NewControlMessage(pktinfoFlags)}, nil
}

// ReadDatagram implements Conn.
func (c *PacketConn) ReadDatagram(b []byte) (Datagram, error) {
	n, oobn, _, src, err := c.udp.ReadMsgUDPAddrPort(b, c.oob)
	if err != nil {
		return Datagram{}, err
	}
	d := Datagram{Payload: b[:n], Source: src}
	// Parse keeps the Dst buffer between reads; zero it so that a
	// datagram without the control message reads as unknown.
	c.cm.IfIndex = 0
	clear(c.cm.Dst)
	if c.cm.Parse(c.oob[:oobn]) == nil {
		d.IfIndex = c.cm.IfIndex
		if ip, ok := netip.AddrFromSlice(c.cm.Dst); ok && !ip.Unmap().IsUnspecified() {
			d.Dst = ip.Unmap()
		}
	}
	return d, nil
}

// WriteTo implements Conn.
func (c *PacketConn) WriteTo(b []byte, addr netip.AddrPort) (int, error) {
	return c.udp.WriteToUDPAddrPort(b, addr)
}

// SetReadDeadline implements Conn.
func (c *PacketConn) SetReadDeadline(t time.Time) error { return c.udp.SetReadDeadline(t) }

// LocalAddr is the address the socket is bound to.
func (c *PacketConn) LocalAddr() netip.AddrPort {
	return c.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close closes the socket.
func (c *PacketConn) Close() error { return c.udp.Close() }
