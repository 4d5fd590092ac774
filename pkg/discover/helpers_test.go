package discover

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// freePort returns a UDP port that is free on 127.0.0.1 right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// loIndex is the real loopback interface's index (IP_PKTINFO reports it for
// loopback traffic).
func loIndex(t testing.TB) int {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo interface: %v", err)
	}
	return lo.Index
}

// fakeIf is a selectable interface whose "broadcast" is a loopback address,
// so probes never leave the host.
func fakeIf(name string, addr, bcast string) iface.Interface {
	return iface.Interface{
		Name:      name,
		Index:     0,
		Addr:      netip.MustParseAddr(addr),
		Prefix:    netip.MustParsePrefix("127.0.0.0/8"),
		Broadcast: netip.MustParseAddr(bcast),
		Up:        true,
	}
}

// lister returns the real lo (for index naming) plus the given fakes.
func lister(t testing.TB, fakes ...iface.Interface) iface.Lister {
	t.Helper()
	lo := iface.Interface{
		Name: "lo", Index: loIndex(t), Addr: netip.MustParseAddr("127.0.0.1"),
		Prefix: netip.MustParsePrefix("127.0.0.0/8"), Broadcast: netip.MustParseAddr("127.255.255.255"),
		Up: true, Loopback: true,
	}
	return iface.ListerFunc(func() ([]iface.Interface, error) {
		return append([]iface.Interface{lo}, fakes...), nil
	})
}

// startResponder runs r on addr until the test ends.
func startResponder(t testing.TB, addr string, r *Responder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := ListenResponder(ctx, addr)
	if err != nil {
		t.Fatalf("ListenResponder(%s): %v", addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve(%s) = %v", addr, err)
		}
		conn.Close()
	})
}

// plainResponder answers DISCOVER_SERVER with SERVER_IP:ip[:port].
func plainResponder(ip string, port uint16) *Responder {
	return &Responder{
		Message: []byte("DISCOVER_SERVER"), Prefix: []byte("SERVER_IP:"),
		IP: netip.MustParseAddr(ip), AppPort: port,
	}
}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// logger and debugLogger log JSON to l, at info and at debug.
func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func (l *logBuf) debugLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testOptions are loopback options on port p. Their round ends by Settle,
// which a test runs with settledRound (or a settler): Settle is then timed
// on a manual clock, and the test ends the round once it has read what the
// test expects. No reply has to make a real-time deadline: the round's own
// is 10 minutes off (a test that wants a round to end at its deadline sets
// a short Timeout and Settle 0).
func testOptions(p uint16) Options {
	o := DefaultOptions()
	o.Port = p
	o.Timeout = longRound
	o.Retries = 0
	o.Settle = time.Second
	o.SubnetScan = false
	// The servers of these tests answer on loopback and advertise
	// addresses elsewhere (10.213.0.x): admit them, as upstream does.
	// admit_test.go tests the default policy.
	o.AdvertisedAddresses = AdvertisedAny
	return o
}

func newClient(t testing.TB, o Options, l iface.Lister, log *slog.Logger) *Client {
	t.Helper()
	c, err := New(o, l, log, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// longRound is a round Timeout no test waits for (the most New allows). A
// test that expects a round to end by other means (One, Settle, its ctx)
// sets it and then only has to see the round return: nothing else could
// have ended it, so no bound on the round's duration is needed.
const longRound = 10 * time.Minute

// hangGuard is how long noHang waits. It is a guard against a hang, not a
// measure: what it waits for takes milliseconds, seconds on a busy
// machine, so the guard is more than 100 times that.
const hangGuard = 30 * time.Second

// noHang runs f and fails the test if f has not returned within hangGuard
// (a round with a longRound Timeout that nothing ends).
func noHang(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(hangGuard):
		t.Fatalf("%s still running after %v", what, hangGuard)
	}
}

// settler ends a test's rounds exactly instead of after a real quiet
// period: it is the settle clock of the Clients it is installed on, a
// manual one, and counts the datagrams their rounds read.
type settler struct {
	clk     *clocktest.Clock
	mu      sync.Mutex
	reads   int
	changed chan struct{} // closed and replaced on every read
}

func newSettler() *settler {
	return &settler{clk: clocktest.New(time.Unix(1_000_000, 0)), changed: make(chan struct{})}
}

// install makes s c's settle clock and read counter (also a prepare
// function for discover and discoverOne).
func (s *settler) install(c *Client) { c.settleClock, c.readHook = s.clk, s.read }

func (s *settler) read() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitReads waits until the round running in the background has read n
// datagrams since the last settle (hangGuard at most). It reports false,
// without waiting, once the round has ended (done closed), for the test
// to judge its result.
func (s *settler) waitReads(t testing.TB, n int, done <-chan struct{}) bool {
	t.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	for {
		s.mu.Lock()
		got, ch := s.reads, s.changed
		s.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return false
		case <-guard.C:
			t.Fatalf("the round read %d datagrams in %v, want %d", got, hangGuard, n)
		}
	}
}

// waitArmed waits until the round running in the background has armed its
// settle timer, which it does only once its last probe went out (hangGuard
// at most). It reports false once the round has ended (done closed).
func (s *settler) waitArmed(t testing.TB, done <-chan struct{}) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := s.clk.WaitForTimers(ctx, 1); err != nil {
		select {
		case <-done:
			return false
		default:
			t.Fatalf("no settle timer: %v", err)
		}
	}
	return true
}

// settle ends the round running in the background by Settle, exactly: once
// it has read n datagrams (replies, garbage and duplicates alike) and
// armed its settle timer, it moves the settle clock past Settle. A round
// that ended otherwise (an error, One, its deadline) is left for the test
// to judge.
func (s *settler) settle(t testing.TB, n int, done <-chan struct{}) {
	t.Helper()
	if !s.waitReads(t, n, done) || !s.waitArmed(t, done) {
		return
	}
	s.mu.Lock()
	s.reads = 0
	s.mu.Unlock()
	s.clk.Advance(longRound) // more than any test's Settle
}

// settledRound runs round (a round of c, or discover with install) in the
// background with a settler installed on c (nil: round installs it) and
// returns its result once the settler has ended it after n datagrams.
func settledRound(t testing.TB, c *Client, n int, round func(s *settler) (Result, error)) (Result, error) {
	t.Helper()
	s := newSettler()
	if c != nil {
		s.install(c)
	}
	b := goRound(t, func() (Result, error) { return round(s) })
	s.settle(t, n, b.done)
	return b.wait()
}

// settledRoundOf is settledRound of c.Round.
func settledRoundOf(t testing.TB, c *Client, n int) (Result, error) {
	t.Helper()
	return settledRound(t, c, n, func(*settler) (Result, error) { return c.Round(context.Background()) })
}

// bgRound is a round running in the background (startRound).
type bgRound struct {
	t    testing.TB
	done chan struct{}
	res  Result
	err  error
}

// startRound runs c.RoundNotify(context.Background(), onServer) in the
// background.
func startRound(t testing.TB, c *Client, onServer func(Server)) *bgRound {
	return goRound(t, func() (Result, error) { return c.RoundNotify(context.Background(), onServer) })
}

// goRound runs round in the background.
func goRound(t testing.TB, round func() (Result, error)) *bgRound {
	b := &bgRound{t: t, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.res, b.err = round()
	}()
	return b
}

// ended reports whether the round has returned, without waiting.
func (b *bgRound) ended() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait waits for the round to return (hangGuard at most) and returns its
// result.
func (b *bgRound) wait() (Result, error) {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(hangGuard):
		b.t.Fatalf("round still running after %v", hangGuard)
	}
	return b.res, b.err
}

// waitClosed waits for ch to be closed (hangGuard at most).
func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("no %s after %v", what, hangGuard)
	}
}

// fireRetry sends a round's next retry: it waits until the round waits on
// its retry timer on clk (the Client's retryClock) and moves clk past it.
func fireRetry(t testing.TB, clk *clocktest.Clock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(longRound) // a retry is due within the round's Timeout
}

func endpoints(ss []Server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Endpoint().String())
	}
	slices.Sort(out)
	return out
}

func addrPort(ip string, p uint16) string {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), p).String()
}
