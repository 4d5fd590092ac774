package discover

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestScanCursorWalksEveryHostOncePerCycle(t *testing.T) {
	// A /30 (2 hosts: never .0 or .3), a /31 (both), a /32 (itself): 5 hosts.
	c := newScanCursor(prefixes("10.0.0.0/30", "10.0.1.0/31", "10.0.2.5/32"))
	if c.total != 5 {
		t.Fatalf("total = %d, want 5", c.total)
	}
	take := func(n int) (got []netip.Addr, wraps int) {
		for range n {
			h, w := c.next()
			got = append(got, h)
			if w {
				wraps++
			}
		}
		return got, wraps
	}
	for _, step := range []struct {
		n          int
		want       []netip.Addr
		wraps      int
		pos        uint64
		cycles     uint64
		progress   float64
		roundLabel string
	}{
		{3, addrs("10.0.0.1", "10.0.0.2", "10.0.1.0"), 0, 3, 0, 0.6, "first round"},
		{2, addrs("10.0.1.1", "10.0.2.5"), 1, 0, 1, 0, "second round ends the cycle"},
		{4, addrs("10.0.0.1", "10.0.0.2", "10.0.1.0", "10.0.1.1"), 0, 4, 1, 0.8, "third round starts cycle 2"},
		{2, addrs("10.0.2.5", "10.0.0.1"), 1, 1, 2, 0.2, "wraps within a round"},
	} {
		got, wraps := take(step.n)
		if !slices.Equal(got, step.want) || wraps != step.wraps || c.pos != step.pos || c.cycles != step.cycles || c.progress() != step.progress {
			t.Errorf("%s: hosts %v wraps %d pos %d cycles %d progress %v; want %v %d %d %d %v",
				step.roundLabel, got, wraps, c.pos, c.cycles, c.progress(), step.want, step.wraps, step.pos, step.cycles, step.progress)
		}
	}
}

func TestScanCursorLargeAndEmpty(t *testing.T) {
	c := newScanCursor(prefixes("10.213.0.0/16"))
	if c.total != 65534 || c.at(0) != netip.MustParseAddr("10.213.0.1") || c.at(65533) != netip.MustParseAddr("10.213.255.254") {
		t.Errorf("/16: total %d, first %v, last %v", c.total, c.at(0), c.at(65533))
	}
	var z scanCursor
	if h, w := z.next(); h.IsValid() || w || z.progress() != 0 {
		t.Errorf("empty cursor: %v %v %v", h, w, z.progress())
	}
}

func TestPacerSchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	p := newPacer(1000) // one per ms
	for _, step := range []struct {
		now  time.Duration
		want time.Duration
		what string
	}{
		{0, 0, "first event goes at once"},
		{0, time.Millisecond, "second is due 1 ms later"},
		{0, 2 * time.Millisecond, "third 2 ms later"},
		{3 * time.Millisecond, 0, "on time"},
		{8 * time.Millisecond, 0, "late by 4 ms: catch up, no wait"},
		{8 * time.Millisecond, 0, "still behind (event 5 due at 5 ms)"},
		{8 * time.Millisecond, 0, "event 6 due at 6 ms"},
		{8 * time.Millisecond, 0, "event 7 due at 7 ms"},
		{8 * time.Millisecond, 0, "event 8 due at 8 ms"},
		{8 * time.Millisecond, time.Millisecond, "caught up: event 9 at 9 ms"},
		{50 * time.Millisecond, 0, "a 40 ms stall: the debt beyond the slack is forgotten"},
		{50 * time.Millisecond, time.Millisecond, "and the schedule restarts from now"},
	} {
		if got := p.take(at(step.now)); got != step.want {
			t.Errorf("%s: take(%v) = %v, want %v", step.what, step.now, got, step.want)
		}
	}

	// Above 1000/s gaps under paceMinSleep go at once, but the schedule
	// holds the average: 50 events at 50,000/s take 1 ms of schedule.
	p = newPacer(50000)
	var waits []time.Duration
	for range 51 {
		if d := p.take(t0); d > 0 {
			waits = append(waits, d)
		}
	}
	if !slices.Equal(waits, []time.Duration{time.Millisecond}) {
		t.Errorf("51 events at 50k/s at one instant: waits %v, want [1ms] (event 51 due 1 ms on)", waits)
	}
}

func TestWaitUntilOnManualClock(t *testing.T) {
	clk := clocktest.New(time.Unix(1000, 0))
	deadline := clk.Now().Add(10 * time.Millisecond)
	ctx := context.Background()
	if !waitUntil(ctx, clk, 0, deadline) {
		t.Error("no wait before the deadline: want true")
	}
	if waitUntil(ctx, clk, 10*time.Millisecond, deadline) {
		t.Error("a send due at the deadline: want false, pacing stops there")
	}
	done := make(chan bool)
	go func() { done <- waitUntil(ctx, clk, 4*time.Millisecond, deadline) }()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Millisecond)
	// Its timer has not fired, so it still waits: exact, where a real
	// pause would only give a wrong return the chance to show.
	if clk.Pending() != 1 {
		t.Fatal("the timer fired before its time")
	}
	select {
	case <-done:
		t.Fatal("returned before its time")
	default:
	}
	clk.Advance(time.Millisecond)
	if !<-done {
		t.Error("waited its time: want true")
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- waitUntil(cctx, clk, 4*time.Millisecond, deadline.Add(time.Hour)) }()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if <-done {
		t.Error("cancelled: want false")
	}
}

func TestNeighParamsOnLinkRate(t *testing.T) {
	d := DefaultNeighParams
	if d.Lifetime() != 18*time.Second || d.Limit() != 256 {
		t.Errorf("defaults: lifetime %v limit %d, want 18s 256", d.Lifetime(), d.Limit())
	}
	if got := d.OnLinkRate(); got < 7.11 || got > 7.12 {
		t.Errorf("default on-link rate %v, want (256-128)/18 = 7.11", got)
	}
	big := d
	big.GCThresh3 = 16384
	if got := big.OnLinkRate(); got < 220.4 || got > 220.5 {
		t.Errorf("gc_thresh3 16384: rate %v, want (4096-128)/18 = 220.4", got)
	}
	tight := d
	tight.GCThresh3 = 256 // limit 64 <= gc_thresh1
	if got := tight.OnLinkRate(); got != 32.0/18 {
		t.Errorf("limit under gc_thresh1: rate %v, want 32/18", got)
	}
}

// scanClient is a client whose probes go to a hook that records them.
func scanClient(t *testing.T, o Options, ifs []iface.Interface) (*Client, func() []netip.AddrPort) {
	t.Helper()
	c := newClient(t, o, iface.ListerFunc(func() ([]iface.Interface, error) { return ifs, nil }), nil)
	c.neigh = func() NeighParams { return DefaultNeighParams }
	var mu sync.Mutex
	var sent []netip.AddrPort
	c.sendHook = func(_ *net.UDPConn, _ []byte, dst netip.AddrPort) error {
		mu.Lock()
		sent = append(sent, dst)
		mu.Unlock()
		return nil
	}
	return c, func() []netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(sent)
		sent = sent[:0]
		return out
	}
}

var routedIf = iface.Interface{
	Name: "eth0", Index: 77, Addr: netip.MustParseAddr("10.213.1.10"),
	Prefix: netip.MustParsePrefix("10.213.1.0/24"), Broadcast: netip.MustParseAddr("10.213.1.255"), Up: true,
}

func TestRoundScanContinuesAcrossRoundsWithKeepAlives(t *testing.T) {
	o := testOptions(9999)
	o.Timeout, o.Settle, o.Retries = 120*time.Millisecond, 0, 0
	o.SubnetScan, o.ScanRate = true, 100                     // ~12 probes a round
	o.ScanCIDRs = prefixes("10.213.4.0/27", "10.213.1.8/30") // 30 routed hosts + 2 on our LAN, one of them us
	c, sent := scanClient(t, o, []iface.Interface{routedIf})
	bcast := netip.MustParseAddrPort("10.213.1.255:9999")

	var order []netip.Addr
	var cycles, rounds int
	for cycles == 0 && rounds < 20 {
		res, err := c.Round(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rounds++
		cycles += res.Stats.ScanCycles
		st := res.Stats
		if st.ScanHosts != 32 || st.ScanCovered < st.ScanTargets || st.ScanCovered > 32 || st.ScanKeepAlives != 0 {
			t.Errorf("round %d stats %+v", rounds, st)
		}
		for _, d := range sent() {
			if d != bcast {
				order = append(order, d.Addr())
			}
		}
	}
	if cycles != 1 || rounds < 2 {
		t.Fatalf("%d cycles in %d rounds, want 1 cycle over several rounds", cycles, rounds)
	}
	// The cycle: 31 probes, in order, each host once, never our own
	// 10.213.1.10 (the on-link 10.213.1.9 is paced at the on-link rate but
	// scanned all the same). The round that ended it went on into the next.
	var want []netip.Addr
	for i := 1; i <= 30; i++ {
		want = append(want, netip.AddrFrom4([4]byte{10, 213, 4, byte(i)}))
	}
	want = append(want, netip.MustParseAddr("10.213.1.9"))
	if len(order) < 31 || !slices.Equal(order[:31], want) {
		t.Errorf("probes of the first cycle %v, want %v", order, want)
	} else if rest := order[31:]; len(rest) > 0 && rest[0] != want[0] {
		t.Errorf("the next cycle starts with %v, want %v", rest[0], want[0])
	}

	// Keep-alives: a server outside broadcast reach (10.213.4.20) is probed
	// first in every round; one on the LAN (10.213.1.50) is not, and
	// duplicates are probed once.
	c.KeepAlive([]netip.AddrPort{
		netip.MustParseAddrPort("10.213.4.20:9999"), netip.MustParseAddrPort("10.213.1.50:9999"),
		netip.MustParseAddrPort("10.213.4.20:9999"),
	})
	for range 3 {
		res, err := c.Round(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := sent()
		if res.Stats.ScanKeepAlives != 1 || len(got) < 2 || got[1] != netip.MustParseAddrPort("10.213.4.20:9999") {
			t.Errorf("keep-alives %d, sent %v: want the broadcast, then 10.213.4.20 first", res.Stats.ScanKeepAlives, got)
		}
		if slices.Contains(got, netip.MustParseAddrPort("10.213.1.50:9999")) {
			t.Errorf("kept alive a server in broadcast reach: %v", got)
		}
	}
	c.KeepAlive(nil)
	if res, _ := c.Round(context.Background()); res.Stats.ScanKeepAlives != 0 {
		t.Errorf("after KeepAlive(nil): %d keep-alives", res.Stats.ScanKeepAlives)
	}
}

func TestRoundScanSmallNetworkOncePerRound(t *testing.T) {
	o := testOptions(9999)
	o.Timeout, o.Settle, o.Retries = longRound, 20*time.Millisecond, 0
	o.SubnetScan, o.ScanRate = true, 10000
	o.ScanCIDRs = prefixes("10.213.4.0/29")
	c, sent := scanClient(t, o, []iface.Interface{routedIf})
	var logs logBuf
	c.log = newLogger(logs.debugLogger())
	// The settle timer is armed once the scan is done (nothing answers).
	res, err := settledRoundOf(t, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := sent(); len(got) != 7 || res.Stats.ScanTargets != 6 || res.Stats.ScanCycles != 1 || res.Stats.ScanProgress != 0 {
		t.Errorf("sent %v, stats %+v; want the broadcast and the 6 hosts once, one cycle", got, res.Stats)
	}
	// The round's deadline is 10 minutes off: Settle ended it once the
	// scan was done, as its log says.
	if n := logs.count("round settled"); n != 1 {
		t.Errorf("round not ended by Settle once the scan was done (%d settle logs):\n%s", n, logs.b.String())
	}
}

func TestRoundScanStopsAtDeadline(t *testing.T) {
	// A huge routed network at a rate far above what fits, with sends that
	// block (a hook sleeping like a full socket buffer): the round still
	// ends at its deadline, with the scan stopped at its stop time and no
	// send left running. Every check is a count or a lower bound, which
	// load cannot break; TestScanBlockedSends pins the stop on a manual
	// clock.
	o := testOptions(9999)
	o.Timeout, o.Settle, o.Retries = 150*time.Millisecond, 0, 0
	o.SubnetScan, o.ScanRate = true, 1_000_000
	o.ScanCIDRs = prefixes("10.50.0.0/16")
	c, _ := scanClient(t, o, []iface.Interface{routedIf})
	const block = 5 * time.Millisecond
	var inFlight, afterReturn atomic.Int64
	var returned atomic.Bool
	hook := c.sendHook
	c.sendHook = func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error {
		if dst.Addr() != routedIf.Broadcast {
			if returned.Load() {
				afterReturn.Add(1)
			}
			inFlight.Add(1)
			defer inFlight.Add(-1)
			time.Sleep(block)
		}
		return hook(conn, b, dst)
	}
	var res Result
	var err error
	var left int64
	noHang(t, "a round of blocking scan sends", func() {
		res, err = c.Round(context.Background())
		left = inFlight.Load()
		returned.Store(true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 || afterReturn.Load() != 0 {
		t.Errorf("%d sends running as Round returned, %d started after: want Round to wait for the one in flight", left, afterReturn.Load())
	}
	// The deadline ended the round: not before Timeout.
	if res.Duration < o.Timeout {
		t.Errorf("round took %v, want its whole %v timeout", res.Duration, o.Timeout)
	}
	// Sends go one at a time, each blocks for at least 5 ms, and none
	// starts at or after the scan's stop time, Timeout less its reply
	// margin: 135 ms hold at most 27 of them, however late each one is.
	maxSends := int((o.Timeout-scanReplyMargin(o.Timeout)-1)/block) + 1
	st := res.Stats
	if st.ScanTargets == 0 || st.ScanTargets > maxSends || st.ScanCovered != st.ScanTargets || st.ScanProgress <= 0 {
		t.Errorf("stats %+v, want 1..%d hosts scanned", st, maxSends)
	}
}

// TestScanBlockedSends: sends that block on the scan's pacing clock (a
// manual one here) stretch the round by at most the one in flight. No
// send starts at or after the stop time (the deadline less the reply
// margin), none once the round's ctx is done, and a send that failed at
// the socket's write deadline ends the scan.
func TestScanBlockedSends(t *testing.T) {
	o := testOptions(9999)
	o.Timeout, o.Settle, o.Retries = 150*time.Millisecond, 0, 0
	o.SubnetScan, o.ScanRate = true, 1_000_000
	o.ScanCIDRs = prefixes("10.50.0.0/16")
	ifs := []iface.Interface{routedIf}
	hosts := func(n int) []netip.AddrPort {
		var out []netip.AddrPort
		for i := 1; i <= n; i++ {
			out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 50, 0, byte(i)}), 9999))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		// send is what a scan send does beside being recorded: it is
		// told how many were sent before it and may move the clock,
		// cancel the round or fail.
		send func(clk *clocktest.Clock, cancel func(), before int) error
		want []netip.AddrPort
	}{
		{"blocked past the stop time", func(clk *clocktest.Clock, _ func(), _ int) error {
			// Each send blocks for 35 ms: they start at 0, 35, 70 and
			// 105 ms; the fourth ends at 140 ms, past the 135 ms stop
			// time, and no fifth starts, though the 150 ms deadline is
			// still ahead.
			clk.Advance(35 * time.Millisecond)
			return nil
		}, hosts(4)},
		{"round over during a send", func(_ *clocktest.Clock, cancel func(), before int) error {
			if before == 1 {
				cancel() // the receiver ended the round while this send blocked
			}
			return nil
		}, hosts(2)},
		{"write deadline", func(*clocktest.Clock, func(), int) error {
			return os.ErrDeadlineExceeded
		}, hosts(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sent := scanClient(t, o, ifs)
			clk := clocktest.New(time.Unix(1000, 0))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hook, n := c.sendHook, 0
			c.sendHook = func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error {
				before := n
				n++
				if err := hook(conn, b, dst); err != nil {
					return err
				}
				return tc.send(clk, cancel, before)
			}
			r := newRound(c, nil, ifs, ifs, clk.Now(), clk.Now().Add(o.Timeout))
			r.clk = clk
			cur, ka := c.scanStart(r)
			r.keepAlive, r.onLinkRate = ka, c.neigh().OnLinkRate()
			r.adm.scanning(cur, ka)
			// A scan that does not stop sends on until the manual clock's
			// pacing blocks it for good: noHang fails it.
			noHang(t, "the scan", func() { r.scan(ctx, &cur) })
			if got := sent(); !slices.Equal(got, tc.want) {
				t.Errorf("sent %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScanPlan(t *testing.T) {
	o := testOptions(9999)
	o.Timeout = 400 * time.Millisecond
	o.SubnetScan, o.ScanRate = true, 1000
	o.ScanCIDRs = prefixes("10.213.4.0/22", "10.213.1.0/25")
	c, _ := scanClient(t, o, []iface.Interface{routedIf})
	p := c.ScanPlan()
	// 1022 routed hosts at 1000/s, 126 on-link at 7.11/s.
	rate := DefaultNeighParams.OnLinkRate()
	want := 1022.0/1000 + 126/rate
	if p.Hosts != 1148 || p.OnLink != 126 || p.OnLinkRate != rate || p.NeighLimit != 256 ||
		p.Seconds < want-1e-9 || p.Seconds > want+1e-9 || p.Rounds != 53 {
		t.Errorf("plan %+v, want 1148 hosts, 126 on-link at %v/s, %v s, 53 rounds (0.36 s of scanning each)", p, rate, want)
	}
	o.ScanCIDRs = prefixes("10.213.4.0/22")
	c, _ = scanClient(t, o, []iface.Interface{routedIf})
	if p := c.ScanPlan(); p.Hosts != 1022 || p.OnLink != 0 || p.OnLinkRate != 0 || p.Rounds != 3 {
		t.Errorf("routed plan %+v, want 1022 hosts in 3 rounds", p)
	}
}
