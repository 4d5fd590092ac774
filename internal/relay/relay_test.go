package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// TestRules: one probe each, on the host of the tests (relay on eth0:
// 10.1.0.0/24 and 192.168.50.0/24), with no delay and no limits: who gets
// which replies, and why the others get none.
func TestRules(t *testing.T) {
	other := targets("10.2.0.5", "10.3.0.7:8080")
	tests := []struct {
		name    string
		cfg     func(*Config)
		src     Targets
		d       Datagram
		want    []string // replies, to d's source
		dropped Reason
	}{
		{"on-link prober gets the other segments' servers", nil, fixed(other...),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), []string{"SERVER_IP:10.2.0.5", "SERVER_IP:10.3.0.7:8080"}, 0},
		{"on the interface's second network", nil, fixed(other...),
			probe(plainProbe, "192.168.50.9:51000", eth0Index), []string{"SERVER_IP:10.2.0.5", "SERVER_IP:10.3.0.7:8080"}, 0},

		{"arrived on an interface not relayed", nil, fixed(other...),
			probe(plainProbe, "10.2.0.20:40000", eth1Index), nil, ReasonForeignInterface},
		{"arrived on loopback", nil, fixed(other...),
			probe(plainProbe, "127.0.0.1:40000", loIndex), nil, ReasonForeignInterface},
		{"interface unknown (no IP_PKTINFO)", nil, fixed(other...),
			probe(plainProbe, "10.1.0.20:40000", 0), nil, ReasonForeignInterface},
		{"interface index of no interface", nil, fixed(other...),
			probe(plainProbe, "10.1.0.20:40000", 99), nil, ReasonForeignInterface},

		{"not the probe", nil, fixed(other...),
			probe([]byte("DISCOVER_SERVER\n"), "10.1.0.20:40000", eth0Index), nil, ReasonBadPayload},
		{"empty datagram", nil, fixed(other...),
			probe(nil, "10.1.0.20:40000", eth0Index), nil, ReasonBadPayload},

		{"broadcast address of the link as source", nil, fixed(other...),
			probe(plainProbe, "10.1.0.255:40000", eth0Index), nil, ReasonSource},
		{"network address of the link as source", nil, fixed(other...),
			probe(plainProbe, "10.1.0.0:40000", eth0Index), nil, ReasonSource},
		{"limited broadcast as source", nil, fixed(other...),
			probe(plainProbe, "255.255.255.255:40000", eth0Index), nil, ReasonSource},
		{"source port 0", nil, fixed(other...),
			probe(plainProbe, "10.1.0.20:0", eth0Index), nil, ReasonSource},

		{"forged off-link source", nil, fixed(other...),
			probe(plainProbe, "198.51.100.7:40000", eth0Index), nil, ReasonOffLink},
		{"source of another interface's network", nil, fixed(other...),
			probe(plainProbe, "10.2.0.20:40000", eth0Index), nil, ReasonOffLink},
		{"loopback source on eth0", nil, fixed(other...),
			probe(plainProbe, "127.0.0.1:40000", eth0Index), nil, ReasonOffLink},
		{"our own address", nil, fixed(other...),
			probe(plainProbe, "10.1.0.1:9999", eth0Index), nil, ReasonOwnAddress},
		{"our own second address", nil, fixed(other...),
			probe(plainProbe, "192.168.50.1:40000", eth0Index), nil, ReasonOwnAddress},

		{"source has no set", nil, TargetsFunc(func() ([]Target, time.Duration, bool) { return other, time.Hour, false }),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), nil, ReasonNoTargets},
		{"empty set", nil, fixed(),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), nil, ReasonNoTargets},
		{"set older than MaxTargetAge", func(c *Config) { c.MaxTargetAge = time.Minute },
			TargetsFunc(func() ([]Target, time.Duration, bool) { return other, time.Minute + 1, true }),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), nil, ReasonStaleTargets},
		{"set at MaxTargetAge", func(c *Config) { c.MaxTargetAge = time.Minute },
			TargetsFunc(func() ([]Target, time.Duration, bool) { return other[:1], time.Minute, true }),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), []string{"SERVER_IP:10.2.0.5"}, 0},

		{"a target on the receiving network is left out", nil, fixed(targets("10.1.0.50", "10.2.0.5", "192.168.50.60:8000")...),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), []string{"SERVER_IP:10.2.0.5"}, 0},
		{"every target on the receiving network", nil, fixed(targets("10.1.0.50", "192.168.50.60:8000")...),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), nil, ReasonNoTargets},
		{"invalid and IPv6 targets are left out", nil, fixed(append(targets("2001:db8::1", "10.2.0.5"), Target{})...),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), []string{"SERVER_IP:10.2.0.5"}, 0},
		{"4in6 target written as IPv4", nil, fixed(targets("::ffff:10.2.0.5")...),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), []string{"SERVER_IP:10.2.0.5"}, 0},

		{"custom message and prefix", func(c *Config) { c.Message, c.Prefix = []byte("HELLO"), []byte("AT ") }, fixed(other...),
			probe([]byte("HELLO"), "10.1.0.20:40000", eth0Index), []string{"AT 10.2.0.5", "AT 10.3.0.7:8080"}, 0},
		{"custom message: the default is not the probe", func(c *Config) { c.Message = []byte("HELLO") }, fixed(other...),
			probe(plainProbe, "10.1.0.20:40000", eth0Index), nil, ReasonBadPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			s := serve(t, cfg, tc.src)
			s.feed(tc.d)
			var got []string
			for _, w := range s.c.sent() {
				if w.to != tc.d.Source {
					t.Errorf("reply %q sent to %s, want %s", w.data, w.to, tc.d.Source)
				}
				got = append(got, w.data)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("replies %q, want %q", got, tc.want)
			}
			st := s.r.Stats()
			if st.Received != 1 || st.BytesIn != uint64(len(tc.d.Payload)) {
				t.Errorf("Received %d, BytesIn %d; want 1, %d", st.Received, st.BytesIn, len(tc.d.Payload))
			}
			if tc.want == nil {
				if st.Dropped[tc.dropped] != 1 || st.Dropped.Total() != 1 || st.Relayed != 0 {
					t.Errorf("Dropped %v, Relayed %d; want one %s", st.Dropped, st.Relayed, tc.dropped)
				}
				return
			}
			if st.Dropped.Total() != 0 || st.Relayed != 1 || st.Replies != uint64(len(tc.want)) {
				t.Errorf("Dropped %v, Relayed %d, Replies %d; want none, 1, %d", st.Dropped, st.Relayed, st.Replies, len(tc.want))
			}
		})
	}
}

// TestMaxReplies: a probe gets at most MaxReplies targets; consecutive
// answered probes page through the set as a ring, skipping the targets on
// the receiving network, so every target is relayed equally often; a
// refused probe does not move the page.
func TestMaxReplies(t *testing.T) {
	cfg := testConfig()
	cfg.MaxReplies = 2
	set := targets("10.2.0.1", "10.2.0.2", "10.1.0.3", "10.2.0.4", "10.2.0.5")
	s := serve(t, cfg, fixed(set...))
	p := probe(plainProbe, "10.1.0.20:40000", eth0Index)
	want := [][]string{
		{"10.2.0.1", "10.2.0.2"},
		{"10.2.0.4", "10.2.0.5"}, // 10.1.0.3 is on eth0's network
		{"10.2.0.1", "10.2.0.2"},
	}
	for i, w := range want {
		if i == 2 {
			s.feed(probe(plainProbe, "198.51.100.1:40000", eth0Index)) // refused: the page stays
		}
		s.feed(p)
		var got []string
		for _, x := range s.c.sent() {
			got = append(got, strings.TrimPrefix(x.data, "SERVER_IP:"))
		}
		if !slices.Equal(got, w) {
			t.Errorf("probe %d: %q, want %q", i, got, w)
		}
	}

	t.Run("fair over many probes", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxReplies = 3
		var set []Target
		for i := range 7 {
			set = append(set, Target{Addr: netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)})})
		}
		s := serve(t, cfg, fixed(set...))
		for range 7 { // 7 probes × 3 replies: every target 3 times
			s.feed(p)
		}
		count := map[string]int{}
		for _, x := range s.c.sent() {
			count[x.data]++
		}
		for _, tg := range set {
			if n := count["SERVER_IP:"+tg.Addr.String()]; n != 3 {
				t.Errorf("%s relayed %d times, want 3 (%v)", tg.Addr, n, count)
			}
		}
	})
}

// TestDelay: replies leave exactly Delay after the probe, on the manual
// clock, to the prober.
func TestDelay(t *testing.T) {
	cfg := testConfig()
	cfg.Delay = DefaultDelay
	s := serve(t, cfg, fixed(targets("10.2.0.5", "10.2.0.6")...))
	src := netip.MustParseAddrPort("10.1.0.20:40000")
	s.feed(Datagram{Payload: plainProbe, Source: src, IfIndex: eth0Index})
	s.waitTimers(t, 2) // the interface refresh's, the scheduler's
	if st := s.r.Stats(); st.Queued != 2 || st.Relayed != 1 || st.Replies != 0 {
		t.Fatalf("after the probe: Queued %d, Relayed %d, Replies %d; want 2, 1, 0", st.Queued, st.Relayed, st.Replies)
	}
	s.clk.Advance(cfg.Delay - time.Nanosecond)
	if got := s.c.sent(); len(got) != 0 {
		t.Fatalf("%s after the probe: sent %v, want nothing yet", cfg.Delay-time.Nanosecond, got)
	}
	s.clk.Advance(time.Nanosecond)
	s.c.waitWritten(t, 2)
	got := s.c.sent()
	if len(got) != 2 || got[0].to != src || got[0].data != "SERVER_IP:10.2.0.5" || got[1].data != "SERVER_IP:10.2.0.6" {
		t.Fatalf("at %s: sent %v", cfg.Delay, got)
	}

	// Two probes 10 ms apart: each answered Delay after its own arrival.
	s.feed(Datagram{Payload: plainProbe, Source: src, IfIndex: eth0Index})
	s.waitTimers(t, 2)
	s.clk.Advance(10 * time.Millisecond)
	s.feed(Datagram{Payload: plainProbe, Source: netip.MustParseAddrPort("10.1.0.21:40000"), IfIndex: eth0Index})
	s.clk.Advance(cfg.Delay - 10*time.Millisecond)
	s.c.waitWritten(t, 2)
	s.waitTimers(t, 2)
	if got := s.c.sent(); len(got) != 2 || got[0].to != src {
		t.Fatalf("first probe's delay over: sent %v, want its 2 replies only", got)
	}
	s.clk.Advance(10 * time.Millisecond)
	s.c.waitWritten(t, 2)
	if got := s.c.sent(); len(got) != 2 || got[0].to.Addr() != netip.MustParseAddr("10.1.0.21") {
		t.Fatalf("second probe's delay over: sent %v", got)
	}
}

// TestQueueBound: the delayed queue holds QueueSize replies; a probe whose
// replies do not fit is dropped whole and counted, before it costs its
// source anything; a flood makes no more timers than one.
func TestQueueBound(t *testing.T) {
	cfg := testConfig()
	cfg.Delay, cfg.QueueSize, cfg.MaxReplies = DefaultDelay, 20, 8
	cfg.Rate, cfg.Burst = 8, 16 // two full answers per source
	set := targets("10.2.0.1", "10.2.0.2", "10.2.0.3", "10.2.0.4", "10.2.0.5", "10.2.0.6", "10.2.0.7", "10.2.0.8")
	s := serve(t, cfg, fixed(set...))
	var flood []Datagram
	for i := range 10_000 {
		flood = append(flood, probe(plainProbe, fmt.Sprintf("10.1.0.%d:%d", 10+i%200, 1024+i), eth0Index))
	}
	s.feed(flood...)
	st := s.r.Stats()
	if st.Queued != 16 || st.Relayed != 2 || st.Dropped[ReasonQueueFull] != 10_000-2 {
		t.Fatalf("after a flood of 10,000 probes: Queued %d, Relayed %d, queue drops %d; want 16, 2, 9998", st.Queued, st.Relayed, st.Dropped[ReasonQueueFull])
	}
	s.waitTimers(t, 2)
	if n := s.clk.Pending(); n != 2 {
		t.Errorf("%d timers pending, want 2 (the interface refresh and the one scheduler)", n)
	}
	s.clk.Advance(cfg.Delay)
	s.c.waitWritten(t, 16)
	if got := len(s.c.sent()); got != 16 {
		t.Fatalf("%d replies sent, want 16", got)
	}
	// The sources dropped for the queue paid nothing: 10.1.0.12 sent
	// probes only the queue refused, and gets its whole burst now.
	for range 2 {
		s.feed(probe(plainProbe, "10.1.0.12:40000", eth0Index))
	}
	if st := s.r.Stats(); st.Queued != 16 || st.Dropped[ReasonRate] != 0 {
		t.Errorf("10.1.0.12 after the flood: Queued %d, rate drops %d; want 16, 0", st.Queued, st.Dropped[ReasonRate])
	}
}

// TestFloodOneSource: 5,000 probes a second from one source for 5 s, on
// the manual clock: the source gets its burst, then its rate, in replies;
// nothing more.
func TestFloodOneSource(t *testing.T) {
	cfg := testConfig()
	cfg.Rate, cfg.Burst = DefaultRate, DefaultBurst
	cfg.GlobalRate, cfg.GlobalBurst = DefaultGlobalRate, DefaultGlobalBurst
	var set []Target
	for i := range 20 {
		set = append(set, Target{Addr: netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)}), Port: 8000})
	}
	s := serve(t, cfg, fixed(set...))
	p := probe(plainProbe, "10.1.0.20:40000", eth0Index)
	const step, perStep = 10 * time.Millisecond, 50 // 5,000 a second
	for i := range 500 {                            // 5 s
		if i > 0 {
			s.clk.Advance(step)
		}
		s.feed(slices.Repeat([]Datagram{p}, perStep)...)
	}
	// 4 full answers at once (the burst of 32), then one a second (8
	// replies) at 1, 2, 3 and 4 s.
	st := s.r.Stats()
	bound := uint64(float64(cfg.Burst) + cfg.Rate*5)
	if st.Replies != 64 || st.Relayed != 8 || st.Replies > bound {
		t.Errorf("Replies %d, Relayed %d; want 64, 8 (bound burst + rate × 5 s = %d)", st.Replies, st.Relayed, bound)
	}
	if st.Dropped[ReasonRate] != 25_000-8 || st.Dropped[ReasonGlobalRate] != 0 {
		t.Errorf("Dropped %v, want %d for rate only", st.Dropped, 25_000-8)
	}
	t.Logf("flood: %d probes, %d B in; %d replies, %d B out: %.4f bytes out per byte in (%.4f on the wire)",
		st.Received, st.BytesIn, st.Replies, st.BytesOut,
		float64(st.BytesOut)/float64(st.BytesIn), float64(st.BytesOut+28*st.Replies)/float64(st.BytesIn+28*st.Received))
}

// TestFloodManySources: probes forged from many on-link sources, so no
// per-source limit applies: the global budget bounds the replies.
func TestFloodManySources(t *testing.T) {
	cfg := testConfig()
	cfg.Rate, cfg.Burst = DefaultRate, DefaultBurst
	cfg.GlobalRate, cfg.GlobalBurst = DefaultGlobalRate, DefaultGlobalBurst
	s := serve(t, cfg, fixed(targets("10.2.0.1", "10.2.0.2", "10.2.0.3", "10.2.0.4", "10.2.0.5", "10.2.0.6", "10.2.0.7", "10.2.0.8")...))
	flood := func() []Datagram {
		var out []Datagram
		for i := range 250 {
			out = append(out, probe(plainProbe, fmt.Sprintf("10.1.0.%d:40000", i+2), eth0Index))
		}
		return out
	}
	s.feed(flood()...)
	if st := s.r.Stats(); st.Replies != 200 || st.Dropped[ReasonGlobalRate] != 250-25 {
		t.Fatalf("at once: Replies %d, global drops %d; want 200 (the global burst), 225", st.Replies, st.Dropped[ReasonGlobalRate])
	}
	s.clk.Advance(time.Second)
	s.feed(flood()...)
	if st := s.r.Stats(); st.Replies != 200+96 {
		t.Fatalf("1 s later: Replies %d, want 296 (12 full answers of the 100 replies refilled)", st.Replies)
	}
}

// TestEncrypted: with a key, a probe under it is answered with tokens a
// client with the key opens to the stock reply; a plaintext probe, a
// token under another key and an old token get nothing.
func TestEncrypted(t *testing.T) {
	text, err := discover.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := discover.ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	otherText, _ := discover.GenerateKey()
	other, err := discover.ParseKey(otherText)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Key = key
	set := targets("10.2.0.5", "10.3.0.7:8080")
	s := serve(t, cfg, fixed(set...))
	now := s.clk.Now()
	src := "10.1.0.20:40000"

	s.feed(probe(key.Seal(plainProbe, now), src, eth0Index))
	got := s.c.sent()
	if len(got) != 2 {
		t.Fatalf("probe under the key: %d replies, want 2", len(got))
	}
	for i, w := range got {
		if strings.HasPrefix(w.data, "SERVER_IP:") {
			t.Errorf("reply %d is plaintext: %q", i, w.data)
		}
		pt, err := key.Open([]byte(w.data), now, discover.DefaultMaxTokenAge, discover.DefaultClockSkew)
		if err != nil {
			t.Fatalf("reply %d does not open under the key: %v", i, err)
		}
		ip, port, _, ok := discover.ParseReply(pt, []byte("SERVER_IP:"))
		if !ok || ip != set[i].Addr || port != set[i].Port {
			t.Errorf("reply %d opens to %q, want %s", i, pt, set[i])
		}
		if _, err := other.Open([]byte(w.data), now, time.Minute, time.Minute); err == nil {
			t.Errorf("reply %d opens under another key", i)
		}
	}

	tests := []struct {
		name    string
		payload []byte
		want    Reason
	}{
		{"plaintext probe", plainProbe, ReasonBadPayload},
		{"token under another key", other.Seal(plainProbe, now), ReasonWrongKey},
		{"token of another message", key.Seal([]byte("DISCOVER_CLIENT"), now), ReasonBadPayload},
		{"token replayed after max age + skew", key.Seal(plainProbe, now.Add(-discover.DefaultMaxTokenAge-discover.DefaultClockSkew-time.Second)), ReasonTokenAge},
		{"garbage", []byte(strings.Repeat("gAAAA", 20)), ReasonBadPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.r.Stats().Dropped[tc.want]
			s.feed(probe(tc.payload, src, eth0Index))
			if got := s.c.sent(); len(got) != 0 {
				t.Errorf("sent %d replies, want none", len(got))
			}
			if n := s.r.Stats().Dropped[tc.want] - before; n != 1 {
				t.Errorf("%s drops grew by %d, want 1", tc.want, n)
			}
		})
	}
}

// TestAmplification measures the bytes out per byte in of one full answer
// (MaxReplies replies), in payload and on the wire (28 bytes of IPv4 and
// UDP headers per datagram), and holds them to the package doc's bounds.
func TestAmplification(t *testing.T) {
	text, _ := discover.GenerateKey()
	key, err := discover.ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	full := func(ip string, port uint16) []Target {
		out := make([]Target, DefaultMaxReplies)
		for i := range out {
			out[i] = Target{Addr: netip.MustParseAddr(ip), Port: port}
		}
		return out
	}
	tests := []struct {
		name               string
		key                *discover.Key
		set                []Target
		maxPayload, maxWir float64
	}{
		{"plaintext, SERVER_IP:10.213.1.11", nil, full("10.213.1.11", 0), 16.5, 11.0},
		{"plaintext, SERVER_IP:10.213.1.11:8000", nil, full("10.213.1.11", 8000), 16.5, 11.0},
		{"plaintext, the longest: 255.255.255.254:65535", nil, full("255.255.255.254", 65535), 16.54, 11.0},
		{"encrypted, 10.213.1.11:8000", key, full("10.213.1.11", 8000), 9.6, 9.25},
		{"encrypted, the longest", key, full("255.255.255.254", 65535), 9.6, 9.25},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Key = tc.key
			s := serve(t, cfg, fixed(tc.set...))
			payload := plainProbe
			if tc.key != nil {
				payload = tc.key.Seal(plainProbe, s.clk.Now())
			}
			s.feed(probe(payload, "10.1.0.20:40000", eth0Index))
			st := s.r.Stats()
			if st.Replies != DefaultMaxReplies {
				t.Fatalf("%d replies, want %d", st.Replies, DefaultMaxReplies)
			}
			ratio := float64(st.BytesOut) / float64(st.BytesIn)
			wire := float64(st.BytesOut+28*st.Replies) / float64(st.BytesIn+28*st.Received)
			t.Logf("probe %d B, %d replies %d B: x%.2f payload, x%.2f on the wire", st.BytesIn, st.Replies, st.BytesOut, ratio, wire)
			if ratio > tc.maxPayload+0.005 || wire > tc.maxWir+0.005 {
				t.Errorf("x%.2f payload, x%.2f on the wire; the package doc promises at most x%.2f, x%.2f", ratio, wire, tc.maxPayload, tc.maxWir)
			}
		})
	}
}

// TestInterfacesRefresh: the interfaces are re-read every RefreshEvery; a
// new network applies from then on, and a failed reading keeps the last
// one.
func TestInterfacesRefresh(t *testing.T) {
	ifs := slices.Clone(hostIfs)
	fail := false
	var mu sync.Mutex
	lister := iface.ListerFunc(func() ([]iface.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("netlink: no answer")
		}
		return slices.Clone(ifs), nil
	})
	set := func(f func()) {
		mu.Lock()
		defer mu.Unlock()
		f()
	}

	cfg := testConfig()
	s := serveOn(t, cfg, fixed(targets("10.2.0.5")...), lister)
	feed := func(d Datagram) int {
		s.feed(d)
		return len(s.c.sent())
	}
	moved := probe(plainProbe, "10.9.0.20:40000", eth0Index)
	if n := feed(moved); n != 0 {
		t.Fatalf("10.9.0.20 before eth0 moves: %d replies, want 0", n)
	}
	// eth0 moves to 10.9.0.0/24.
	set(func() {
		ifs[1].Addr, ifs[1].Prefix = netip.MustParseAddr("10.9.0.1"), netip.MustParsePrefix("10.9.0.0/24")
	})
	advanceRefresh := func() {
		s.waitTimers(t, 1)
		s.clk.Advance(cfg.RefreshEvery)
		s.waitTimers(t, 1) // the refresh is done once the watcher waits again
	}
	advanceRefresh()
	if n := feed(moved); n != 1 {
		t.Fatalf("10.9.0.20 after eth0 moved: %d replies, want 1", n)
	}
	if n := feed(probe(plainProbe, "10.1.0.20:40000", eth0Index)); n != 0 {
		t.Fatalf("10.1.0.20 after eth0 left 10.1.0.0/24: %d replies, want 0", n)
	}
	set(func() { fail = true })
	advanceRefresh()
	if n := feed(moved); n != 1 {
		t.Fatalf("after a failed reading: %d replies, want 1 (the last networks kept)", n)
	}
	if st := s.r.Stats(); st.RefreshErrors != 1 {
		t.Errorf("RefreshErrors %d, want 1", st.RefreshErrors)
	}
}

// TestServeErrors: Serve fails when the interfaces cannot be listed at
// start or the socket fails, and returns nil when ctx ends.
func TestServeErrors(t *testing.T) {
	broken := iface.ListerFunc(func() ([]iface.Interface, error) { return nil, errors.New("netlink: permission denied") })
	r, err := New(testConfig(), fixed(), broken, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	err = r.Serve(context.Background(), newFakeConn())
	if err == nil || !strings.Contains(err.Error(), `list the interfaces ["eth0"]`) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Serve with a broken lister = %v", err)
	}

	r, err = New(testConfig(), fixed(), hostLister(), nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Serve(context.Background(), errConn{errors.New("socket closed under us")}); err == nil || !strings.Contains(err.Error(), "relay: read probes: socket closed under us") {
		t.Errorf("Serve on a failing socket = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Serve(ctx, newFakeConn()); err != nil {
		t.Errorf("Serve with ctx done = %v, want nil", err)
	}
}

type errConn struct{ err error }

func (c errConn) ReadDatagram([]byte) (Datagram, error)       { return Datagram{}, c.err }
func (c errConn) WriteTo([]byte, netip.AddrPort) (int, error) { return 0, c.err }
func (c errConn) SetReadDeadline(time.Time) error             { return nil }

func TestConfigValidate(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("testConfig: %v", err)
	}
	def := DefaultConfig()
	def.Interfaces = []string{"eth0"}
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig with an interface: %v", err)
	}
	tests := []struct {
		name string
		set  func(*Config)
		want []string
	}{
		{"no interfaces", func(c *Config) { c.Interfaces = nil }, []string{"relay interfaces []: name at least one"}},
		{"empty interface name", func(c *Config) { c.Interfaces = []string{"eth0", ""} }, []string{`relay interfaces ["eth0" ""]: an interface name must not be empty`}},
		{"empty message and prefix", func(c *Config) { c.Message, c.Prefix = nil, nil }, []string{`relay message "": must not be empty`, `relay prefix "": must not be empty`}},
		{"negative token age", func(c *Config) { c.MaxTokenAge = -time.Second }, []string{"relay max_token_age -1s: want >= 0"}},
		{"delay too long", func(c *Config) { c.Delay = 2 * time.Second }, []string{"relay delay 2s: want 0..1s"}},
		{"negative delay", func(c *Config) { c.Delay = -time.Millisecond }, []string{"relay delay -1ms"}},
		{"no replies", func(c *Config) { c.MaxReplies = 0 }, []string{"relay max_replies 0: want 1..4096"}},
		{"burst below a full answer", func(c *Config) { c.Rate, c.Burst = 8, 7 }, []string{"relay burst 7: below max_replies 8"}},
		{"global burst below a full answer", func(c *Config) { c.GlobalRate, c.GlobalBurst = 100, 4 }, []string{"relay global_burst 4: below max_replies 8"}},
		{"NaN rate", func(c *Config) { c.Rate = nanRate() }, []string{"relay rate NaN: want a number >= 0"}},
		{"queue below a full answer", func(c *Config) { c.Delay, c.QueueSize = time.Millisecond, 7 }, []string{"relay queue_size 7: want max_replies (8)..1048576 with a delay"}},
		{"no refresh", func(c *Config) { c.RefreshEvery = 0 }, []string{"relay refresh_every 0s: want > 0"}},
		{"several at once", func(c *Config) { c.Interfaces, c.MaxReplies, c.RefreshEvery = nil, 0, 0 }, []string{"interfaces", "max_replies", "refresh_every"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.set(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("valid")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, nerr := New(c, fixed(), hostLister(), nil, zerolog.Nop()); nerr == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func nanRate() float64 {
	zero := 0.0
	return zero / zero
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "reason(") {
			t.Errorf("Reason %d has name %q (duplicate or unnamed)", r, s)
		}
		seen[s] = true
	}
	if len(seen) != int(numReasons) {
		t.Errorf("%d names for %d reasons", len(seen), numReasons)
	}
	var d Drops
	d[ReasonOffLink], d[ReasonRate] = 3, 1
	if d.Total() != 4 {
		t.Errorf("Drops total %d, want 4", d.Total())
	}
}

// TestStopDropsDelayed: replies still waiting for their delay when Serve
// stops are dropped, so a later Serve cannot send them late.
func TestStopDropsDelayed(t *testing.T) {
	cfg := testConfig()
	cfg.Delay = DefaultDelay
	r, err := New(cfg, fixed(targets("10.2.0.5")...), hostLister(), clocktest.New(time.Unix(1_700_000_000, 0)), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeConn()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, c) }()
	<-c.idle
	c.in <- []Datagram{probe(plainProbe, "10.1.0.20:40000", eth0Index)}
	<-c.idle
	if q := r.Stats().Queued; q != 1 {
		t.Fatalf("Queued %d before the stop, want 1", q)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if st := r.Stats(); st.Queued != 0 || st.Replies != 0 {
		t.Errorf("after the stop: Queued %d, Replies %d; want 0, 0", st.Queued, st.Replies)
	}
}
