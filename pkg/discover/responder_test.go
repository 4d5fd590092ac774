package discover

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

func TestCheckSource(t *testing.T) {
	nets := []netip.Prefix{
		netip.MustParsePrefix("192.168.1.0/24"),
		netip.MustParsePrefix("10.20.0.7/16"), // not masked: an interface's own address
		netip.MustParsePrefix("172.16.5.4/30"),
		netip.MustParsePrefix("172.16.9.0/31"),   // no network or broadcast address
		netip.MustParsePrefix("172.16.9.9/32"),   // nor here
		netip.MustParsePrefix("127.0.0.0/8"),     // loopback's own network
		netip.MustParsePrefix("2001:db8::/64"),   // IPv6: ignored
		{},                                       // invalid: ignored
		netip.MustParsePrefix("100.64.0.0/10"),   // a short prefix
		netip.MustParsePrefix("198.51.100.0/24"), // twice
		netip.MustParsePrefix("198.51.100.0/24"),
	}
	tests := []struct {
		src     string
		refused bool
		want    ProbeRefusal
	}{
		// refused, by kind
		{"255.255.255.255:40000", true, RefusedLimitedBroadcast},
		{"224.0.0.1:40000", true, RefusedMulticast},
		{"239.255.255.250:1900", true, RefusedMulticast},
		{"0.0.0.0:40000", true, RefusedThisNetwork},
		{"0.1.2.3:40000", true, RefusedThisNetwork},
		{"240.0.0.1:40000", true, RefusedReserved},
		{"254.255.255.255:40000", true, RefusedReserved},
		{"192.168.1.0:40000", true, RefusedNetworkAddress},
		{"192.168.1.255:40000", true, RefusedNetworkBroadcast},
		{"10.20.0.0:40000", true, RefusedNetworkAddress},
		{"10.20.255.255:40000", true, RefusedNetworkBroadcast},
		{"172.16.5.4:40000", true, RefusedNetworkAddress},
		{"172.16.5.7:40000", true, RefusedNetworkBroadcast},
		{"127.0.0.0:40000", true, RefusedNetworkAddress},
		{"127.255.255.255:40000", true, RefusedNetworkBroadcast},
		{"100.64.0.0:40000", true, RefusedNetworkAddress},
		{"100.127.255.255:40000", true, RefusedNetworkBroadcast},
		{"192.168.1.10:0", true, RefusedPortZero},
		{"[2001:db8::1]:40000", true, RefusedNotIPv4},
		// answered
		{"192.168.1.10:40000", false, 0},
		{"[::ffff:192.168.1.10]:40000", false, 0}, // 4in6 is IPv4
		{"10.20.0.7:9999", false, 0},
		{"172.16.5.5:40000", false, 0},
		{"172.16.5.6:40000", false, 0},
		{"172.16.9.0:40000", false, 0}, // /31: both addresses are hosts
		{"172.16.9.1:40000", false, 0},
		{"172.16.9.9:40000", false, 0},
		{"127.0.0.1:40000", false, 0}, // loopback: this host
		{"127.0.0.53:40000", false, 0},
		{"223.255.255.254:40000", false, 0}, // just below multicast
		{"1.0.0.0:40000", false, 0},         // a network address, but not one of the host's
		{"10.255.255.255:40000", false, 0},  // a broadcast address, but not one of the host's
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			got, refused := checkSource(netip.MustParseAddrPort(tc.src), nets)
			if refused != tc.refused || (refused && got != tc.want) {
				t.Errorf("checkSource(%s) = %v, %v; want %v, %v", tc.src, got, refused, tc.want, tc.refused)
			}
		})
	}
	t.Run("no networks", func(t *testing.T) {
		if why, refused := checkSource(netip.MustParseAddrPort("192.168.1.255:40000"), nil); refused {
			t.Errorf("192.168.1.255 with no host networks refused: %v", why)
		}
	})
	t.Run("zero AddrPort", func(t *testing.T) {
		if why, refused := checkSource(netip.AddrPort{}, nets); !refused || why != RefusedNotIPv4 {
			t.Errorf("zero AddrPort: %v, %v; want %v", why, refused, RefusedNotIPv4)
		}
	})
}

func TestProbeRefusalNames(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range ProbeRefusals() {
		s := w.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "refusal(") {
			t.Errorf("ProbeRefusal %d has name %q (duplicate or unnamed)", int(w), s)
		}
		seen[s] = true
	}
	if len(seen) != int(numProbeRefusals) {
		t.Errorf("%d names for %d refusals", len(seen), numProbeRefusals)
	}
}

// fakePacket is a datagram read from or written to a fakeConn.
type fakePacket struct {
	addr netip.AddrPort
	data []byte
}

// fakeConn is a net.PacketConn fed by the test in batches. After the last
// datagram of a batch is read, the next ReadFrom signals idle: by then Serve
// has handled the whole batch.
type fakeConn struct {
	in      chan []fakePacket
	idle    chan struct{}
	pending []fakePacket
	stop    chan struct{}
	once    sync.Once

	mu  sync.Mutex
	out []fakePacket
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []fakePacket, 1), idle: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for len(c.pending) == 0 {
		select {
		case c.idle <- struct{}{}:
		default:
		}
		select {
		case c.pending = <-c.in:
		case <-c.stop:
			return 0, nil, os.ErrDeadlineExceeded
		}
	}
	p := c.pending[0]
	c.pending = c.pending[1:]
	return copy(b, p.data), net.UDPAddrFromAddrPort(p.addr), nil
}

func (c *fakeConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, fakePacket{addr.(*net.UDPAddr).AddrPort(), append([]byte(nil), b...)})
	return len(b), nil
}

func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9999} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error {
	c.once.Do(func() { close(c.stop) })
	return nil
}

// sent returns and forgets the datagrams written so far.
func (c *fakeConn) sent() []fakePacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

// serveFake runs r on a fakeConn until the test ends; feed hands Serve a
// batch and returns once Serve has handled all of it.
func serveFake(t *testing.T, r *Responder) (c *fakeConn, feed func(...fakePacket)) {
	t.Helper()
	c = newFakeConn()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	wait := func() {
		select {
		case <-c.idle:
		case <-time.After(hangGuard):
			t.Fatal("Serve did not come back for more probes")
		}
	}
	wait()
	return c, func(ps ...fakePacket) {
		t.Helper()
		c.in <- ps
		wait()
	}
}

// forged returns n probes carrying payload, each from its own source
// 10.x.y.z:40000.
func forged(n int, payload []byte) []fakePacket {
	out := make([]fakePacket, n)
	for i := range out {
		out[i] = fakePacket{netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000), payload}
	}
	return out
}

// TestResponderRefusesSources: at Serve level, each refused kind of source
// gets no reply and is counted under its reason; the allowed ones are
// answered.
func TestResponderRefusesSources(t *testing.T) {
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	r := plainResponder("10.213.1.11", 0)
	r.Clock = clk
	r.Networks = func() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("192.168.1.7/24")} }
	c, feed := serveFake(t, r)
	probe := []byte("DISCOVER_SERVER")
	tests := []struct {
		src    string
		refuse ProbeRefusal
		answer bool
	}{
		{"255.255.255.255:40000", RefusedLimitedBroadcast, false},
		{"224.0.0.251:5353", RefusedMulticast, false},
		{"0.0.0.0:40000", RefusedThisNetwork, false},
		{"240.1.2.3:40000", RefusedReserved, false},
		{"192.168.1.0:40000", RefusedNetworkAddress, false},
		{"192.168.1.255:40000", RefusedNetworkBroadcast, false},
		{"192.168.1.20:0", RefusedPortZero, false},
		{"192.168.1.20:40000", 0, true},
		{"127.0.0.1:40000", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			src := netip.MustParseAddrPort(tc.src)
			before := r.Refused(tc.refuse)
			feed(fakePacket{src, probe})
			got := c.sent()
			if tc.answer {
				if len(got) != 1 || got[0].addr != src || string(got[0].data) != "SERVER_IP:10.213.1.11" {
					t.Errorf("probe from %s: sent %v, want one reply to it", src, got)
				}
				return
			}
			if len(got) != 0 {
				t.Errorf("probe from %s: sent %v, want nothing", src, got)
			}
			if n := r.Refused(tc.refuse) - before; n != 1 {
				t.Errorf("probe from %s: Refused(%v) grew by %d, want 1", src, tc.refuse, n)
			}
		})
	}
	// Garbage from a refused source is not a probe: ignored, not counted.
	before := r.Refused(RefusedLimitedBroadcast)
	feed(fakePacket{netip.MustParseAddrPort("255.255.255.255:40000"), []byte("hello")})
	if n := r.Refused(RefusedLimitedBroadcast); n != before {
		t.Errorf("a non-probe from 255.255.255.255 counted as refused (%d -> %d)", before, n)
	}
}

// TestResponderRefusesOverLoopback runs Serve on a real loopback socket:
// with the host network 127.0.0.8/30 injected, probes from its network
// (127.0.0.8) and broadcast (127.0.0.11) addresses get no reply, a probe
// from 127.0.0.9 does.
func TestResponderRefusesOverLoopback(t *testing.T) {
	p := freePort(t)
	r := plainResponder("10.213.1.11", 0)
	r.Networks = func() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.8/30")} }
	startResponder(t, addrPort("127.0.0.2", p), r)
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: int(p)}
	for _, tc := range []struct {
		from   string
		answer bool
	}{
		{"127.0.0.8", false},
		{"127.0.0.11", false},
		{"127.0.0.9", true},
	} {
		t.Run(tc.from, func(t *testing.T) {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(tc.from)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.WriteTo([]byte("DISCOVER_SERVER"), to); err != nil {
				t.Fatal(err)
			}
			// A loopback responder answers within microseconds. For the
			// probe it answers, the deadline only guards against a hang.
			// For a refused one, silence for a while is no bound that load
			// can break (a late wrong reply could only be missed): the
			// Refused count below is the proof.
			wait := 300 * time.Millisecond
			if tc.answer {
				wait = hangGuard
			}
			_ = c.SetReadDeadline(time.Now().Add(wait))
			buf := make([]byte, 512)
			n, _, err := c.ReadFrom(buf)
			switch {
			case tc.answer && err != nil:
				t.Errorf("probe from %s: no reply: %v", tc.from, err)
			case tc.answer && string(buf[:n]) != "SERVER_IP:10.213.1.11":
				t.Errorf("probe from %s: reply %q", tc.from, buf[:n])
			case !tc.answer && err == nil:
				t.Errorf("probe from %s: got reply %q, want none", tc.from, buf[:n])
			}
		})
	}
	if got := r.Refused(RefusedNetworkAddress) + r.Refused(RefusedNetworkBroadcast); got != 2 {
		t.Errorf("refused %d probes, want 2", got)
	}
}

// TestResponderGlobalBudget floods the responder with probes forged from
// distinct sources (so the per-source limit never applies) on a manual
// clock: the replies sent are the global burst, then the global rate.
func TestResponderGlobalBudget(t *testing.T) {
	probe := []byte("DISCOVER_SERVER")
	type step struct {
		advance     time.Duration
		probes      int
		wantReplies int
	}
	tests := []struct {
		name                 string
		replies              int
		globalRate           float64
		globalBurst          int
		steps                []step
		wantDroppedGlobal    uint64
		wantDroppedPerSource uint64
	}{
		{"defaults of respond: 100/s after 200", 1, 100, 200, []step{
			{0, 1000, 200}, // the burst
			{time.Second, 1000, 100},
			{10 * time.Millisecond, 1000, 1},
			{10 * time.Second, 1000, 200}, // refilled to the burst, no more
		}, 4000 - 501, 0},
		{"counts replies: --replies 10 costs 10", 10, 100, 200, []step{
			{0, 100, 20 * 10},
			{time.Second, 100, 10 * 10},
		}, 200 - 30, 0},
		{"no limit", 1, 0, 0, []step{
			{0, 5000, 5000},
		}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktest.New(time.Unix(1_700_000_000, 0))
			r := plainResponder("10.213.1.11", 0)
			r.Clock, r.Replies, r.Rate, r.Burst = clk, tc.replies, 5, 20
			r.GlobalRate, r.GlobalBurst = tc.globalRate, tc.globalBurst
			c, feed := serveFake(t, r)
			for i, s := range tc.steps {
				clk.Advance(s.advance)
				feed(forged(s.probes, probe)...)
				if got := len(c.sent()); got != s.wantReplies {
					t.Errorf("step %d (+%s, %d forged sources): %d replies, want %d", i, s.advance, s.probes, got, s.wantReplies)
				}
			}
			if got := r.DroppedGlobal(); got != tc.wantDroppedGlobal {
				t.Errorf("DroppedGlobal = %d, want %d", got, tc.wantDroppedGlobal)
			}
			if got := r.Dropped(); got != tc.wantDroppedPerSource {
				t.Errorf("Dropped = %d, want %d", got, tc.wantDroppedPerSource)
			}
		})
	}
}

// TestResponderBudgetsApart: a source over its own rate does not spend the
// global budget, and a probe dropped for the global budget does not spend
// its source's allowance.
func TestResponderBudgetsApart(t *testing.T) {
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	r := plainResponder("10.213.1.11", 0)
	r.Clock, r.Rate, r.Burst, r.GlobalRate, r.GlobalBurst = clk, 0.5, 2, 10, 3
	c, feed := serveFake(t, r)
	probe := []byte("DISCOVER_SERVER")
	flooder := fakePacket{netip.MustParseAddrPort("10.0.0.1:40000"), probe}
	bridge := fakePacket{netip.MustParseAddrPort("10.0.0.2:40000"), probe}

	// 50 probes from one source: its burst of 2 is answered, 48 dropped
	// by the per-source limit; the global budget keeps 1 of its 3.
	feed(slicesRepeat(flooder, 50)...)
	if got := len(c.sent()); got != 2 || r.Dropped() != 48 || r.DroppedGlobal() != 0 {
		t.Fatalf("flood from one source: %d replies, Dropped %d, DroppedGlobal %d; want 2, 48, 0", got, r.Dropped(), r.DroppedGlobal())
	}
	// The bridge's first probe takes the budget's last reply, its second
	// is dropped for the budget.
	feed(bridge, bridge)
	if got := len(c.sent()); got != 1 || r.DroppedGlobal() != 1 {
		t.Fatalf("bridge after the flood: %d replies, DroppedGlobal %d; want 1, 1", got, r.DroppedGlobal())
	}
	// 100 ms later the budget has 1 reply again; the bridge has 1.05
	// tokens if the dropped probe left its second token, 0.05 if not.
	clk.Advance(100 * time.Millisecond)
	feed(bridge)
	if got := len(c.sent()); got != 1 || r.Dropped() != 48 {
		t.Fatalf("bridge 100 ms later: %d replies, Dropped %d; want 1, 48 (the probe dropped for the budget cost its source nothing)", got, r.Dropped())
	}
}

func slicesRepeat(p fakePacket, n int) []fakePacket {
	out := make([]fakePacket, n)
	for i := range out {
		out[i] = p
	}
	return out
}

// TestResponderReplayedToken: in encrypted mode a captured probe is
// answered again from any (forged) source until it is MaxTokenAge+ClockSkew
// old: encryption stops senders without the key that never saw a probe,
// not replays.
func TestResponderReplayedToken(t *testing.T) {
	text, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_700_000_000, 0)
	clk := clocktest.New(start)
	r := plainResponder("10.213.1.11", 0)
	r.Clock, r.Key = clk, key
	c, feed := serveFake(t, r)
	captured := key.Seal([]byte("DISCOVER_SERVER"), start)
	tests := []struct {
		at     time.Duration
		answer bool
	}{
		{0, true},
		{DefaultMaxTokenAge, true},
		{DefaultMaxTokenAge + DefaultClockSkew, true},
		{DefaultMaxTokenAge + DefaultClockSkew + time.Second, false},
	}
	for i, tc := range tests {
		clk.Advance(start.Add(tc.at).Sub(clk.Now()))
		// a new forged source each time, so the per-source limit is no factor
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 9, byte(i + 1)}), 40000)
		feed(fakePacket{src, captured})
		got := c.sent()
		if (len(got) == 1) != tc.answer {
			t.Errorf("token replayed from %s %s after its stamp: %d replies, want answered=%v", src, tc.at, len(got), tc.answer)
		}
	}
}

// TestResponderAmplification measures one reply against the probe that
// caused it, as payload and as IPv4 datagrams (20-byte IP and 8-byte UDP
// headers), for a typical and the longest reply, plaintext and encrypted.
func TestResponderAmplification(t *testing.T) {
	text, _ := GenerateKey()
	key, err := ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	const headers = 20 + 8
	tests := []struct {
		name    string
		ip      string
		appPort uint16
		key     *Key
		maxWire float64
	}{
		{"plaintext, 10.213.1.11", "10.213.1.11", 0, nil, 1.2},
		{"plaintext, 255.255.255.254:65535", "255.255.255.254", 65535, nil, 1.4},
		{"encrypted, 10.213.1.11", "10.213.1.11", 0, key, 1.2},
		{"encrypted, 255.255.255.254:65535", "255.255.255.254", 65535, key, 1.2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktest.New(time.Unix(1_700_000_000, 0))
			r := plainResponder(tc.ip, tc.appPort)
			r.Clock, r.Key = clk, tc.key
			c, feed := serveFake(t, r)
			probe := []byte("DISCOVER_SERVER")
			if tc.key != nil {
				probe = tc.key.Seal(probe, clk.Now())
			}
			feed(fakePacket{netip.MustParseAddrPort("10.0.0.1:40000"), probe})
			got := c.sent()
			if len(got) != 1 {
				t.Fatalf("%d replies, want 1", len(got))
			}
			in, out := len(probe), len(got[0].data)
			payload, wire := float64(out)/float64(in), float64(out+headers)/float64(in+headers)
			t.Logf("probe %d B, reply %d B: payload x%.2f, on the wire (IPv4+UDP) %d/%d B = x%.2f", in, out, payload, out+headers, in+headers, wire)
			if wire > tc.maxWire {
				t.Errorf("reply/probe on the wire x%.2f, want at most x%.2f", wire, tc.maxWire)
			}
		})
	}
}
