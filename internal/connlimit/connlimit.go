// Package connlimit bounds the connections a TCP listener hands to a
// server, so that clients on the network cannot take the capacity the
// host's own probes need.
//
// A Listener keeps two pools. Connections from the host itself (see
// IsHost) have a reserved capacity of their own, which no other client's
// connections count against. Every other connection counts against a cap
// per client address and a cap on all of them together. Accept never
// waits for a free slot: a connection over its cap is closed at once and
// counted, so the kernel's accept queue keeps draining and a loopback
// probe queued behind a flood is still accepted.
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Limits are a Listener's caps. Each must be at least 1.
type Limits struct {
	Host      int // connections from the host itself (IsHost)
	PerClient int // connections from one other address
	Total     int // connections from all other addresses together
}

// Validate returns an error naming the first cap below 1.
func (l Limits) Validate() error {
	switch {
	case l.Host < 1:
		return errors.New("connlimit: Host cap must be at least 1")
	case l.PerClient < 1:
		return errors.New("connlimit: PerClient cap must be at least 1")
	case l.Total < 1:
		return errors.New("connlimit: Total cap must be at least 1")
	}
	return nil
}

// Reason says which cap refused a connection; it is the value of the
// refusal metric's reason label.
type Reason string

// Reasons a connection is refused.
const (
	ReasonHost      Reason = "host"       // the host's own pool is full
	ReasonPerClient Reason = "per_client" // the client's address holds PerClient connections
	ReasonTotal     Reason = "total"      // other clients hold Total connections
)

// reasons are every Reason, in the order they are checked and logged.
var reasons = [...]Reason{ReasonHost, ReasonPerClient, ReasonTotal}

// DefaultQuiet is how long a Listener goes without a refusal before the
// next refusal starts a new episode (and a new warning).
const DefaultQuiet = time.Minute

// Options configure Wrap.
type Options struct {
	Limits Limits
	// Name names the listener in metrics (the listener label) and logs,
	// e.g. the configuration key of its address.
	Name string
	// Metrics records refusals and open connections; nil records nothing.
	Metrics *Metrics
	Log     zerolog.Logger
	// IsHost reports whether a connection is the host's own; nil means
	// IsHost. Tests on loopback pass their own.
	IsHost func(local, remote netip.Addr) bool
	// Now is the clock of refusal episodes; nil means time.Now.
	Now func() time.Time
	// Quiet ends an episode of refusals; 0 means DefaultQuiet.
	Quiet time.Duration
}

// IsHost reports whether a TCP connection whose local address is local
// and whose peer is remote comes from the host itself: remote is a
// loopback address, or remote is the connection's own local address (a
// process of the host dialling one of the host's addresses; a kubelet
// probing a hostNetwork pod at its pod IP, which is the node's IP, dials
// from that same IP).
//
// A remote machine cannot pass for the host. A SYN that arrives from the
// network with a loopback source, or with one of the host's own addresses
// as source, is dropped by the kernel as martian (Linux defaults
// route_localnet=0 and accept_local=0); and even where it is accepted, the
// SYN-ACK goes to the forged source, which is this host, so it is
// delivered locally and the sender never learns the sequence number it
// would need to complete the handshake. An accepted connection's peer
// address is therefore one the peer can receive at. Only a process on the
// host, or an address translation done by the host itself (a NAT rule
// that rewrites sources to the host's address), yields such a peer.
func IsHost(local, remote netip.Addr) bool {
	remote = remote.Unmap().WithZone("")
	return remote.IsLoopback() || (remote.IsValid() && !remote.IsUnspecified() && remote == local.Unmap().WithZone(""))
}

// Listener is a net.Listener that admits connections within its Limits.
// Closing an admitted connection frees its slot.
type Listener struct {
	net.Listener
	name   string
	m      *Metrics
	log    zerolog.Logger
	isHost func(local, remote netip.Addr) bool
	now    func() time.Time
	quiet  time.Duration

	mu sync.Mutex
	p  pool
	ep episode
}

// Wrap returns ln bounded by o.Limits. It panics if the limits are
// invalid (a programming error: they are constants of the caller).
func Wrap(ln net.Listener, o Options) *Listener {
	if err := o.Limits.Validate(); err != nil {
		panic(err)
	}
	l := &Listener{
		Listener: ln,
		name:     o.Name,
		m:        o.Metrics,
		log:      o.Log,
		isHost:   o.IsHost,
		now:      o.Now,
		quiet:    o.Quiet,
		p:        newPool(o.Limits),
	}
	if l.isHost == nil {
		l.isHost = IsHost
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.quiet <= 0 {
		l.quiet = DefaultQuiet
	}
	l.m.init(l.name)
	return l
}

// Accept waits for the next connection within the limits and returns it.
// Connections over a cap are closed and counted on the way; Accept never
// waits for a slot to free.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ac, ok := l.admit(c); ok {
			return ac, nil
		}
		_ = c.Close()
	}
}

// Close closes the listener and logs the summary of an episode of
// refusals still open. Admitted connections stay open.
func (l *Listener) Close() error {
	l.mu.Lock()
	sum := l.ep.finish()
	l.mu.Unlock()
	l.logSummary(sum)
	return l.Listener.Close()
}

// Open returns the connections the listener holds now: the host's own and
// everyone else's.
func (l *Listener) Open() (host, others int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p.host, l.p.total
}

// admit takes a slot for c, or counts and logs its refusal.
func (l *Listener) admit(c net.Conn) (net.Conn, bool) {
	local, remote := addrOf(c.LocalAddr()), addrOf(c.RemoteAddr())
	host := l.isHost(local, remote)
	key := remote.WithZone("")
	now := l.now()

	l.mu.Lock()
	reason := l.p.take(host, key)
	var sum summary
	var start *refusal
	if reason == "" {
		sum = l.ep.settle(now, l.quiet)
	} else {
		sum, start = l.ep.refuse(now, l.quiet, reason, remote, l.p)
	}
	l.mu.Unlock()

	l.logSummary(sum)
	if reason != "" {
		l.m.refuse(l.name, reason)
		if start != nil {
			l.logStart(*start)
		}
		return nil, false
	}
	l.m.opened(l.name, host)
	ac := &conn{Conn: c}
	ac.release = func() {
		l.mu.Lock()
		l.p.put(host, key)
		l.mu.Unlock()
		l.m.closed(l.name, host)
	}
	return ac, true
}

// addrOf returns a's IP address, unmapped from IPv4-in-IPv6; the zero
// Addr when a is not an IP address.
func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// conn is an admitted connection; Close frees its slot once.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close frees the slot, then closes the connection: by the time the peer
// sees the close, the slot is free.
func (c *conn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when it can be (TCP), so that an
// HTTP server's graceful close works through the wrapper.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// pool counts admitted connections against Limits.
type pool struct {
	lim   Limits
	host  int
	total int
	per   map[netip.Addr]int
}

func newPool(lim Limits) pool { return pool{lim: lim, per: map[netip.Addr]int{}} }

// take reserves a slot for a connection (the host's own, or from ip) and
// returns "", or returns the cap that refuses it.
func (p *pool) take(host bool, ip netip.Addr) Reason {
	if host {
		if p.host >= p.lim.Host {
			return ReasonHost
		}
		p.host++
		return ""
	}
	if p.per[ip] >= p.lim.PerClient {
		return ReasonPerClient
	}
	if p.total >= p.lim.Total {
		return ReasonTotal
	}
	p.per[ip]++
	p.total++
	return ""
}

// put frees the slot take reserved.
func (p *pool) put(host bool, ip netip.Addr) {
	if host {
		p.host--
		return
	}
	p.total--
	if p.per[ip]--; p.per[ip] <= 0 {
		delete(p.per, ip)
	}
}
