package relay_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/internal/relay"
)

// The share lab: one LAN, a server host holding the stock-like socket and
// the relay's, a client host probing it. 10.213.50.0/24 is this test's
// alone.
const (
	shareServerCIDR = "10.213.50.10/24"
	shareClientCIDR = "10.213.50.20/24"
	shareGateway    = "10.213.50.1" // nobody: the client's default route, as a real host has one
	shareProbes     = 200
	sharePort       = 9999
	// shareFirstWait bounds the wait for a probe's first copy before the
	// next probe goes (lockstep keeps receive buffers from overflowing);
	// shareQuiet is how long no copy must arrive before the count is
	// final. Neither is a pass/fail threshold: only counts are checked.
	shareFirstWait = time.Second
	shareQuiet     = 300 * time.Millisecond
	// shareMaxLost stops the lockstep of a probe kind after this many
	// probes reached no socket (the rest are sent without waiting).
	shareMaxLost = 5
)

var (
	shareServerIP     = netip.MustParseAddr("10.213.50.10")
	shareSubnetBcast  = netip.MustParseAddr("10.213.50.255")
	shareLimitedBcast = netip.MustParseAddr("255.255.255.255")
	shareAny          = netip.IPv4Unspecified()
)

// stockOpts is how the stock-like socket binds.
type stockOpts int

const (
	// stockNone sets no option (bind matrix only).
	stockNone stockOpts = iota
	// stockReuseAddr sets SO_REUSEADDR only, as django-udp-discovery's
	// server binds per our design notes.
	stockReuseAddr
	// stockReusePort sets SO_REUSEADDR and SO_REUSEPORT, as `bridge
	// respond` (discover.ListenResponder) binds, and a stock server would
	// if it set SO_REUSEPORT.
	stockReusePort
)

func (o stockOpts) String() string {
	switch o {
	case stockNone:
		return "no option"
	case stockReuseAddr:
		return "SO_REUSEADDR"
	default:
		return "SO_REUSEADDR+SO_REUSEPORT"
	}
}

func (o stockOpts) control(_, _ string, rc syscall.RawConn) error {
	var opts []int
	switch o {
	case stockReuseAddr:
		opts = []int{unix.SO_REUSEADDR}
	case stockReusePort:
		opts = []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT}
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		for _, opt := range opts {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1); serr != nil {
				return
			}
		}
	})
	return errors.Join(err, serr)
}

// listenStock opens the stock-like socket on addr inside ns.
func listenStock(ctx context.Context, ns string, o stockOpts, addr netip.Addr) (*net.UDPConn, error) {
	var pc net.PacketConn
	err := netns.Do(ns, func() error {
		var err error
		lc := net.ListenConfig{Control: o.control}
		pc, err = lc.ListenPacket(ctx, "udp4", netip.AddrPortFrom(addr, sharePort).String())
		return err
	})
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// listenRelay opens the relay's own socket (relay.Listen: SO_REUSEADDR,
// SO_REUSEPORT, IP_PKTINFO) on addr inside ns.
func listenRelay(ctx context.Context, ns string, addr netip.Addr) (*relay.PacketConn, error) {
	var c *relay.PacketConn
	err := netns.Do(ns, func() error {
		var err error
		c, err = relay.Listen(ctx, netip.AddrPortFrom(addr, sharePort).String())
		return err
	})
	return c, err
}

// shareSock is one socket of the server host under measurement.
type shareSock struct {
	name  string
	bind  netip.Addr
	relay bool // IP_PKTINFO: arrivals carry the interface and destination
	read  func(b []byte) (n int, a arrival, err error)
	close func() error
	// incomingCPU reads SO_INCOMING_CPU (nil for the relay's, whose
	// descriptor relay.PacketConn does not expose).
	incomingCPU func() (int, error)
}

func stockSock(c *net.UDPConn, o stockOpts, bind netip.Addr) *shareSock {
	return &shareSock{
		name: fmt.Sprintf("stock(%s, %s)", bind, o),
		bind: bind,
		read: func(b []byte) (int, arrival, error) {
			n, src, err := c.ReadFromUDPAddrPort(b)
			return n, arrival{src: src}, err
		},
		close:       c.Close,
		incomingCPU: func() (int, error) { return incomingCPU(c) },
	}
}

// incomingCPU is SO_INCOMING_CPU of c: the CPU its last datagram was
// received on, as the kernel's socket lookup sees it (-1: none recorded).
func incomingCPU(c *net.UDPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cpu int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cpu, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_INCOMING_CPU)
	}); err != nil {
		return 0, err
	}
	return cpu, serr
}

func relaySock(c *relay.PacketConn, bind netip.Addr) *shareSock {
	return &shareSock{
		name:  fmt.Sprintf("relay(%s)", bind),
		bind:  bind,
		relay: true,
		read: func(b []byte) (int, arrival, error) {
			d, err := c.ReadDatagram(b)
			return len(d.Payload), arrival{src: d.Source, ifIndex: d.IfIndex, dst: d.Dst}, err
		},
		close: c.Close,
	}
}

// arrival is one copy of a probe read from one socket.
type arrival struct {
	sock    int
	id      int
	src     netip.AddrPort
	ifIndex int
	dst     netip.Addr
}

// probeKind is one series of shareProbes probes from the client.
type probeKind struct {
	name      string
	to        netip.Addr
	fixedPort bool // all from one socket; otherwise a fresh socket (port) each
}

func (k probeKind) broadcast() bool { return k.to != shareServerIP }

var shareKinds = []probeKind{
	{name: "unicast, fresh source port each", to: shareServerIP},
	{name: "unicast, one source port", to: shareServerIP, fixedPort: true},
	{name: "subnet broadcast 10.213.50.255", to: shareSubnetBcast},
	{name: "limited broadcast 255.255.255.255", to: shareLimitedBcast},
}

// The probes carry the protocol's message tagged with a number, so that
// each copy is told apart; which socket gets a datagram depends on its
// addresses and ports only, never on its payload.
const probePrefix = "DISCOVER_SERVER#"

func probePayload(id int) []byte { return []byte(probePrefix + strconv.Itoa(id)) }

func probeID(b []byte) (int, bool) {
	s, ok := strings.CutPrefix(string(b), probePrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(s)
	return id, err == nil
}

// shareCPUs lists the CPUs the test may run on.
func shareCPUs(t *testing.T) []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	var cpus []int
	for cpu := range 1024 {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus
}

// sendProbe sends payload to `to` from c, or, when c is nil, from a
// fresh socket of the client namespace ns (a fresh source port), on a
// thread pinned to cpu for the send; it returns the source port.
func sendProbe(ns string, c *net.UDPConn, cpu int, payload []byte, to netip.AddrPort) (uint16, error) {
	var port uint16
	err := netns.Do(ns, func() error {
		var orig unix.CPUSet
		if err := unix.SchedGetaffinity(0, &orig); err != nil {
			return fmt.Errorf("sched_getaffinity: %w", err)
		}
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", cpu, err)
		}
		defer func() { _ = unix.SchedSetaffinity(0, &orig) }()
		if c == nil {
			fresh, err := listenClient(context.Background(), "")
			if err != nil {
				return err
			}
			defer fresh.Close()
			c = fresh
		}
		port = c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		_, err := c.WriteToUDPAddrPort(payload, to)
		return err
	})
	return port, err
}

// listenClient opens a client socket (SO_BROADCAST, an ephemeral port) in
// the namespace ns; "" means the calling thread's (inside netns.Do).
func listenClient(ctx context.Context, ns string) (*net.UDPConn, error) {
	var pc net.PacketConn
	listen := func() error {
		var err error
		lc := net.ListenConfig{} // Go sets SO_BROADCAST on UDP sockets
		pc, err = lc.ListenPacket(ctx, "udp4", "0.0.0.0:0")
		return err
	}
	open := listen
	if ns != "" {
		open = func() error { return netns.Do(ns, listen) }
	}
	if err := open(); err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// shareVariant is one arrangement of the server host's sockets.
type shareVariant struct {
	stock      stockOpts
	relayAddrs []netip.Addr
	relayFirst bool
}

func (v shareVariant) name() string {
	relays := make([]string, len(v.relayAddrs))
	for i, a := range v.relayAddrs {
		relays[i] = a.String()
	}
	stock := "stock " + strings.ReplaceAll(v.stock.String(), "SO_", "")
	relay := "relay on " + strings.Join(relays, "+")
	if v.relayFirst {
		return relay + " then " + stock
	}
	return stock + " then " + relay
}

// shareResult is what one probe kind did against one variant.
type shareResult struct {
	variant, kind string
	socks         []*shareSock
	got           []int // distinct probes per socket
	dups          []int // extra copies per socket
	none, several int   // probes that reached no socket, more than one
	ifIndex       [][]int
	dst           [][]netip.Addr
	splitByPort   int // unicast: source ports whose probes reached more than one socket
	// byCPU is, for unicast, the probes each socket got by the CPU they
	// were sent and received on.
	byCPU map[int][]int
}

// short is the variant, the kind and each socket's count.
func (r shareResult) short() string {
	counts := make([]string, len(r.socks))
	for i, s := range r.socks {
		counts[i] = fmt.Sprintf("%s %d", s.name, r.got[i])
	}
	return fmt.Sprintf("%s | %s: %s", r.variant, r.kind, strings.Join(counts, ", "))
}

func (r shareResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s | %s (%d probes):", r.variant, r.kind, shareProbes)
	for i, s := range r.socks {
		fmt.Fprintf(&b, " %s got %d", s.name, r.got[i])
		if r.dups[i] > 0 {
			fmt.Fprintf(&b, " (+%d duplicates)", r.dups[i])
		}
		if s.relay && r.got[i] > 0 {
			fmt.Fprintf(&b, " [IP_PKTINFO ifindex %v dst %v]", r.ifIndex[i], r.dst[i])
		}
		b.WriteString(";")
	}
	fmt.Fprintf(&b, " reached none %d, several sockets %d", r.none, r.several)
	if r.splitByPort > 0 {
		fmt.Fprintf(&b, ", source ports split across sockets %d", r.splitByPort)
	}
	for _, cpu := range slices.Sorted(maps.Keys(r.byCPU)) {
		fmt.Fprintf(&b, "; sent on CPU %d: %v", cpu, r.byCPU[cpu])
	}
	return b.String()
}

// TestRelaySharesPortWithStockServer measures which socket gets each probe
// when the relay and a stock server bind UDP 9999 on one host (issue 32):
// a client on the LAN sends 200 probes of each kind (unicast to the
// server host from a fresh source port each, unicast from one port,
// broadcast to the subnet's broadcast address, broadcast to
// 255.255.255.255), one at a time, alternating the CPU they are sent (and
// so received) on, and the test counts the copies each socket read. Every
// count is logged as a MEASURED line; only what the kernel's lookup
// (net/ipv4/udp.c) makes deterministic is asserted.
//
// What it showed (kernel 6.18, veth pairs on a Linux bridge, 2 CPUs),
// the same on every run:
//
//   - A broadcast reaches every socket bound to 0.0.0.0:9999 and every
//     socket bound to its own destination: a socket on 10.213.50.255 gets
//     the subnet-directed ones and not 255.255.255.255, a socket on
//     255.255.255.255 the reverse.
//   - A unicast probe reaches exactly one socket. Stock server with
//     SO_REUSEADDR only, relay on 0.0.0.0: the one bound last gets every
//     unicast probe, whatever the source port or CPU. Started after the
//     stock server, the relay takes them all and the server sees none.
//   - Stock server with SO_REUSEADDR and SO_REUSEPORT (one group with the
//     relay): the 4-tuple's hash picks; one source port always lands on
//     the same socket (which one changes from run to run: the hash is
//     keyed per namespace), fresh ports split about half and half (from
//     84/116 to 116/84 over 12 runs), whichever was bound first.
//   - The CPU plays no part: the score's bonus needs sk_incoming_cpu,
//     which an unconnected socket never records (SO_INCOMING_CPU stays -1).
//   - The relay on 10.213.50.255 and 255.255.255.255 instead of 0.0.0.0
//     gets both kinds of broadcast, with IP_PKTINFO giving the interface
//     and the destination, and no unicast probe at all: the stock server
//     gets every one, in either bind order. Its replies leave from the
//     interface's address and port 9999 (a broadcast bind leaves the
//     source to the route).
//   - Binding works in every order when the stock socket sets
//     SO_REUSEADDR; one that sets nothing conflicts with the relay's on
//     any address (EADDRINUSE), either way round.
func TestRelaySharesPortWithStockServer(t *testing.T) {
	lab := netns.New(t)
	br := lab.Bridge("lan")
	server := lab.Host("server", br, shareServerCIDR)
	client := lab.Host("client", br, shareClientCIDR)
	// Without a route, 255.255.255.255 is unreachable from an unbound
	// socket (ENETUNREACH); a real client host has a default route.
	client.SetDefaultRoute(shareGateway)

	var ifIndex int
	if err := netns.Do(server.NS, func() error {
		ifi, err := net.InterfaceByName(server.Dev(br))
		if err == nil {
			ifIndex = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("server %s on %s (ifindex %d), client %s; kernel %s", shareServerIP, server.Dev(br), ifIndex, client.IP(), kernelRelease())

	t.Run("bind", func(t *testing.T) { shareBindMatrix(t, server.NS) })
	t.Run("receive CPU", func(t *testing.T) { shareReceiveCPU(t, server.NS, client.NS) })
	t.Run("reply from a broadcast-bound socket", func(t *testing.T) { shareReplyFromBroadcast(t, server.NS, client.NS) })
	for _, relayFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("the relay's sockets (ListenBroadcast), relay first %v", relayFirst), func(t *testing.T) {
			shareRelaySockets(t, server.NS, client.NS, relayFirst)
		})
	}

	var variants []shareVariant
	for _, relayAddrs := range [][]netip.Addr{{shareAny}, {shareSubnetBcast, shareLimitedBcast}} {
		for _, stock := range []stockOpts{stockReuseAddr, stockReusePort} {
			for _, relayFirst := range []bool{false, true} {
				variants = append(variants, shareVariant{stock: stock, relayAddrs: relayAddrs, relayFirst: relayFirst})
			}
		}
	}
	var (
		mu      sync.Mutex
		results []shareResult
	)
	for _, v := range variants {
		t.Run(v.name(), func(t *testing.T) {
			rs := runShareVariant(t, server.NS, client.NS, ifIndex, v)
			mu.Lock()
			results = append(results, rs...)
			mu.Unlock()
		})
	}
	t.Logf("MEASURED: summary, probes read per socket (of %d of each kind):", shareProbes)
	for _, r := range results {
		t.Logf("MEASURED:   %s", r.short())
	}
}

// shareBindMatrix binds the stock-like socket and a relay socket in both
// orders, for each way a stock server may bind and each relay address,
// and reports whether the second bind succeeds.
func shareBindMatrix(t *testing.T, ns string) {
	ctx := t.Context()
	for _, o := range []stockOpts{stockNone, stockReuseAddr, stockReusePort} {
		for _, ra := range []netip.Addr{shareAny, shareSubnetBcast, shareLimitedBcast} {
			for _, relayFirst := range []bool{false, true} {
				var closers []func() error
				openStock := func() error {
					c, err := listenStock(ctx, ns, o, shareAny)
					if err == nil {
						closers = append(closers, c.Close)
					}
					return err
				}
				openRelay := func() error {
					c, err := listenRelay(ctx, ns, ra)
					if err == nil {
						closers = append(closers, c.Close)
					}
					return err
				}
				first, second := openStock, openRelay
				order := fmt.Sprintf("stock(0.0.0.0, %s) then relay(%s)", o, ra)
				if relayFirst {
					first, second = openRelay, openStock
					order = fmt.Sprintf("relay(%s) then stock(0.0.0.0, %s)", ra, o)
				}
				if err := first(); err != nil {
					t.Fatalf("%s: first bind: %v", order, err)
				}
				err := second()
				outcome := "both bound"
				if err != nil {
					outcome = "second bind fails: " + err.Error()
				}
				t.Logf("MEASURED: bind %s: %s", order, outcome)
				// Two sockets that both set SO_REUSEADDR may share a
				// port whatever their addresses (udp_lib_lport_inuse).
				if o != stockNone && err != nil {
					t.Errorf("%s: %v, want both bound", order, err)
				}
				for _, c := range closers {
					_ = c()
				}
			}
		}
	}
}

// shareReceiveCPU checks the premise of the per-CPU counts: a datagram
// sent on CPU k is received on CPU k. A connected socket records the CPU
// it received on (SO_INCOMING_CPU); it is bound to port 9998, not the
// discovery port.
func shareReceiveCPU(t *testing.T, serverNS, clientNS string) {
	ctx := t.Context()
	c, err := listenClient(ctx, clientNS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := netip.AddrPortFrom(shareServerIP, sharePort-1)
	var srv *net.UDPConn
	if err := netns.Do(serverNS, func() error {
		var err error
		srv, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(local),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("10.213.50.20"), c.LocalAddr().(*net.UDPAddr).AddrPort().Port())))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	buf := make([]byte, 64)
	for _, cpu := range shareCPUs(t) {
		for range 3 {
			if _, err := sendProbe(clientNS, c, cpu, []byte("cpu"), local); err != nil {
				t.Fatal(err)
			}
			_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := srv.Read(buf); err != nil {
				t.Fatalf("datagram sent on CPU %d not received: %v", cpu, err)
			}
			got, err := incomingCPU(srv)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("MEASURED: sent on CPU %d, received on CPU %d", cpu, got)
		}
	}
}

// shareReplyFromBroadcast sends a reply from relay sockets bound to the
// broadcast addresses, as the relay answers from the socket a probe came
// in on, and reports the source the client sees. inet_bind keeps a
// broadcast bind out of the source address (inet_saddr 0), so the route
// picks it.
func shareReplyFromBroadcast(t *testing.T, serverNS, clientNS string) {
	ctx := t.Context()
	c, err := listenClient(ctx, clientNS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := netip.AddrPortFrom(netip.MustParseAddr("10.213.50.20"), c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	buf := make([]byte, 64)
	for _, a := range []netip.Addr{shareSubnetBcast, shareLimitedBcast} {
		r, err := listenRelay(ctx, serverNS, a)
		if err != nil {
			t.Fatal(err)
		}
		reply := []byte("SERVER_IP:10.213.50.99")
		_, werr := r.WriteTo(reply, to)
		r.Close()
		if werr != nil {
			t.Logf("MEASURED: reply from relay(%s) to %s: send fails: %v", a, to, werr)
			t.Errorf("relay(%s): send: %v", a, werr)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Logf("MEASURED: reply from relay(%s) to %s: sent, not received: %v", a, to, err)
			t.Errorf("relay(%s): reply not received: %v", a, err)
			continue
		}
		t.Logf("MEASURED: reply from relay(%s) to %s: received from %s (%q)", a, to, from, buf[:n])
		if want := netip.AddrPortFrom(shareServerIP, sharePort); from != want || string(buf[:n]) != string(reply) {
			t.Errorf("relay(%s): reply %q from %s, want %q from %s", a, buf[:n], from, reply, want)
		}
	}
}

func runShareVariant(t *testing.T, serverNS, clientNS string, ifIndex int, v shareVariant) []shareResult {
	ctx := t.Context()
	var (
		socks []*shareSock
		done  = make(chan struct{})
		wg    sync.WaitGroup // the readers
	)
	t.Cleanup(func() {
		close(done)
		for _, s := range socks {
			_ = s.close()
		}
		wg.Wait()
	})
	openStock := func() {
		c, err := listenStock(ctx, serverNS, v.stock, shareAny)
		if err != nil {
			t.Fatalf("stock socket: %v", err)
		}
		socks = append(socks, stockSock(c, v.stock, shareAny))
	}
	openRelays := func() {
		for _, a := range v.relayAddrs {
			c, err := listenRelay(ctx, serverNS, a)
			if err != nil {
				t.Fatalf("relay socket on %s: %v", a, err)
			}
			socks = append(socks, relaySock(c, a))
		}
	}
	if v.relayFirst {
		openRelays()
		openStock()
	} else {
		openStock()
		openRelays()
	}

	events := make(chan arrival, 4*len(socks)*len(shareKinds)*shareProbes)
	for i, s := range socks {
		wg.Go(func() {
			buf := make([]byte, 2048)
			for {
				n, a, err := s.read(buf)
				if err != nil {
					return // closed
				}
				a.sock, a.id = i, -1
				if id, ok := probeID(buf[:n]); ok {
					a.id = id
				}
				select {
				case events <- a:
				case <-done:
					return
				}
			}
		})
	}

	fixed, err := listenClient(ctx, clientNS)
	if err != nil {
		t.Fatal(err)
	}
	defer fixed.Close()
	cpus := shareCPUs(t)

	// Send every kind, one probe at a time, each after the previous one's
	// first copy arrived (or shareFirstWait passed). Probe i is sent from
	// a thread pinned to cpus[i%len(cpus)]: on veth the receive path runs
	// on the sending CPU (no RPS here), so the receiving CPU is known.
	var all []arrival
	seen := map[int]bool{}
	srcPort := map[int]uint16{} // probe id -> client source port
	cpuOf := map[int]int{}      // probe id -> CPU it was sent (and received) on
	take := func(a arrival) {
		all = append(all, a)
		seen[a.id] = true
	}
	for k, kind := range shareKinds {
		lost := 0
		for i := range shareProbes {
			id := k*shareProbes + i
			to := netip.AddrPortFrom(kind.to, sharePort)
			cpuOf[id] = cpus[i%len(cpus)]
			var c *net.UDPConn
			if kind.fixedPort {
				c = fixed
			}
			port, err := sendProbe(clientNS, c, cpuOf[id], probePayload(id), to)
			if err != nil {
				t.Fatalf("%s: probe %d to %s: %v", kind.name, i, to, err)
			}
			srcPort[id] = port
			if lost >= shareMaxLost {
				continue
			}
			timer := time.NewTimer(shareFirstWait)
		wait:
			for !seen[id] {
				select {
				case a := <-events:
					take(a)
				case <-timer.C:
					lost++
					break wait
				}
			}
			timer.Stop()
		}
	}
	// The counts are final once no copy came for shareQuiet.
	quiet := time.NewTimer(shareQuiet)
	for drained := false; !drained; {
		select {
		case a := <-events:
			take(a)
			quiet.Reset(shareQuiet)
		case <-quiet.C:
			drained = true
		}
	}

	var results []shareResult
	for k, kind := range shareKinds {
		r := shareResult{
			variant: v.name(), kind: kind.name, socks: socks,
			got: make([]int, len(socks)), dups: make([]int, len(socks)),
			ifIndex: make([][]int, len(socks)), dst: make([][]netip.Addr, len(socks)),
		}
		if !kind.broadcast() {
			r.byCPU = map[int][]int{}
		}
		lo, hi := k*shareProbes, (k+1)*shareProbes
		copies := map[[2]int]int{}       // (probe, socket) -> copies
		bySock := map[int]map[int]bool{} // probe -> sockets
		portSocks := map[uint16]map[int]bool{}
		for _, a := range all {
			if a.id < lo || a.id >= hi {
				continue
			}
			copies[[2]int{a.id, a.sock}]++
			if bySock[a.id] == nil {
				bySock[a.id] = map[int]bool{}
			}
			bySock[a.id][a.sock] = true
			p := srcPort[a.id]
			if portSocks[p] == nil {
				portSocks[p] = map[int]bool{}
			}
			portSocks[p][a.sock] = true
			if a.src.Port() != p {
				t.Errorf("%s: probe %d read from %s, sent from port %d", kind.name, a.id, a.src, p)
			}
			if socks[a.sock].relay {
				if !slices.Contains(r.ifIndex[a.sock], a.ifIndex) {
					r.ifIndex[a.sock] = append(r.ifIndex[a.sock], a.ifIndex)
				}
				if !slices.Contains(r.dst[a.sock], a.dst) {
					r.dst[a.sock] = append(r.dst[a.sock], a.dst)
				}
			}
		}
		for key, n := range copies {
			r.got[key[1]]++
			r.dups[key[1]] += n - 1
			if r.byCPU != nil {
				cpu := cpuOf[key[0]]
				if r.byCPU[cpu] == nil {
					r.byCPU[cpu] = make([]int, len(socks))
				}
				r.byCPU[cpu][key[1]]++
			}
		}
		for id := lo; id < hi; id++ {
			switch n := len(bySock[id]); {
			case n == 0:
				r.none++
			case n > 1:
				r.several++
			}
		}
		for _, ss := range portSocks {
			if len(ss) > 1 && !kind.broadcast() {
				r.splitByPort++
			}
		}
		t.Logf("MEASURED: %s", r)
		checkShare(t, v, kind, r, ifIndex)
		results = append(results, r)
	}
	// The CPU bonus of the lookup's score needs sk_incoming_cpu, which
	// the kernel records only for connected sockets (or by setsockopt).
	for _, s := range socks {
		if s.incomingCPU == nil {
			continue
		}
		cpu, err := s.incomingCPU()
		if err != nil {
			t.Errorf("%s: SO_INCOMING_CPU: %v", s.name, err)
			continue
		}
		t.Logf("MEASURED: %s: SO_INCOMING_CPU after the probes: %d", s.name, cpu)
		if cpu != -1 {
			t.Errorf("%s: SO_INCOMING_CPU %d, want -1 (an unconnected socket records none)", s.name, cpu)
		}
	}
	stray := 0
	for _, a := range all {
		if a.id < 0 || a.id >= len(shareKinds)*shareProbes {
			stray++
		}
	}
	if stray > 0 {
		t.Errorf("%d datagrams that are not this test's probes", stray)
	}
	return results
}

// checkShare asserts what the kernel's UDP lookup makes deterministic
// (net/ipv4/udp.c): a broadcast goes to every socket whose bound address
// is 0.0.0.0 or the broadcast's destination (__udp_is_mcast_sock); a
// unicast goes to exactly one socket bound to 0.0.0.0 or the destination
// (udp4_lib_lookup2), and, when that socket is in an SO_REUSEPORT group,
// to the group's member the 4-tuple hashes to, so a source port always
// lands on the same one.
func checkShare(t *testing.T, v shareVariant, kind probeKind, r shareResult, ifIndex int) {
	t.Helper()
	for i, s := range r.socks {
		if r.dups[i] > 0 {
			t.Errorf("%s: %s read %d duplicate copies", kind.name, s.name, r.dups[i])
		}
		if s.relay && r.got[i] > 0 {
			want := kind.to
			if !kind.broadcast() {
				want = shareServerIP
			}
			if !slices.Equal(r.ifIndex[i], []int{ifIndex}) || !slices.Equal(r.dst[i], []netip.Addr{want}) {
				t.Errorf("%s: %s: IP_PKTINFO gave interfaces %v and destinations %v, want [%d] and [%s]",
					kind.name, s.name, r.ifIndex[i], r.dst[i], ifIndex, want)
			}
		}
	}
	if kind.broadcast() {
		for i, s := range r.socks {
			want := 0
			if s.bind == shareAny || s.bind == kind.to {
				want = shareProbes
			}
			if r.got[i] != want {
				t.Errorf("%s: %s got %d probes, want %d", kind.name, s.name, r.got[i], want)
			}
		}
		return
	}
	// Unicast: each probe reaches exactly one socket, never one bound to a
	// broadcast address.
	if r.none != 0 || r.several != 0 {
		t.Errorf("%s: %d probes reached no socket and %d several, want each exactly one", kind.name, r.none, r.several)
	}
	for i, s := range r.socks {
		if s.bind != shareAny && r.got[i] != 0 {
			t.Errorf("%s: %s, bound to a broadcast address, got %d unicast probes, want 0", kind.name, s.name, r.got[i])
		}
	}
	if r.splitByPort != 0 {
		t.Errorf("%s: %d source ports had probes land on different sockets", kind.name, r.splitByPort)
	}
	if v.relayAddrs[0] != shareAny {
		return
	}
	switch v.stock {
	case stockReuseAddr:
		// Two sockets on 0.0.0.0:9999, equal scores (neither connected
		// nor bound to a device; sk_incoming_cpu is only set on connected
		// sockets, so the CPU bonus never applies). The last bound is
		// first in the port's chain: if it is the relay, its SO_REUSEPORT
		// group (of one) answers the lookup at once; if it is the stock
		// socket, it sets the best score and the relay's equal score
		// does not beat it. Either way the last bound gets every probe.
		last := len(r.socks) - 1
		if r.got[last] != shareProbes {
			t.Errorf("%s: split %v (sockets in bind order), want all %d on the last bound, %s",
				kind.name, r.got, shareProbes, r.socks[last].name)
		}
	case stockReusePort:
		// One SO_REUSEPORT group: the 4-tuple's hash picks the member,
		// so one source port gets one socket.
		if kind.fixedPort && !slices.Contains(r.got, shareProbes) {
			t.Errorf("%s: split %v across one SO_REUSEPORT group, want all on one socket", kind.name, r.got)
		}
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// shareRelaySockets runs what `bridge run` opens, relay.ListenBroadcast
// bound to the LAN's directed broadcast, beside a stock socket
// (SO_REUSEADDR only) on the wildcard address, bound before or after it:
// every unicast probe reaches the stock socket and none the relay's; each
// broadcast probe, to the LAN's address or 255.255.255.255, reaches both.
func shareRelaySockets(t *testing.T, serverNS, clientNS string, relayFirst bool) {
	const n = 50
	ctx := t.Context()
	var (
		stock *net.UDPConn
		socks *relay.Sockets
	)
	openStock := func() {
		var err error
		if stock, err = listenStock(ctx, serverNS, stockReuseAddr, shareAny); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stock.Close() })
	}
	openRelay := func() {
		// Bind opens sockets in the calling thread's namespace: call it
		// inside the server's, as `bridge run` runs in its own.
		if err := netns.Do(serverNS, func() error {
			var err error
			if socks, err = relay.ListenBroadcast(ctx, sharePort); err != nil {
				return err
			}
			return socks.Bind([]netip.Addr{shareSubnetBcast})
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { socks.Close() })
	}
	if relayFirst {
		openRelay()
		openStock()
	} else {
		openStock()
		openRelay()
	}
	client, err := listenClient(ctx, clientNS)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	kinds := []netip.Addr{shareServerIP, shareSubnetBcast, shareLimitedBcast}
	for i := range n {
		for k, to := range kinds {
			if _, err := sendProbe(clientNS, client, 0, probePayload(i*len(kinds)+k), netip.AddrPortFrom(to, sharePort)); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func(read func([]byte) (int, error)) map[netip.Addr]int {
		got := map[netip.Addr]int{}
		buf := make([]byte, 2048)
		for {
			m, err := read(buf)
			if err != nil {
				return got
			}
			if id, ok := probeID(buf[:m]); ok {
				got[kinds[id%len(kinds)]]++
			}
		}
	}
	_ = stock.SetReadDeadline(time.Now().Add(shareQuiet))
	atStock := count(func(b []byte) (int, error) {
		m, _, err := stock.ReadFromUDPAddrPort(b)
		_ = stock.SetReadDeadline(time.Now().Add(shareQuiet))
		return m, err
	})
	_ = socks.SetReadDeadline(time.Now().Add(shareQuiet))
	atRelay := count(func(b []byte) (int, error) {
		d, err := socks.ReadDatagram(b)
		_ = socks.SetReadDeadline(time.Now().Add(shareQuiet))
		return len(d.Payload), err
	})
	t.Logf("MEASURED: relay.ListenBroadcast (bound to %v) beside a stock socket (SO_REUSEADDR), relay first %v, %d probes of each kind: stock socket unicast %d, %s %d, %s %d; relay's sockets unicast %d, %s %d, %s %d",
		socks.Bound(), relayFirst, n, atStock[shareServerIP], shareSubnetBcast, atStock[shareSubnetBcast], shareLimitedBcast, atStock[shareLimitedBcast],
		atRelay[shareServerIP], shareSubnetBcast, atRelay[shareSubnetBcast], shareLimitedBcast, atRelay[shareLimitedBcast])
	want := map[netip.Addr]int{shareServerIP: n, shareSubnetBcast: n, shareLimitedBcast: n}
	if !maps.Equal(atStock, want) {
		t.Errorf("the stock socket read %v, want every probe: %v", atStock, want)
	}
	if want[shareServerIP] = 0; atRelay[shareServerIP] != 0 || atRelay[shareSubnetBcast] != n || atRelay[shareLimitedBcast] != n {
		t.Errorf("the relay's sockets read %v, want no unicast probe and every broadcast one", atRelay)
	}
}
