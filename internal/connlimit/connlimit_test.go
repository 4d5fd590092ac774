package connlimit

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

func TestIsHost(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name          string
		local, remote netip.Addr
		want          bool
	}{
		{"loopback v4", a("127.0.0.1"), a("127.0.0.1"), true},
		{"loopback v4, another address of 127/8", a("10.0.0.5"), a("127.3.2.1"), true},
		{"loopback v6", a("::1"), a("::1"), true},
		{"loopback v4 mapped in v6", a("::ffff:10.0.0.5"), a("::ffff:127.0.0.1"), true},
		{"peer is the local address (kubelet probing a hostNetwork pod)", a("10.0.0.5"), a("10.0.0.5"), true},
		{"peer is the local address, v4 mapped on a dual-stack socket", a("::ffff:10.0.0.5"), a("::ffff:10.0.0.5"), true},
		{"peer is the local address, mixed forms", a("10.0.0.5"), a("::ffff:10.0.0.5"), true},
		{"peer is the local link-local address with a zone", a("fe80::1%eth0"), a("fe80::1%eth0"), true},
		{"LAN neighbour", a("10.0.0.5"), a("10.0.0.6"), false},
		{"LAN neighbour v6", a("2001:db8::5"), a("2001:db8::6"), false},
		{"another address of the host is not the connection's own", a("10.0.0.5"), a("192.168.1.5"), false},
		{"unspecified peer", a("0.0.0.0"), a("0.0.0.0"), false},
		{"no addresses", netip.Addr{}, netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsHost(tt.local, tt.remote); got != tt.want {
				t.Errorf("IsHost(%s, %s) = %v, want %v", tt.local, tt.remote, got, tt.want)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		lim  Limits
		want string // "" for valid
	}{
		{Limits{Host: 1, PerClient: 1, Total: 1}, ""},
		{Limits{Host: 0, PerClient: 1, Total: 1}, "Host"},
		{Limits{Host: 1, PerClient: 0, Total: 1}, "PerClient"},
		{Limits{Host: 1, PerClient: 1, Total: -1}, "Total"},
	}
	for _, tt := range tests {
		err := tt.lim.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v.Validate() = %v, want an error naming %q", tt.lim, err, tt.want)
		}
	}
}

// op is one step of a pool or listener scenario: a connection from an
// address (host or not) that is admitted or refused, or the closing of
// the i-th admitted connection.
type op struct {
	from  string // client address; "" for a close
	host  bool   // the connection is the host's own
	want  Reason // "" admitted
	close int    // with from == "": close the close-th admitted connection (1-based)
}

var a1, a2, a3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"

var scenarios = []struct {
	name string
	lim  Limits
	ops  []op
}{
	{
		name: "the host's pool is its own: clients at the total cap do not refuse the host, nor the host's connections clients",
		lim:  Limits{Host: 2, PerClient: 1, Total: 2},
		ops: []op{
			{from: a1}, {from: a2}, {from: a3, want: ReasonTotal},
			{from: "h", host: true}, {from: "h", host: true}, {from: "h", host: true, want: ReasonHost},
			{close: 1}, {from: a3}, // a1's slot is a3's now
			{close: 4}, {from: "h", host: true},
		},
	},
	{
		name: "per client cap",
		lim:  Limits{Host: 1, PerClient: 2, Total: 10},
		ops: []op{
			{from: a1}, {from: a1}, {from: a1, want: ReasonPerClient}, {from: a2}, {from: a2},
			{from: a2, want: ReasonPerClient}, {close: 2}, {from: a1}, {from: a1, want: ReasonPerClient},
		},
	},
	{
		name: "per client before total: a client at its cap is refused for that reason",
		lim:  Limits{Host: 1, PerClient: 1, Total: 1},
		ops:  []op{{from: a1}, {from: a1, want: ReasonPerClient}, {from: a2, want: ReasonTotal}},
	},
	{
		name: "a host flood leaves the clients' capacity whole",
		lim:  Limits{Host: 1, PerClient: 1, Total: 1},
		ops:  []op{{from: "h", host: true}, {from: "h", host: true, want: ReasonHost}, {from: "h", host: true, want: ReasonHost}, {from: a1}},
	},
}

// TestPool runs the scenarios on the counting alone.
func TestPool(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			p := newPool(sc.lim)
			type slot struct {
				host bool
				ip   netip.Addr
			}
			var held []slot
			for i, o := range sc.ops {
				if o.from == "" {
					s := held[o.close-1]
					p.put(s.host, s.ip)
					continue
				}
				ip := netip.Addr{}
				if !o.host {
					ip = netip.MustParseAddr(o.from)
				}
				if got := p.take(o.host, ip); got != o.want {
					t.Fatalf("op %d (%+v): take = %q, want %q", i, o, got, o.want)
				}
				if o.want == "" {
					held = append(held, slot{o.host, ip})
				}
			}
		})
	}
}

// lab is a Listener on 127.0.0.1 whose "host" is 127.0.0.1 alone: other
// addresses of 127/8 play LAN clients (IsHost would call them the host).
type lab struct {
	t        *testing.T
	l        *Listener
	m        *Metrics
	mu       sync.Mutex // guards log and now: the Listener uses them from the accept goroutine
	log      bytes.Buffer
	now      time.Time
	accepted chan net.Conn
	addr     string
}

const hostIP = "127.0.0.1"

func newLab(t *testing.T, lim Limits) *lab {
	t.Helper()
	ln, err := net.Listen("tcp4", hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	b := &lab{t: t, m: NewMetrics(prometheus.NewRegistry()), now: time.Unix(1_000_000, 0), accepted: make(chan net.Conn), addr: ln.Addr().String()}
	b.l = Wrap(ln, Options{
		Limits: lim, Name: "test", Metrics: b.m, Log: zerolog.New(lockedWriter{b}),
		IsHost: func(_, remote netip.Addr) bool { return remote == netip.MustParseAddr(hostIP) },
		Now: func() time.Time {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.now
		},
		Quiet: time.Minute,
	})
	go func() {
		defer close(b.accepted)
		for {
			c, err := b.l.Accept()
			if err != nil {
				return
			}
			b.accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = b.l.Close()
		for c := range b.accepted {
			_ = c.Close()
		}
	})
	return b
}

// dial connects from ip (an address of 127/8) and returns the client side,
// and the server side when the listener admitted it, or nil when the
// listener closed it at once. The waits are guards against a hang: each
// outcome is an event (a connection out of Accept, or EOF on the client).
func (b *lab) dial(ip string) (client, server net.Conn) {
	b.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp4", b.addr)
	if err != nil {
		b.t.Fatalf("dial from %s: %v", ip, err)
	}
	b.t.Cleanup(func() { _ = c.Close() })
	closed := make(chan error, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		closed <- err
	}()
	select {
	case s := <-b.accepted:
		if s.RemoteAddr().String() != c.LocalAddr().String() {
			b.t.Fatalf("accepted %s, want the connection from %s (accept queue out of order?)", s.RemoteAddr(), c.LocalAddr())
		}
		return c, s
	case err := <-closed:
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			b.t.Fatalf("connection from %s: neither accepted nor closed by the listener: %v", ip, err)
		}
		return c, nil
	}
}

func (b *lab) refused(r Reason) float64 {
	return testutil.ToFloat64(b.m.refused.WithLabelValues("test", string(r)))
}

func (b *lab) open(peer string) float64 {
	return testutil.ToFloat64(b.m.open.WithLabelValues("test", peer))
}

// TestListener runs the scenarios on real connections over loopback.
func TestListener(t *testing.T) {
	ips := map[string]string{"h": hostIP, a1: "127.0.0.2", a2: "127.0.0.3", a3: "127.0.0.4"}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			b := newLab(t, sc.lim)
			var held []net.Conn
			var isHost []bool
			closed := map[int]bool{}
			refused := map[Reason]float64{}
			for i, o := range sc.ops {
				if o.from == "" {
					_ = held[o.close-1].Close()
					closed[o.close-1] = true
					continue
				}
				_, s := b.dial(ips[o.from])
				switch {
				case o.want == "" && s == nil:
					t.Fatalf("op %d (%+v): refused, want admitted", i, o)
				case o.want != "" && s != nil:
					t.Fatalf("op %d (%+v): admitted, want refused (%s)", i, o, o.want)
				case s != nil:
					held = append(held, s)
					isHost = append(isHost, o.host)
				default:
					refused[o.want]++
				}
				for _, r := range reasons {
					if got := b.refused(r); got != refused[r] {
						t.Fatalf("op %d: http_connections_refused_total{reason=%q} = %v, want %v", i, r, got, refused[r])
					}
				}
			}
			wantHost, wantOther := 0, 0
			for i := range held {
				switch {
				case closed[i]:
				case isHost[i]:
					wantHost++
				default:
					wantOther++
				}
			}
			host, others := b.l.Open()
			if host != wantHost || others != wantOther || b.open(peerHost) != float64(wantHost) || b.open(peerOther) != float64(wantOther) {
				t.Errorf("open: Open() = %d, %d; gauges host %v, other %v; want %d, %d", host, others, b.open(peerHost), b.open(peerOther), wantHost, wantOther)
			}
			// Closing twice frees the slot once.
			for i, c := range held {
				if !closed[i] {
					_ = c.Close()
					_ = c.Close()
				}
			}
			if host, others := b.l.Open(); host != 0 || others != 0 {
				t.Errorf("after closing every connection (twice): Open() = %d, %d", host, others)
			}
		})
	}
}

// TestRefusalEpisodes: a flood of refusals logs one warning; the episode
// ends, with one summary line counting it, at the first admitted
// connection after a quiet minute; the next refusal warns again.
func TestRefusalEpisodes(t *testing.T) {
	b := newLab(t, Limits{Host: 1, PerClient: 1, Total: 4})
	_, s := b.dial("127.0.0.2")
	for range 5 {
		b.advance(10 * time.Second)
		if _, r := b.dial("127.0.0.2"); r != nil {
			t.Fatal("second connection from 127.0.0.2 admitted")
		}
	}
	if _, h := b.dial(hostIP); h == nil {
		t.Fatal("the host's connection was refused")
	}
	for range 3 {
		if _, r := b.dial(hostIP); r != nil {
			t.Fatal("second host connection admitted")
		}
	}
	lines := b.lines()
	if len(lines) != 1 || !strings.Contains(lines[0], `"level":"warn"`) || !strings.Contains(lines[0], `"reason":"per_client"`) ||
		!strings.Contains(lines[0], `"open_this_client":1`) || !strings.Contains(lines[0], `"remote":"127.0.0.2"`) {
		t.Fatalf("after 8 refusals in one episode, want one warning about 127.0.0.2's cap; log:\n%s", b.logged())
	}
	// Less than the quiet period after the last refusal: still the episode.
	b.advance(59 * time.Second)
	_ = s.Close()
	if _, s = b.dial("127.0.0.2"); s == nil {
		t.Fatal("127.0.0.2 refused after its connection closed")
	}
	if n := len(b.lines()); n != 1 {
		t.Fatalf("%d log lines 59 s after the last refusal, want 1:\n%s", n, b.logged())
	}
	b.advance(time.Second)
	if _, c := b.dial("127.0.0.3"); c == nil {
		t.Fatal("127.0.0.3 refused")
	}
	lines = b.lines()
	if len(lines) != 2 || !strings.Contains(lines[1], `"level":"info"`) || !strings.Contains(lines[1], `"refused":8`) ||
		!strings.Contains(lines[1], `"refused_per_client":5`) || !strings.Contains(lines[1], `"refused_host":3`) || !strings.Contains(lines[1], `"refused_total":0`) {
		t.Fatalf("want a summary of the episode (8 refused: 5 per_client, 3 host) at the first admission after a quiet minute; log:\n%s", b.logged())
	}
	b.advance(time.Hour)
	if _, r := b.dial("127.0.0.3"); r != nil {
		t.Fatal("second connection from 127.0.0.3 admitted")
	}
	if lines = b.lines(); len(lines) != 3 || !strings.Contains(lines[2], `"level":"warn"`) {
		t.Fatalf("want a new warning for a refusal after the quiet period; log:\n%s", b.logged())
	}
	_ = b.l.Close()
	if lines = b.lines(); len(lines) != 4 || !strings.Contains(lines[3], `"refused":1`) {
		t.Fatalf("want Close to sum up the open episode; log:\n%s", b.logged())
	}
}

// lockedWriter writes to the lab's log under its lock.
type lockedWriter struct{ b *lab }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.log.Write(p)
}

func (b *lab) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.log.String()), "\n")
}

func (b *lab) logged() string { return strings.Join(b.lines(), "\n") }

func (b *lab) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = b.now.Add(d)
}

// TestIdleConnectionClosedByServer: a client that connects and never
// sends is closed by the HTTP server's ReadHeaderTimeout (50 ms here; the
// bridge's is 5 s), and its slot is free by the time it sees the close.
func TestIdleConnectionClosedByServer(t *testing.T) {
	ln, err := net.Listen("tcp4", hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(ln, Options{Limits: Limits{Host: 1, PerClient: 1, Total: 1}, Name: "test"})
	srv := &http.Server{ReadHeaderTimeout: 50 * time.Millisecond, Handler: http.NotFoundHandler()}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard; the close comes after 50 ms
	_, err = io.ReadAll(c)
	if err != nil {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
	if host, others := l.Open(); host != 0 || others != 0 {
		t.Errorf("after the server closed the idle connection: Open() = %d, %d, want 0, 0", host, others)
	}
}
