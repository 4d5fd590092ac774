package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// Binder is a Conn that listens on chosen broadcast addresses (Sockets):
// the engine hands it the directed broadcast addresses of the relay
// interfaces' networks when it starts and whenever they change.
type Binder interface {
	// Bind listens on exactly addrs (and whatever the Conn always
	// listens on), opening and closing sockets as needed; it returns the
	// addresses it could not listen on, joined, and keeps the others.
	Bind(addrs []netip.Addr) error
}

// LimitedBroadcast is 255.255.255.255, the address of a probe sent to
// "every host on this link".
var LimitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// sockBufs is how many datagrams the sockets' readers may hold before
// the engine reads them: a reader with no free buffer stops reading, and
// the kernel's receive buffer absorbs (then drops) the rest, as for one
// socket.
const sockBufs = 64

// sockBufSize bounds what is kept of a datagram: a valid probe is at most
// a few hundred bytes (a Fernet token of the message), so a longer one is
// refused whole or cut alike.
const sockBufSize = 4096

// Sockets is the relay's production Conn: one UDP socket on the port per
// broadcast address probes arrive at, 255.255.255.255 always and each
// relay network's directed broadcast (Bind), every one bound as
// ListenResponder binds (SO_REUSEADDR, SO_REUSEPORT) with IP_PKTINFO.
// It never binds the wildcard address, so it never receives a unicast
// probe: on a host where a stock server also listens on the port, the
// kernel hands every unicast probe to the server (one socket of those
// bound to the wildcard gets each), while every socket bound to a
// broadcast probe's destination or to the wildcard gets a copy of it
// (measured: e2e/relay TestRelaySharesPortWithStockServer). A relay has
// nothing to answer a unicast probe with that the host's own server
// would not answer better, and a relay bound to the wildcard after a
// stock server took every unicast probe from it.
//
// Replies leave from the limited-broadcast socket: a socket bound to a
// broadcast address sends from the address the route chooses, the
// receiving interface's for an on-link client, and from the port.
type Sockets struct {
	ctx   context.Context
	port  uint16
	limit *PacketConn // 255.255.255.255: always bound, and the writer

	in     chan sockItem
	free   chan []byte
	closed chan struct{}

	mu       sync.Mutex
	socks    map[netip.Addr]*PacketConn // the directed broadcasts
	deadline time.Time
	wake     chan struct{} // closed and replaced when the deadline changes
	isClosed bool
	wg       sync.WaitGroup
}

// sockItem is one datagram a reader read, or its read error.
type sockItem struct {
	buf []byte // from free; Payload is buf[:n]
	d   Datagram
	err error
}

// ListenBroadcast opens Sockets on port, listening on 255.255.255.255
// until Bind adds the directed broadcasts; port 0 lets the kernel choose
// one (tests), which every later socket then shares.
func ListenBroadcast(ctx context.Context, port uint16) (*Sockets, error) {
	limit, err := Listen(ctx, netip.AddrPortFrom(LimitedBroadcast, port).String())
	if err != nil {
		return nil, err
	}
	s := &Sockets{
		ctx: context.WithoutCancel(ctx), port: limit.LocalAddr().Port(), limit: limit,
		in: make(chan sockItem, sockBufs), free: make(chan []byte, sockBufs), closed: make(chan struct{}),
		socks: map[netip.Addr]*PacketConn{}, wake: make(chan struct{}),
	}
	for range sockBufs {
		s.free <- make([]byte, sockBufSize)
	}
	s.read(limit)
	return s, nil
}

// Port is the port every socket is bound to.
func (s *Sockets) Port() uint16 { return s.port }

// Bound lists the addresses listened on, 255.255.255.255 first, then the
// directed broadcasts in order.
func (s *Sockets) Bound() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []netip.Addr{LimitedBroadcast}
	for a := range s.socks {
		out = append(out, a)
	}
	slices.SortFunc(out[1:], netip.Addr.Compare)
	return out
}

// Bind implements Binder.
func (s *Sockets) Bind(addrs []netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed {
		return net.ErrClosed
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() && a != LimitedBroadcast {
			want[a] = true
		}
	}
	for a, pc := range s.socks {
		if !want[a] {
			pc.Close() // its reader sees net.ErrClosed and ends quietly
			delete(s.socks, a)
		}
	}
	var errs []error
	for a := range want {
		if s.socks[a] != nil {
			continue
		}
		pc, err := Listen(s.ctx, netip.AddrPortFrom(a, s.port).String())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.socks[a] = pc
		s.read(pc)
	}
	return errors.Join(errs...)
}

// read starts pc's reader: each datagram into a free buffer, then to the
// engine; it ends when pc is closed (quietly) or fails (the error goes to
// the engine, unless pc was closed by Bind or Close).
func (s *Sockets) read(pc *PacketConn) {
	s.wg.Go(func() {
		for {
			var buf []byte
			select {
			case buf = <-s.free:
			case <-s.closed:
				return
			}
			d, err := pc.ReadDatagram(buf)
			if err != nil && errors.Is(err, net.ErrClosed) {
				s.free <- buf
				return
			}
			select {
			case s.in <- sockItem{buf: buf, d: d, err: err}:
			case <-s.closed:
				return
			}
			if err != nil {
				return
			}
		}
	})
}

// ReadDatagram implements Conn: the next datagram of any socket, copied
// into b.
func (s *Sockets) ReadDatagram(b []byte) (Datagram, error) {
	for {
		s.mu.Lock()
		dl, wake := s.deadline, s.wake
		s.mu.Unlock()
		var timer *time.Timer
		var timeout <-chan time.Time
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return Datagram{}, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		d, err, again := s.next(b, wake, timeout)
		if timer != nil {
			timer.Stop()
		}
		if !again {
			return d, err
		}
	}
}

// next waits for one datagram, the deadline's change (again), the
// deadline or Close.
func (s *Sockets) next(b []byte, wake <-chan struct{}, timeout <-chan time.Time) (d Datagram, err error, again bool) {
	select {
	case it := <-s.in:
		defer func() { s.free <- it.buf }()
		if it.err != nil {
			return Datagram{}, it.err, false
		}
		d = it.d
		d.Payload = b[:copy(b, d.Payload)]
		return d, nil, false
	case <-wake:
		return Datagram{}, nil, true
	case <-timeout:
		return Datagram{}, os.ErrDeadlineExceeded, false
	case <-s.closed:
		return Datagram{}, net.ErrClosed, false
	}
}

// WriteTo implements Conn: from the limited-broadcast socket.
func (s *Sockets) WriteTo(b []byte, addr netip.AddrPort) (int, error) {
	return s.limit.WriteTo(b, addr)
}

// SetReadDeadline implements Conn: a blocked or later ReadDatagram
// returns os.ErrDeadlineExceeded once t has passed; zero means none.
func (s *Sockets) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline = t
	close(s.wake)
	s.wake = make(chan struct{})
	return nil
}

// Close closes every socket and waits for their readers.
func (s *Sockets) Close() error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.isClosed = true
	close(s.closed)
	errs := []error{s.limit.Close()}
	for a, pc := range s.socks {
		if err := pc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", a, err))
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}
