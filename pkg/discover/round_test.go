package discover

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func TestRoundFindsServers(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 8443))
	startResponder(t, addrPort("127.0.0.4", p), plainResponder("10.213.0.4", 0))
	l := lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3"),
		fakeIf("fake4", "127.0.1.4", "127.0.0.4"))
	c := newClient(t, testOptions(p), l, nil)

	res, err := settledRoundOf(t, c, 3)
	if err != nil {
		t.Fatalf("Round: %v", err)
	}
	want := []string{"10.213.0.2:8000", "10.213.0.3:8443", "10.213.0.4:8000"}
	if got := endpoints(res.Servers); !slices.Equal(got, want) {
		t.Fatalf("servers %v, want %v (stats %+v)", got, want, res.Stats)
	}
	for _, s := range res.Servers {
		wantSrc := "127.0.0." + s.IP.String()[len("10.213.0."):]
		if s.Source.Addr().String() != wantSrc || s.Source.Port() != p {
			t.Errorf("%v: source %v, want %s:%d", s.IP, s.Source, wantSrc, p)
		}
		if s.Interface != "lo" {
			t.Errorf("%v: interface %q, want lo (from IP_PKTINFO)", s.IP, s.Interface)
		}
		if s.AddressFrom != AddressPayload || s.PayloadIP != s.IP {
			t.Errorf("%v: address from %s, payload %v", s.IP, s.AddressFrom, s.PayloadIP)
		}
		if s.PortFromReply != (s.Port == 8443) || !strings.HasPrefix(s.Raw, "SERVER_IP:10.213.0.") || s.Received.IsZero() {
			t.Errorf("server %+v", s)
		}
	}
	if res.Stats.ProbesSent != 3 || res.Stats.Valid != 3 || res.Stats.Replies != 3 || res.Stats.SendErrors != 0 {
		t.Errorf("stats %+v", res.Stats)
	}
	if len(res.Interfaces) != 3 || res.RecvBuffer <= 0 {
		t.Errorf("interfaces %v, recv buffer %d", res.Interfaces, res.RecvBuffer)
	}
}

func TestRoundDedupeAndRetries(t *testing.T) {
	p := freePort(t)
	// Two hosts advertising the same endpoint, three probes each. The test
	// sends each retry (their timers are on a manual clock) and ends the
	// round (Settle, on another) once all six replies are in.
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.9", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.9", 0))
	o := testOptions(p)
	o.Timeout, o.Retries = longRound, 2
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), nil)
	clk := clocktest.New(time.Unix(0, 0))
	c.retryClock = clk
	s := newSettler()
	s.install(c)

	round := startRound(t, c, nil)
	fireRetry(t, clk)
	fireRetry(t, clk)
	s.settle(t, 6, round.done)
	res, err := round.wait()
	if err != nil {
		t.Fatalf("Round: %v", err)
	}
	if got := endpoints(res.Servers); !slices.Equal(got, []string{"10.213.0.9:8000"}) {
		t.Fatalf("servers %v", got)
	}
	if s := res.Stats; s.ProbesSent != 6 || s.Valid != 6 || s.Duplicates != 5 {
		t.Errorf("stats %+v, want 6 probes, 6 valid, 5 duplicates", s)
	}
	if res.Servers[0].Source.Addr() != netip.MustParseAddr("127.0.0.2") && res.Servers[0].Source.Addr() != netip.MustParseAddr("127.0.0.3") {
		t.Errorf("source %v", res.Servers[0].Source)
	}
}

func TestRoundRunsToItsTimeout(t *testing.T) {
	// Without Settle or One a round never ends before its timeout. Nothing
	// answers, so nothing has to arrive in time; the check is a lower
	// bound, exact on a busy machine too: the deadline is Timeout after
	// the round's start on the real clock Duration is read from, and load
	// only makes a round end later.
	o := testOptions(freePort(t))
	o.Timeout, o.Settle, o.Retries = 200*time.Millisecond, 0, 1
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil)
	res, err := c.Round(context.Background())
	if err != nil || len(res.Servers) != 0 {
		t.Fatalf("Round = %v, %v", endpoints(res.Servers), err)
	}
	if res.Duration < o.Timeout {
		t.Errorf("round took %v, want the whole %v (no settle)", res.Duration, o.Timeout)
	}
}

func TestRoundOneReturnsEarly(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 0))
	o := testOptions(p)
	// Nothing else ends the round within 10 minutes: a Round that returns
	// at all stopped at a reply.
	o.Timeout, o.One, o.Settle, o.Retries = longRound, true, 0, 3
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), nil)

	var res Result
	var err error
	noHang(t, "a round with One", func() { res, err = c.Round(context.Background()) })
	if err != nil {
		t.Fatalf("Round: %v", err)
	}
	if len(res.Servers) != 1 {
		t.Fatalf("servers %v, want exactly the first", endpoints(res.Servers))
	}
	// Both servers answer the first burst; the round returns right after
	// ingesting the first reply, so it never reads the second one. That
	// count is the proof the round ended early, not a duration: a round
	// run to its deadline reads the second reply, and those to the
	// retries, too.
	if res.Stats.Replies != 1 || res.Stats.Valid != 1 {
		t.Errorf("stats %+v, want the round to stop at the first reply", res.Stats)
	}
}

func TestRoundSettleEndsEarly(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	o := testOptions(p)
	o.Timeout, o.Settle = longRound, 100*time.Millisecond
	var logs logBuf
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), logs.debugLogger())
	s := newSettler()
	s.install(c)
	round := startRound(t, c, nil)
	// The reply is in and the probe out: Settle's quiet period runs on the
	// settle clock, and the round's deadline is 10 minutes off.
	if !s.waitReads(t, 1, round.done) || !s.waitArmed(t, round.done) {
		t.Fatal("the round ended before its quiet period began")
	}
	s.clk.Advance(o.Settle - time.Nanosecond)
	if s.clk.Pending() != 1 {
		t.Fatalf("the settle timer fired %v into a %v quiet period", o.Settle-time.Nanosecond, o.Settle)
	}
	s.clk.Advance(time.Nanosecond)
	res, err := round.wait()
	if err != nil || len(res.Servers) != 1 {
		t.Fatalf("Round = %v, %v", endpoints(res.Servers), err)
	}
	if n := logs.count("round settled"); n != 1 {
		t.Errorf("round not ended by Settle (%d settle logs):\n%s", n, logs.b.String())
	}
}

// TestRoundSettleRestartsAtNewServer: a new server restarts the quiet
// period. The settle timer armed before it fires at the first period's
// end; the round does not settle then but arms the rest of the new one.
func TestRoundSettleRestartsAtNewServer(t *testing.T) {
	p := freePort(t)
	// A server that answers only when the test says so.
	conn, err := net.ListenPacket("udp4", addrPort("127.0.0.2", p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	probed, answer := make(chan net.Addr, 1), make(chan struct{})
	go func() {
		buf := make([]byte, 2048)
		_, from, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		probed <- from
		<-answer
		conn.WriteTo([]byte("SERVER_IP:10.213.0.2"), from)
	}()
	o := testOptions(p)
	o.Timeout, o.Settle = longRound, 100*time.Millisecond
	var logs logBuf
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), logs.debugLogger())
	s := newSettler()
	s.install(c)
	round := startRound(t, c, nil)
	if !s.waitArmed(t, round.done) { // the probe went out: the quiet period runs
		t.Fatal("the round ended before its quiet period began")
	}
	start := s.clk.Now()
	s.clk.Advance(60 * time.Millisecond)
	select {
	case <-probed:
	case <-time.After(hangGuard):
		t.Fatalf("no probe after %v", hangGuard)
	}
	close(answer)
	if !s.waitReads(t, 1, round.done) {
		t.Fatal("the round ended before the reply")
	}
	// The first period ends: its timer fires, and the round arms the rest
	// of the period the new server began.
	s.clk.Advance(40 * time.Millisecond)
	if !s.waitArmed(t, round.done) {
		t.Fatalf("the round settled 40 ms after a new server, want %v", o.Settle)
	}
	if at, _ := s.clk.NextDeadline(); !at.Equal(start.Add(160 * time.Millisecond)) {
		t.Errorf("settle timer due at %v, want 160ms (the new server at 60 ms, plus %v)", at.Sub(start), o.Settle)
	}
	s.clk.Advance(60 * time.Millisecond)
	res, err := round.wait()
	if err != nil || len(res.Servers) != 1 {
		t.Fatalf("Round = %v, %v", endpoints(res.Servers), err)
	}
	if n := logs.count("round settled"); n != 1 {
		t.Errorf("round not ended by Settle (%d settle logs):\n%s", n, logs.b.String())
	}
}

func TestRoundSettleWaitsForRetries(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	o := testOptions(p)
	// The server answers the first burst; the retry goes out when the
	// test fires its timer, and the round (its deadline 10 minutes off)
	// must still be running then, and settle after it.
	o.Timeout, o.Settle, o.Retries = longRound, 50*time.Millisecond, 1
	var logs logBuf
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), logs.debugLogger())
	clk := clocktest.New(time.Unix(0, 0))
	c.retryClock = clk
	s := newSettler()
	s.install(c)
	found := make(chan struct{})
	round := startRound(t, c, func(Server) { close(found) })
	waitClosed(t, found, "server found by the first burst")
	// The quiet period starts once the last probe went out: no settle
	// timer runs while the retry waits for the test.
	if n := s.clk.Pending(); n != 0 || round.ended() {
		t.Fatalf("%d settle timers (round ended: %v) before the retry went out, want none", n, round.ended())
	}
	fireRetry(t, clk)
	s.settle(t, 2, round.done) // the replies to the first burst and to the retry
	res, err := round.wait()
	if err != nil || res.Stats.ProbesSent != 2 {
		t.Fatalf("Round: %v, stats %+v", err, res.Stats)
	}
	if n := logs.count("round settled"); n != 1 {
		t.Errorf("round not ended by Settle (%d settle logs) after %v:\n%s", n, res.Duration, logs.b.String())
	}
}

func TestRoundCancel(t *testing.T) {
	p := freePort(t)
	o := testOptions(p)
	// The round's own deadline is 10 minutes off and nothing answers: a
	// Round that returns at all honoured the cancel.
	o.Timeout, o.Settle, o.Retries = longRound, 0, 3
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.sendHook = func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error {
		defer cancel() // the round is cancelled as its first probe goes out
		_, err := conn.WriteToUDPAddrPort(b, dst)
		return err
	}
	var res Result
	var err error
	noHang(t, "a cancelled round", func() { res, err = c.Round(ctx) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Round = %v, want context.Canceled", err)
	}
	if res.Stats.ProbesSent != 1 {
		t.Errorf("%d probes sent, want the first burst only (the retries stop with the round)", res.Stats.ProbesSent)
	}
}

func TestRoundCtxDeadlineIsNotAnError(t *testing.T) {
	p := freePort(t)
	o := testOptions(p)
	// The round's own deadline is 10 minutes off: a Round that returns at
	// all ended at the ctx's deadline.
	o.Timeout, o.Settle = longRound, 0
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var res Result
	var err error
	noHang(t, "a round past its ctx's deadline", func() { res, err = c.Round(ctx) })
	if err != nil || len(res.Servers) != 0 {
		t.Fatalf("Round = %v, %v; want nothing found, no error", res.Servers, err)
	}
	// A lower bound on the real clock, exact under load too.
	dl, _ := ctx.Deadline()
	if end := res.Started.Add(res.Duration); end.Before(dl) {
		t.Errorf("round ended %v before the ctx's deadline", dl.Sub(end))
	}
}

func TestRoundDiagnosisOnce(t *testing.T) {
	// A corporate /16 interface: probes go through the hook, never a socket.
	ifc := iface.Interface{
		Name: "eth0", Index: 77, Addr: netip.MustParseAddr("10.213.5.7"),
		Prefix: netip.MustParsePrefix("10.213.0.0/16"), Broadcast: netip.MustParseAddr("10.213.255.255"), Up: true,
	}
	var logs logBuf
	o := testOptions(freePort(t))
	o.Timeout, o.Settle = 50*time.Millisecond, 0
	c := newClient(t, o, iface.ListerFunc(func() ([]iface.Interface, error) { return []iface.Interface{ifc}, nil }), logs.debugLogger())
	var sent []netip.AddrPort
	c.sendHook = func(_ *net.UDPConn, _ []byte, dst netip.AddrPort) error { sent = append(sent, dst); return nil }
	for range 3 {
		if _, err := c.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.count("probably segmented"); n != 1 {
		t.Errorf("%d diagnosis warnings over 3 empty rounds, want 1:\n%s", n, logs.b.String())
	}
	if logs.count(`"advice":`) != 1 || logs.count(`"segments":256`) != 1 {
		t.Errorf("diagnosis lacks advice or segments:\n%s", logs.b.String())
	}
	if len(sent) != 3 || sent[0] != netip.AddrPortFrom(netip.MustParseAddr("10.213.255.255"), o.Port) {
		t.Errorf("sent %v", sent)
	}
}

func TestRoundUsesClientClock(t *testing.T) {
	// A manual clock years away from real time that never moves: the
	// round still ends on real time (socket deadlines), every timestamp
	// comes from the manual clock, and Fernet tokens sealed and opened on
	// it on both sides are accepted (real time would reject them as from
	// the past).
	start := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	clk := clocktest.New(start)
	p := freePort(t)
	key := mustKey(t, specKey)
	r := plainResponder("10.213.0.2", 0)
	r.Key, r.Clock = key, clk
	startResponder(t, addrPort("127.0.0.2", p), r)
	o := testOptions(p)
	o.Key = key
	c, err := New(o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	res, err := settledRoundOf(t, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := endpoints(res.Servers); !slices.Equal(got, []string{"10.213.0.2:8000"}) || res.Stats.Rejected != 0 {
		t.Fatalf("servers %v, stats %+v", got, res.Stats)
	}
	if !res.Started.Equal(start) || res.Duration != 0 || !res.Servers[0].Received.Equal(start) {
		t.Errorf("started %v, duration %v, received %v; want all on the manual clock (%v, 0)",
			res.Started, res.Duration, res.Servers[0].Received, start)
	}
}

// TestRoundNotify: RoundNotify reports each server once, as its first reply
// is kept and while the round still runs, with the fields Result.Servers
// then holds; duplicates (the same endpoint from another host, the replies
// to the retries) are not reported again.
func TestRoundNotify(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.9", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.9", 0))
	startResponder(t, addrPort("127.0.0.4", p), plainResponder("10.213.0.4", 8443))
	o := testOptions(p)
	// The round cannot end before the test sends its two retries (their
	// timers are on a manual clock; its deadline is 10 minutes off); the
	// test ends it (Settle, on another) once the nine replies are in.
	o.Timeout, o.Retries = longRound, 2
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3"),
		fakeIf("fake4", "127.0.1.4", "127.0.0.4")), nil)
	clk := clocktest.New(time.Unix(0, 0))
	c.retryClock = clk
	s := newSettler()
	s.install(c)

	var notified []Server
	first := make(chan struct{})
	round := startRound(t, c, func(s Server) {
		if len(notified) == 0 {
			close(first)
		}
		notified = append(notified, s)
	})
	select {
	case <-first:
	case <-round.done:
		t.Fatal("the round ended before any server was reported")
	case <-time.After(hangGuard):
		t.Fatalf("no server reported after %v", hangGuard)
	}
	if round.ended() {
		t.Fatal("the round ended before its retries went out")
	}
	fireRetry(t, clk)
	fireRetry(t, clk)
	s.settle(t, 9, round.done)
	res, err := round.wait()
	if err != nil {
		t.Fatalf("RoundNotify: %v", err)
	}
	if got := endpoints(notified); !slices.Equal(got, []string{"10.213.0.4:8443", "10.213.0.9:8000"}) &&
		!slices.Equal(got, []string{"10.213.0.9:8000", "10.213.0.4:8443"}) {
		t.Fatalf("reported %v, want each of the two servers once", got)
	}
	if !slices.EqualFunc(notified, res.Servers, func(a, b Server) bool { return a == b }) {
		t.Errorf("reported %+v, want exactly Result.Servers %+v", notified, res.Servers)
	}
	if s := res.Stats; s.Valid != 9 || s.Duplicates != 7 {
		t.Errorf("stats %+v, want 9 valid, 7 duplicates", s)
	}
}

// TestRoundNotifyNil: a nil callback is Round.
func TestRoundNotifyNil(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	o := testOptions(p)
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil)
	res, err := settledRound(t, c, 1, func(*settler) (Result, error) { return c.RoundNotify(context.Background(), nil) })
	if err != nil || !slices.Equal(endpoints(res.Servers), []string{"10.213.0.2:8000"}) {
		t.Fatalf("RoundNotify(nil) = %v, %v", endpoints(res.Servers), err)
	}
}
