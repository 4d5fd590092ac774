package checker

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// proberFunc is a Prober.
type proberFunc func(ctx context.Context, addr netip.AddrPort) appcheck.Result

func (f proberFunc) Check(ctx context.Context, addr netip.AddrPort) appcheck.Result {
	return f(ctx, addr)
}

// fakeProber answers each address as told (pass unless failing), and can
// hold checks until the test releases them; it counts the checks, and the
// most in flight at once, overall and per address.
type fakeProber struct {
	mu          sync.Mutex
	failing     map[netip.AddrPort]bool
	hold        map[netip.AddrPort]bool // checks of it wait for release
	release     chan struct{}           // one token lets one held check finish
	calls       map[netip.AddrPort]int
	inFlight    int
	maxInFlight int
	held        int // checks waiting for release now
	perAddr     map[netip.AddrPort]int
	maxPerAddr  int
	holdAll     bool
}

func newFakeProber() *fakeProber {
	return &fakeProber{failing: map[netip.AddrPort]bool{}, hold: map[netip.AddrPort]bool{}, release: make(chan struct{}, 1024),
		calls: map[netip.AddrPort]int{}, perAddr: map[netip.AddrPort]int{}}
}

func (p *fakeProber) Check(ctx context.Context, addr netip.AddrPort) appcheck.Result {
	p.mu.Lock()
	p.calls[addr]++
	n := p.calls[addr]
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	p.perAddr[addr]++
	p.maxPerAddr = max(p.maxPerAddr, p.perAddr[addr])
	hold, failing := p.holdAll || p.hold[addr], p.failing[addr]
	p.mu.Unlock()
	if hold {
		p.mu.Lock()
		p.held++
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.held--
			p.mu.Unlock()
		}()
		select {
		case <-p.release:
		case <-ctx.Done():
		}
	}
	p.mu.Lock()
	p.inFlight--
	p.perAddr[addr]--
	p.mu.Unlock()
	out := fmt.Sprintf("check %d of %v", n, addr)
	if failing {
		return appcheck.Result{Status: 503, Reason: "503 Service Unavailable", Latency: time.Millisecond, Output: out + ": fail"}
	}
	return appcheck.Result{OK: true, Status: 200, Reason: "200 OK", Latency: time.Millisecond, Output: out + ": pass"}
}

func (p *fakeProber) set(addr netip.AddrPort, failing bool) {
	p.mu.Lock()
	p.failing[addr] = failing
	p.mu.Unlock()
}

func (p *fakeProber) setHold(addr netip.AddrPort, hold bool) {
	p.mu.Lock()
	p.hold[addr] = hold
	p.mu.Unlock()
}

func (p *fakeProber) callsOf(addr netip.AddrPort) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[addr]
}

func (p *fakeProber) heldNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

func (p *fakeProber) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		n += c
	}
	return n
}

// harness runs Checks on a manual clock.
type harness struct {
	t    *testing.T
	clk  *clocktest.Clock
	c    *Checks
	p    *fakeProber
	reg  *prometheus.Registry
	logs *lockedBuffer
	// inFlight is how many held checks settle expects.
	inFlight int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testOptions: checks every 10 s, a 1 s timeout, rise 2, fall 3, 4 in
// flight, no jitter.
func testOptions() appcheck.Options {
	o := appcheck.DefaultOptions()
	o.Kind, o.Interval, o.Timeout, o.Concurrency, o.Jitter = appcheck.TCP, 10*time.Second, time.Second, 4, 0
	return o
}

func start(t *testing.T, o appcheck.Options, rnd func() float64) *harness {
	t.Helper()
	h := &harness{t: t, clk: clocktest.New(t0), p: newFakeProber(), reg: prometheus.NewRegistry(), logs: &lockedBuffer{}}
	c, err := New(Config{Options: o, Prober: h.p, Clock: h.clk, Log: zerolog.New(h.logs).Level(zerolog.DebugLevel),
		Registerer: h.reg, Rand: rnd})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	h.settle()
	return h
}

// settle waits until the scheduler can move no further without the test:
// every check started has finished and been applied but the h.inFlight
// held ones, which are in the prober, and no timer is due.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !h.c.quiet(h.inFlight) || h.p.heldNow() != h.inFlight {
		if time.Now().After(deadline) {
			h.t.Fatalf("the scheduler did not settle with %d checks in flight", h.inFlight)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// waitCalls waits until n checks were started.
func (h *harness) waitCalls(n int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.p.total() < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d checks started, want %d", h.p.total(), n)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// advance moves the clock and settles.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clk.Advance(d)
	h.settle()
}

func (h *harness) targets(addrs ...netip.AddrPort) {
	h.t.Helper()
	eps := make([]endpoint.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = endpoint.Endpoint{Addr: a}
	}
	h.c.SetTargets(eps)
	h.settle()
}

func (h *harness) state(a netip.AddrPort) endpoint.Health {
	h.t.Helper()
	hist, ok := h.c.Explain(a)
	if !ok {
		h.t.Fatalf("%v is not checked", a)
	}
	return hist.State
}

// changed reports whether Changed was signalled, taking the signal.
func (h *harness) changed() bool {
	select {
	case <-h.c.Changed():
		return true
	default:
		return false
	}
}

func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "udp_discovery_bridge_"+name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	h.t.Fatalf("no metric %s %v", name, labels)
	return 0
}

func TestRiseFall(t *testing.T) {
	h := start(t, testOptions(), nil)
	h.targets(addrA)
	// Jitter 0: the first check at once, a pass; rise 2: still pending.
	if n := h.p.callsOf(addrA); n != 1 {
		t.Fatalf("%d checks at once, want 1", n)
	}
	if h.state(addrA) != endpoint.Pending || h.changed() {
		t.Fatal("one pass turned the server")
	}
	h.advance(9 * time.Second)
	if n := h.p.callsOf(addrA); n != 1 {
		t.Fatalf("%d checks after 9 s, want 1 (interval 10 s)", n)
	}
	h.advance(time.Second)
	if h.state(addrA) != endpoint.Ready || !h.changed() {
		t.Fatal("two passes did not make it ready, or Changed was not signalled")
	}
	readyAt := h.clk.Now()
	d := h.c.Decorate(endpoint.Snapshot{Endpoints: []endpoint.Endpoint{{Addr: addrA}}})
	if d.Endpoints[0].Check != (endpoint.Check{State: endpoint.Ready, Output: "check 2 of " + addrA.String() + ": pass", Since: readyAt}) {
		t.Errorf("decorated %+v", d.Endpoints[0].Check)
	}
	h.p.set(addrA, true)
	for i := range 2 {
		h.advance(10 * time.Second)
		if h.state(addrA) != endpoint.Ready || h.changed() {
			t.Fatalf("%d failures turned it (fall 3)", i+1)
		}
		if d := h.c.Decorate(endpoint.Snapshot{Endpoints: []endpoint.Endpoint{{Addr: addrA}}}); !d.Endpoints[0].Check.Since.Equal(readyAt) {
			t.Fatalf("Check changed without a transition: %+v", d.Endpoints[0].Check)
		}
	}
	h.advance(10 * time.Second)
	if h.state(addrA) != endpoint.Failing || !h.changed() {
		t.Fatal("three failures did not make it failing")
	}
	hist, _ := h.c.Explain(addrA)
	if hist.Fails != 3 || hist.Passes != 0 || len(hist.Last) != 5 || hist.Output != "check 5 of "+addrA.String()+": fail" || hist.Checking {
		t.Errorf("history %+v", hist)
	}
	h.p.set(addrA, false)
	h.advance(10 * time.Second)
	h.advance(10 * time.Second)
	if h.state(addrA) != endpoint.Ready {
		t.Fatal("two passes did not bring it back")
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"app_checks_total", []string{"result", "pass"}, 4},
		{"app_checks_total", []string{"result", "fail"}, 3},
		{"app_check_duration_seconds", nil, 7},
		{"app_check_transitions_total", []string{"to", "ready"}, 2},
		{"app_check_transitions_total", []string{"to", "failing"}, 1},
		{"app_check_transitions_total", []string{"to", "pending"}, 1},
		{"servers_by_health", []string{"state", "ready"}, 1},
		{"servers_by_health", []string{"state", "failing"}, 0},
		{"servers_by_health", []string{"state", "pending"}, 0},
		{"app_checks_skipped_total", []string{"reason", "in_flight"}, 0},
		{"app_check_late_seconds", nil, 0},
	} {
		if got := h.metric(m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	logs := h.logs.String()
	for _, want := range []string{
		`"level":"info","addr":"192.0.2.1:8000","from":"pending","to":"ready","output":"check 2 of 192.0.2.1:8000: pass","message":"server turned ready"`,
		`"from":"ready","to":"failing","output":"check 5 of 192.0.2.1:8000: fail","message":"server turned failing"`,
		`"from":"failing","to":"ready","output":"check 7 of 192.0.2.1:8000: pass"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "server turned"); n != 3 {
		t.Errorf("%d transition lines, want 3:\n%s", n, logs)
	}
}

// TestConcurrency: 20 targets due at once, 4 workers: never more than 4
// in flight, the other 16 wait (and are counted late), and all are
// checked.
func TestConcurrency(t *testing.T) {
	h := start(t, testOptions(), nil)
	h.p.holdAll = true
	var addrs []netip.AddrPort
	for i := range 20 {
		addrs = append(addrs, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 80))
	}
	h.inFlight = 4
	h.targets(addrs...)
	for done := 0; done < 20; done += 4 {
		if got := h.p.total(); got != done+4 {
			t.Fatalf("%d checks started with %d done, want %d", got, done, done+4)
		}
		// Releasing 4 starts the next 4: wait for them to be held.
		for range 4 {
			h.p.release <- struct{}{}
		}
		if done+4 == 20 {
			h.inFlight = 0
		} else {
			h.waitCalls(done + 8)
		}
		h.settle()
	}
	if h.p.maxInFlight != 4 || h.p.total() != 20 {
		t.Errorf("%d checks, at most %d in flight; want 20, at most 4", h.p.total(), h.p.maxInFlight)
	}
	if got := h.metric("app_check_late_seconds"); got != 16 {
		t.Errorf("%v late checks, want 16", got)
	}
}

// TestSlowCheck: a check slower than the interval is not run twice at
// once: the due ones are skipped (and counted) until it is over.
func TestSlowCheck(t *testing.T) {
	h := start(t, testOptions(), nil)
	h.p.setHold(addrA, true)
	h.inFlight = 1
	h.targets(addrA, addrB)
	if hist, _ := h.c.Explain(addrA); !hist.Checking {
		t.Error("Explain does not say the check is in flight")
	}
	h.advance(10 * time.Second)
	h.advance(10 * time.Second)
	if n, m := h.p.callsOf(addrA), h.p.callsOf(addrB); n != 1 || m != 3 {
		t.Fatalf("%d checks of the slow server, %d of the other; want 1 and 3", n, m)
	}
	if got := h.metric("app_checks_skipped_total", "reason", "in_flight"); got != 2 {
		t.Errorf("%v skipped, want 2", got)
	}
	h.p.setHold(addrA, false)
	h.p.release <- struct{}{}
	h.inFlight = 0
	h.settle()
	if hist, _ := h.c.Explain(addrA); hist.Checking || hist.Passes != 1 {
		t.Errorf("after the slow check: %+v", hist)
	}
	// The next check is an interval after the last skip.
	h.advance(10 * time.Second)
	if n := h.p.callsOf(addrA); n != 2 {
		t.Errorf("%d checks, want 2", n)
	}
	if h.p.maxPerAddr != 1 {
		t.Errorf("%d checks of one server at once", h.p.maxPerAddr)
	}
}

// TestDropMidCheck: a target dropped while its check runs: the result is
// ignored; added again meanwhile, it starts pending, and its first check
// waits for the old one to end.
func TestDropMidCheck(t *testing.T) {
	o := testOptions()
	o.Rise = 1
	h := start(t, o, nil)
	h.p.setHold(addrA, true)
	h.inFlight = 1
	h.targets(addrA)
	h.targets()
	if _, ok := h.c.Explain(addrA); ok {
		t.Fatal("a dropped target is explained")
	}
	d := h.c.Decorate(endpoint.Snapshot{At: t0, Endpoints: []endpoint.Endpoint{{Addr: addrA}}})
	if d.Endpoints[0].Check.State != endpoint.Pending || !d.Endpoints[0].Check.Since.Equal(t0) {
		t.Errorf("an unknown address decorated %+v, want pending", d.Endpoints[0].Check)
	}
	h.targets(addrA) // a new life while the old check still runs
	if n := h.p.callsOf(addrA); n != 1 {
		t.Fatalf("%d checks: a second one started beside the first", n)
	}
	h.p.setHold(addrA, false)
	h.p.release <- struct{}{}
	h.inFlight = 0
	h.settle()
	hist, ok := h.c.Explain(addrA)
	if !ok || hist.State != endpoint.Pending || len(hist.Last) != 0 || h.changed() {
		t.Fatalf("the old life's pass was recorded: %+v", hist)
	}
	if got := h.metric("servers_by_health", "state", "pending"); got != 1 {
		t.Errorf("%v pending, want 1", got)
	}
	h.advance(10 * time.Second)
	if h.state(addrA) != endpoint.Ready || !h.changed() {
		t.Error("the new life's first pass (rise 1) did not make it ready")
	}
	if h.p.maxPerAddr != 1 {
		t.Errorf("%d checks of one server at once", h.p.maxPerAddr)
	}
}

func TestDecorate(t *testing.T) {
	h := start(t, testOptions(), nil)
	h.targets(addrA)
	h.advance(10 * time.Second) // ready
	in := endpoint.Snapshot{Round: 7, At: t0, Endpoints: []endpoint.Endpoint{
		{Addr: addrA, Interface: "eth0"},
		{Addr: addrB, Interface: "eth1"},
	}}
	before := endpoint.Snapshot{Round: in.Round, At: in.At, Endpoints: append([]endpoint.Endpoint(nil), in.Endpoints...)}
	out := h.c.Decorate(in)
	if !reflect.DeepEqual(in, before) {
		t.Fatalf("Decorate modified its input: %+v", in)
	}
	if &out.Endpoints[0] == &in.Endpoints[0] {
		t.Fatal("Decorate returned the input's endpoints")
	}
	if out.Round != 7 || !out.At.Equal(t0) || out.Endpoints[0].Interface != "eth0" || out.Endpoints[1].Interface != "eth1" {
		t.Errorf("Decorate lost fields: %+v", out)
	}
	if out.Endpoints[0].Check.State != endpoint.Ready || out.Endpoints[1].Check.State != endpoint.Pending {
		t.Errorf("checks %+v", out.Endpoints)
	}
	if out := h.c.Decorate(endpoint.Snapshot{}); len(out.Endpoints) != 0 {
		t.Errorf("an empty snapshot decorated %+v", out)
	}
}

// seq returns a Rand that yields vals in turn, then 0.5.
func seq(vals ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(vals) == 0 {
			return 0.5
		}
		v := vals[0]
		vals = vals[1:]
		return v
	}
}

// TestJitter: new targets' first checks spread over Interval × Jitter;
// later ones Interval ± Jitter × Interval after the previous start, never
// less than Timeout.
func TestJitter(t *testing.T) {
	o := testOptions()
	o.Jitter = 0.5
	addrs := []netip.AddrPort{addrA, addrB, netip.MustParseAddrPort("192.0.2.3:80"), netip.MustParseAddrPort("192.0.2.4:80")}
	// First checks: 0, 0.25, 0.5, 0.75 of 5 s; then the gaps, drawn as
	// the checks start: A r 0 (5 s), B 0.999 (14.99 s), C and D 0.5
	// (10 s), and 0.5 from then on.
	h := start(t, o, seq(0, 0.25, 0.5, 0.75, 0, 0.999, 0.5, 0.5))
	h.targets(addrs...)
	calls := func() []int {
		out := make([]int, len(addrs))
		for i, a := range addrs {
			out[i] = h.p.callsOf(a)
		}
		return out
	}
	steps := []struct {
		at   time.Duration
		want []int
	}{
		{0, []int{1, 0, 0, 0}},
		{1249 * time.Millisecond, []int{1, 0, 0, 0}},
		{1250 * time.Millisecond, []int{1, 1, 0, 0}},
		{2500 * time.Millisecond, []int{1, 1, 1, 0}},
		{3750 * time.Millisecond, []int{1, 1, 1, 1}},
		{5 * time.Second, []int{2, 1, 1, 1}},          // A: 0 + 5 s
		{12500 * time.Millisecond, []int{2, 1, 2, 1}}, // C: 2.5 + 10 s
		{13750 * time.Millisecond, []int{2, 1, 2, 2}}, // D: 3.75 + 10 s
		{15 * time.Second, []int{3, 1, 2, 2}},         // A: 5 + 10 s
		{16200 * time.Millisecond, []int{3, 1, 2, 2}}, // B: 1.25 + 14.99 s
		{16300 * time.Millisecond, []int{3, 2, 2, 2}},
	}
	var now time.Duration
	for _, s := range steps {
		h.advance(s.at - now)
		now = s.at
		if got := calls(); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("at %v: checks %v, want %v", s.at, got, s.want)
		}
	}

	// Jitter 1 and r 0 would make a gap of 0: it is Timeout.
	o.Jitter = 1
	c, err := New(Config{Options: o, Prober: newFakeProber(), Rand: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	if g := c.gap(); g != o.Timeout {
		t.Errorf("gap %v, want the timeout %v", g, o.Timeout)
	}
	c.rand = func() float64 { return 0.75 }
	if g := c.gap(); g != 15*time.Second {
		t.Errorf("gap %v, want 15s", g)
	}
	if g := c.firstGap(); g != 7500*time.Millisecond {
		t.Errorf("first gap %v, want 7.5s", g)
	}
}

// TestBatch: transitions recorded together are published together:
// Changed signalled once, and more than five logged as five lines at
// info, a summary, and the rest at debug. Within flushEvery of a
// publication, the next waits for its end.
func TestBatch(t *testing.T) {
	o := testOptions()
	o.Rise, o.Fall = 1, 1
	logs := &lockedBuffer{}
	clk := clocktest.New(t0)
	c, err := New(Config{Options: o, Prober: newFakeProber(), Clock: clk, Log: zerolog.New(logs).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []job
	for i := range 9 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(9 - i)}), 80)
		tg, _ := c.tr.add(a, t0) // followed, with no check scheduled
		jobs = append(jobs, job{addr: a, gen: tg.gen})
	}
	for i, j := range jobs {
		r := appcheck.Result{Output: "fail " + j.addr.String()}
		if i >= 7 {
			r = appcheck.Result{OK: true, Output: "pass " + j.addr.String()}
		}
		c.record(j, r)
	}
	publish := func() bool {
		next, ok, tns, count := c.step()
		if len(tns) > 0 {
			c.publish(tns, count)
			return true
		}
		if !ok || next.After(clk.Now().Add(flushEvery)) {
			t.Fatalf("transitions held, next step at %v (%v), want within %v", next, ok, flushEvery)
		}
		return false
	}
	if !publish() || len(c.Changed()) != 1 {
		t.Fatalf("Changed holds %d signals, want 1", len(c.Changed()))
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var info, debug []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, `"level":"info"`):
			info = append(info, l)
		case strings.Contains(l, `"level":"debug"`):
			debug = append(debug, l)
		}
	}
	if len(info) != 6 || len(debug) != 4 {
		t.Fatalf("%d info and %d debug lines, want 6 and 4:\n%s", len(info), len(debug), logs)
	}
	// In address order: 192.0.2.1 and .2 turned ready, .3 to .9 failing.
	if !strings.Contains(info[0], `"addr":"192.0.2.1:80"`) || !strings.Contains(info[4], `"addr":"192.0.2.5:80"`) {
		t.Errorf("info lines not in address order:\n%s", strings.Join(info, "\n"))
	}
	want := `"failing":7,"ready":2,"servers":9,"message":"9 servers changed health: 7 failing: 192.0.2.3:80, 192.0.2.4:80, 192.0.2.5:80, 192.0.2.6:80, 192.0.2.7:80 (and 2 more); 2 ready: 192.0.2.1:80, 192.0.2.2:80"`
	if !strings.Contains(info[5], want) {
		t.Errorf("summary %s\nwant %s", info[5], want)
	}

	// One way only, within flushEvery of the last publication: held
	// until its end.
	logs.mu.Lock()
	logs.b.Reset()
	logs.mu.Unlock()
	<-c.Changed()
	clk.Advance(flushEvery / 2)
	for _, j := range jobs[:7] {
		c.record(j, appcheck.Result{OK: true, Output: "pass"})
	}
	if publish() || len(c.Changed()) != 0 || logs.String() != "" {
		t.Fatalf("published within flushEvery: %d signals, logs %s", len(c.Changed()), logs)
	}
	clk.Advance(flushEvery / 2)
	if !publish() || len(c.Changed()) != 1 {
		t.Fatal("not published at the end of flushEvery")
	}
	if !strings.Contains(logs.String(), `"message":"7 servers turned ready: 192.0.2.3:80, 192.0.2.4:80, 192.0.2.5:80, 192.0.2.6:80, 192.0.2.7:80 (and 2 more)"`) {
		t.Errorf("summary:\n%s", logs)
	}
	// Results that change nothing publish nothing.
	<-c.Changed()
	clk.Advance(flushEvery)
	for _, j := range jobs[:7] {
		c.record(j, appcheck.Result{OK: true, Output: "pass"})
	}
	if _, _, tns, _ := c.step(); len(tns) != 0 || len(c.Changed()) != 0 {
		t.Error("published without a transition")
	}
}

// TestSlack: one wakeup starts the checks due within the slack
// (Interval / 100, at most 50 ms) after the one that woke it, and no more.
func TestSlack(t *testing.T) {
	o := testOptions()
	o.Jitter = 0.01 // first checks within 100 ms
	addrC := netip.MustParseAddrPort("192.0.2.3:80")
	// A at 0, B at 40 ms, C at 60 ms.
	h := start(t, o, seq(0, 0.4, 0.6))
	if h.c.slack != 50*time.Millisecond {
		t.Fatalf("slack %v, want 50ms", h.c.slack)
	}
	h.targets(addrA, addrB, addrC)
	if a, b, c := h.p.callsOf(addrA), h.p.callsOf(addrB), h.p.callsOf(addrC); a != 1 || b != 1 || c != 0 {
		t.Fatalf("checks %d %d %d, want A and B at once, C later", a, b, c)
	}
	h.advance(59 * time.Millisecond)
	if h.p.callsOf(addrC) != 0 {
		t.Fatal("C checked before its time")
	}
	h.advance(time.Millisecond)
	if h.p.callsOf(addrC) != 1 {
		t.Fatal("C not checked when due")
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(Config{Options: appcheck.DefaultOptions()}); err == nil {
		t.Error("New with app_check none succeeded")
	}
	o := testOptions()
	o.Fall = 0
	if _, err := New(Config{Options: o}); err == nil || !strings.Contains(err.Error(), "app_check_fall") {
		t.Errorf("New with fall 0 = %v, want an error naming app_check_fall", err)
	}
	o = testOptions()
	o.Kind, o.CAFile = appcheck.HTTPS, "/nonexistent/ca.pem"
	if _, err := New(Config{Options: o}); err == nil || !strings.Contains(err.Error(), "app_check_ca_file") {
		t.Errorf("New with a missing CA file = %v, want an error naming app_check_ca_file", err)
	}
	// The default Prober is the real Checker.
	c, err := New(Config{Options: testOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.prober.(*appcheck.Checker); !ok {
		t.Errorf("default prober %T", c.prober)
	}
	_ = testutil.ToFloat64
}

// TestStop: with every worker held in a check, SetTargets, Decorate and
// Explain still return; Run returns once ctx ends (the checks honour it).
func TestStop(t *testing.T) {
	o := testOptions()
	o.Concurrency = 1
	p := newFakeProber()
	p.holdAll = true
	c, err := New(Config{Options: o, Prober: p, Clock: clocktest.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	c.SetTargets([]endpoint.Endpoint{{Addr: addrA}, {Addr: addrB}})
	for p.heldNow() != 1 {
		time.Sleep(20 * time.Microsecond)
	}
	c.SetTargets([]endpoint.Endpoint{{Addr: addrB}})
	c.Decorate(endpoint.Snapshot{Endpoints: []endpoint.Endpoint{{Addr: addrB}}})
	c.Explain(addrB)
	cancel()
	<-done
}
