package discover

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func TestNewValidates(t *testing.T) {
	l := iface.ListerFunc(func() ([]iface.Interface, error) { return nil, nil })
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"zero bounds get defaults", func(o *Options) { o.MaxDatagram, o.RecvBuffer, o.MaxTokenAge, o.ClockSkew = 0, 0, 0, 0 }, ""},
		{"port 0", func(o *Options) { o.Port = 0 }, "discovery_port: must be 1..65535, got 0"},
		{"empty message", func(o *Options) { o.Message = nil }, "discovery_message: must not be empty"},
		{"huge message", func(o *Options) { o.Message = make([]byte, 70000) }, "discovery_message: must be at most 65507 bytes"},
		{"empty prefix", func(o *Options) { o.Prefix = []byte{} }, "response_prefix: must not be empty"},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "timeout: must be > 0, got -1s"},
		{"zero timeout", func(o *Options) { o.Timeout = 0 }, "timeout: must be > 0, got 0s"},
		{"negative retries", func(o *Options) { o.Retries = -1 }, "retries: must be >= 0, got -1"},
		{"default port 0", func(o *Options) { o.DefaultPort = 0 }, "default_port: must be 1..65535, got 0"},
		{"bad policy", func(o *Options) { o.AddressFrom = "dns" }, `address_from: must be auto, payload or source, got "dns"`},
		{"empty policy", func(o *Options) { o.AddressFrom = "" }, `address_from: must be auto, payload or source, got ""`},
		{"scan rate 0", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}; o.ScanRate = 0 }, "scan_rate: must be > 0 when scanning, got 0"},
		{"scan rate 0 without cidrs", func(o *Options) { o.ScanRate = 0 }, ""},
		{"scan /16 ok", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")} }, ""},
		{"scan /8", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, "scan_cidrs: 10.0.0.0/8 has 16777214 hosts, more than the limit of 65536"},
		{"scan total", func(o *Options) {
			o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.0/22")}
		}, "scan_cidrs: 66556 hosts in 2 networks, more than the limit of 65536"},
		{"scan ipv6", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("fd00::/120")} }, "scan_cidrs: fd00::/120 is not an IPv4 network"},
		{"max replies 0", func(o *Options) { o.MaxReplies = 0 }, "max_replies: must be > 0, got 0"},
		{"max datagram negative", func(o *Options) { o.MaxDatagram = -1 }, "max_datagram: must be 1..65507, got -1"},
		{"negative settle", func(o *Options) { o.Settle = -time.Second }, "settle: must be >= 0, got -1s"},
		{"negative token age", func(o *Options) { o.MaxTokenAge = -time.Second }, "max_token_age: must be >= 0, got -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mutate(&o)
			c, err := New(o, l, zerolog.Nop(), nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New = %v, want ok", err)
				}
				got := c.Options()
				if got.MaxDatagram == 0 || got.RecvBuffer == 0 || got.MaxTokenAge == 0 || got.ClockSkew == 0 {
					t.Errorf("defaults not filled in: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("all problems at once", func(t *testing.T) {
		o := DefaultOptions()
		o.Port, o.Timeout = 0, 0
		_, err := New(o, l, zerolog.Nop(), nil)
		if err == nil || !strings.Contains(err.Error(), "discovery_port") || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("New error = %v, want both keys", err)
		}
	})
	t.Run("nil lister", func(t *testing.T) {
		if _, err := New(DefaultOptions(), nil, zerolog.Nop(), nil); err == nil {
			t.Fatal("New accepted a nil lister")
		}
	})
}

func TestDefaultOptionsAreUpstream(t *testing.T) {
	o := DefaultOptions()
	if o.Port != 9999 || string(o.Message) != "DISCOVER_SERVER" || string(o.Prefix) != "SERVER_IP:" ||
		o.Timeout != 5*time.Second || o.Retries != 3 || !o.SubnetScan || o.DefaultPort != 8000 ||
		o.AddressFrom != AddressAuto || o.ScanRate != 1000 || o.MaxReplies != 100000 ||
		o.MaxDatagram != 1024 || o.RecvBuffer != 8<<20 || o.MaxTokenAge != time.Minute || o.ClockSkew != 30*time.Second {
		t.Fatalf("DefaultOptions = %+v", o)
	}
}

func endpoints(ss []Server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Endpoint().String())
	}
	slices.Sort(out)
	return out
}

func TestRoundFindsServers(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 8443))
	startResponder(t, addrPort("127.0.0.4", p), plainResponder("10.213.0.4", 0))
	l := lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3"),
		fakeIf("fake4", "127.0.1.4", "127.0.0.4"))
	c := newClient(t, testOptions(p), l, zerolog.Nop())

	res, err := c.Round(context.Background())
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

func addrPort(ip string, p uint16) string {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), p).String()
}

func TestRoundDedupeAndRetries(t *testing.T) {
	p := freePort(t)
	// Two hosts advertising the same endpoint, three probes each.
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.9", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.9", 0))
	o := testOptions(p)
	o.Timeout, o.Retries, o.Settle = 900*time.Millisecond, 2, 0
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), zerolog.Nop())

	res, err := c.Round(context.Background())
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
	if res.Duration < 800*time.Millisecond {
		t.Errorf("round took %v, want the whole 900ms (no settle)", res.Duration)
	}
}

func TestRoundOneReturnsEarly(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 0))
	o := testOptions(p)
	o.Timeout, o.One, o.Settle, o.Retries = 10*time.Second, true, 0, 3
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), zerolog.Nop())

	begin := time.Now()
	res, err := c.Round(context.Background())
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("Round: %v", err)
	}
	if len(res.Servers) != 1 {
		t.Fatalf("servers %v, want exactly the first", endpoints(res.Servers))
	}
	if took > time.Second {
		t.Errorf("One took %v with a 10s timeout", took)
	}
	if got := res.Servers[0].Received.Sub(res.Started); took-got > 50*time.Millisecond {
		t.Errorf("returned %v after the first reply", took-got)
	}
}

func TestRoundSettleEndsEarly(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	o := testOptions(p)
	o.Timeout, o.Settle = 10*time.Second, 100*time.Millisecond
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), zerolog.Nop())
	begin := time.Now()
	res, err := c.Round(context.Background())
	took := time.Since(begin)
	if err != nil || len(res.Servers) != 1 {
		t.Fatalf("Round = %v, %v", endpoints(res.Servers), err)
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("settled round took %v, want about 100ms", took)
	}
}

func TestRoundSettleWaitsForRetries(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	o := testOptions(p)
	o.Timeout, o.Settle, o.Retries = 1200*time.Millisecond, 50*time.Millisecond, 1
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), zerolog.Nop())
	begin := time.Now()
	res, err := c.Round(context.Background())
	took := time.Since(begin)
	if err != nil || res.Stats.ProbesSent != 2 {
		t.Fatalf("Round: %v, stats %+v", err, res.Stats)
	}
	if took < 600*time.Millisecond || took > 1100*time.Millisecond {
		t.Errorf("took %v, want settle after the retry at 600ms", took)
	}
}

func TestRoundCancel(t *testing.T) {
	p := freePort(t)
	o := testOptions(p)
	o.Timeout, o.Settle, o.Retries = 10*time.Second, 0, 3
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	begin := time.Now()
	_, err := c.Round(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Round = %v, want context.Canceled", err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("cancel honoured after %v", took)
	}
}

func TestRoundCtxDeadlineIsNotAnError(t *testing.T) {
	p := freePort(t)
	o := testOptions(p)
	o.Timeout, o.Settle = 10*time.Second, 0
	c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), zerolog.Nop())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := c.Round(ctx)
	if err != nil || len(res.Servers) != 0 {
		t.Fatalf("Round = %v, %v; want nothing found, no error", res.Servers, err)
	}
	if res.Duration > time.Second {
		t.Errorf("round took %v, want the ctx's 100ms", res.Duration)
	}
}

// rawServer answers each datagram with the given replies, verbatim.
func rawServer(t *testing.T, addr string, replies ...[]byte) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, r := range replies {
				conn.WriteTo(r, from)
			}
		}
	}()
}

func TestRoundCountsBadDatagrams(t *testing.T) {
	p := freePort(t)
	rawServer(t, addrPort("127.0.0.2", p),
		append([]byte("SERVER_IP:10.213.0.7"), make([]byte, 1100)...), // oversized
		[]byte("hello"),                   // wrong prefix
		[]byte("SERVER_IP:10.213.0.1000"), // bad octet
		[]byte("SERVER_IP:10.213.0.7\n"),  // valid
	)
	c := newClient(t, testOptions(p), lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), zerolog.Nop())
	res, err := c.Round(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{ProbesSent: 1, Replies: 4, Valid: 1, Invalid: 2, Oversized: 1}
	if res.Stats != want {
		t.Errorf("stats %+v, want %+v", res.Stats, want)
	}
	if got := endpoints(res.Servers); !slices.Equal(got, []string{"10.213.0.7:8000"}) {
		t.Errorf("servers %v", got)
	}
	if res.Servers[0].Raw != "SERVER_IP:10.213.0.7\n" {
		t.Errorf("raw %q", res.Servers[0].Raw)
	}
}

func TestRoundEncrypted(t *testing.T) {
	p := freePort(t)
	key := mustKey(t, specKey)
	r := plainResponder("10.213.0.2", 0)
	r.Key = key
	startResponder(t, addrPort("127.0.0.2", p), r)
	l := lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"))

	t.Run("same key", func(t *testing.T) {
		o := testOptions(p)
		o.Key = key
		res, err := newClient(t, o, l, zerolog.Nop()).Round(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := endpoints(res.Servers); !slices.Equal(got, []string{"10.213.0.2:8000"}) {
			t.Fatalf("servers %v, stats %+v", got, res.Stats)
		}
		if res.Servers[0].Raw != "SERVER_IP:10.213.0.2" {
			t.Errorf("raw %q, want the decrypted plaintext", res.Servers[0].Raw)
		}
	})
	t.Run("wrong key finds nothing", func(t *testing.T) {
		o := testOptions(p)
		o.Key, o.Settle, o.Timeout = otherKey(t), 0, 300*time.Millisecond
		res, err := newClient(t, o, l, zerolog.Nop()).Round(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Servers) != 0 || res.Stats.Replies != 0 {
			t.Fatalf("servers %v, stats %+v: the responder must ignore a wrong-key probe", endpoints(res.Servers), res.Stats)
		}
	})
	t.Run("plaintext client finds nothing", func(t *testing.T) {
		o := testOptions(p)
		o.Settle, o.Timeout = 0, 300*time.Millisecond
		res, err := newClient(t, o, l, zerolog.Nop()).Round(context.Background())
		if err != nil || len(res.Servers) != 0 || res.Stats.Replies != 0 {
			t.Fatalf("servers %v, stats %+v, err %v", endpoints(res.Servers), res.Stats, err)
		}
	})
	t.Run("plaintext reply rejected in encrypted mode", func(t *testing.T) {
		q := freePort(t)
		rawServer(t, addrPort("127.0.0.5", q), []byte("SERVER_IP:10.213.0.5"), key.Seal([]byte("SERVER_IP:10.213.0.6"), time.Now().Add(-time.Hour)))
		o := testOptions(q)
		o.Key, o.Settle, o.Timeout = key, 0, 300*time.Millisecond
		res, err := newClient(t, o, lister(t, fakeIf("fake5", "127.0.1.5", "127.0.0.5")), zerolog.Nop()).Round(context.Background())
		if err != nil || len(res.Servers) != 0 || res.Stats.Rejected != 2 {
			t.Fatalf("servers %v, stats %+v, err %v", endpoints(res.Servers), res.Stats, err)
		}
	})
}

func TestRoundAddressPolicy(t *testing.T) {
	p := freePort(t)
	// A stock server without a default route advertises 127.0.0.1.
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("127.0.0.1", 0))
	startResponder(t, addrPort("127.0.0.4", p), plainResponder("10.213.0.4", 0))
	startResponder(t, addrPort("127.0.0.5", p), plainResponder("255.255.255.255", 0))
	l := lister(t, fakeIf("fake3", "127.0.1.3", "127.0.0.3"), fakeIf("fake4", "127.0.1.4", "127.0.0.4"),
		fakeIf("fake5", "127.0.1.5", "127.0.0.5"))
	tests := []struct {
		policy AddressPolicy
		want   map[string]string // source -> registered ip
		from   map[string]AddressPolicy
	}{
		{AddressAuto,
			map[string]string{"127.0.0.3": "127.0.0.3", "127.0.0.4": "10.213.0.4", "127.0.0.5": "127.0.0.5"},
			map[string]AddressPolicy{"127.0.0.3": AddressSource, "127.0.0.4": AddressPayload, "127.0.0.5": AddressSource}},
		{AddressPayload,
			map[string]string{"127.0.0.3": "127.0.0.1", "127.0.0.4": "10.213.0.4", "127.0.0.5": "255.255.255.255"},
			map[string]AddressPolicy{"127.0.0.3": AddressPayload, "127.0.0.4": AddressPayload, "127.0.0.5": AddressPayload}},
		{AddressSource,
			map[string]string{"127.0.0.3": "127.0.0.3", "127.0.0.4": "127.0.0.4", "127.0.0.5": "127.0.0.5"},
			map[string]AddressPolicy{"127.0.0.3": AddressSource, "127.0.0.4": AddressSource, "127.0.0.5": AddressSource}},
	}
	for _, tc := range tests {
		t.Run(string(tc.policy), func(t *testing.T) {
			o := testOptions(p)
			o.AddressFrom = tc.policy
			var logs logBuf
			c := newClient(t, o, l, logs.logger())
			for range 2 {
				res, err := c.Round(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Servers) != 3 {
					t.Fatalf("servers %v", endpoints(res.Servers))
				}
				for _, s := range res.Servers {
					src := s.Source.Addr().String()
					if s.IP.String() != tc.want[src] || s.AddressFrom != tc.from[src] {
						t.Errorf("from %s: ip %v (%s), want %s (%s)", src, s.IP, s.AddressFrom, tc.want[src], tc.from[src])
					}
				}
			}
			wantNotes := 0
			if tc.policy == AddressAuto {
				wantNotes = 2 // 127.0.0.1 from .3 (loopback), 255.255.255.255 from .5 (broadcast)
			}
			if n := logs.count("using the packet's source address"); n != wantNotes {
				t.Errorf("%d policy notes over two rounds, want %d (once per pair):\n%s", n, wantNotes, logs.b.String())
			}
			if tc.policy == AddressAuto && (logs.count(`"reason":"loopback"`) != 1 || logs.count(`"reason":"broadcast"`) != 1) {
				t.Errorf("reasons missing:\n%s", logs.b.String())
			}
		})
	}
}

func TestRoundMaxReplies(t *testing.T) {
	p := freePort(t)
	r := plainResponder("10.213.1.1", 0)
	r.Replies = 50
	startResponder(t, addrPort("127.0.0.2", p), r)
	o := testOptions(p)
	o.MaxReplies = 10
	res, err := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), zerolog.Nop()).Round(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Servers) != 10 || res.Stats.Dropped != 40 || res.Stats.Valid != 50 {
		t.Fatalf("%d servers, stats %+v; want 10 kept, 40 dropped", len(res.Servers), res.Stats)
	}
	if res.Servers[0].IP != netip.MustParseAddr("10.213.1.1") || res.Servers[9].IP != netip.MustParseAddr("10.213.1.10") {
		t.Errorf("kept %v..%v, want the first ten in arrival order", res.Servers[0].IP, res.Servers[9].IP)
	}
}

func TestRoundNoInterfaces(t *testing.T) {
	tests := []struct {
		name      string
		whitelist []string
		blacklist []string
	}{
		{"only loopback", nil, nil},
		{"whitelist matches nothing", []string{"eth9"}, nil},
		{"blacklist removes all", nil, []string{"fake2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l iface.Lister = lister(t)
			if tc.name != "only loopback" {
				l = lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"))
			}
			o := testOptions(freePort(t))
			o.Whitelist, o.Blacklist = tc.whitelist, tc.blacklist
			c := newClient(t, o, l, zerolog.Nop())
			_, err := c.Round(context.Background())
			if !errors.Is(err, ErrNoInterfaces) || !strings.Contains(err.Error(), "lo 127.0.0.1 (loopback)") {
				t.Fatalf("Round = %v, want ErrNoInterfaces listing what exists", err)
			}
			if _, err := c.Selected(); !errors.Is(err, ErrNoInterfaces) {
				t.Errorf("Selected = %v", err)
			}
		})
	}
	t.Run("lister fails", func(t *testing.T) {
		boom := errors.New("netlink: boom")
		c := newClient(t, testOptions(1), iface.ListerFunc(func() ([]iface.Interface, error) { return nil, boom }), zerolog.Nop())
		if _, err := c.Round(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("Round = %v", err)
		}
	})
}

func TestRoundNoProbeSent(t *testing.T) {
	t.Run("kernel refuses every send", func(t *testing.T) {
		o := testOptions(freePort(t))
		c := newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), zerolog.Nop())
		c.sendHook = func(*net.UDPConn, []byte, netip.AddrPort) error { return syscall.ENETUNREACH }
		res, err := c.Round(context.Background())
		if !errors.Is(err, ErrNoProbeSent) || !errors.Is(err, syscall.ENETUNREACH) ||
			!strings.Contains(err.Error(), "fake2 -> 127.0.0.2:") || !strings.Contains(err.Error(), "fake3 -> 127.0.0.3:") {
			t.Fatalf("Round = %v, want ErrNoProbeSent naming each interface", err)
		}
		if res.Stats.SendErrors != 2 || res.Stats.ProbesSent != 0 {
			t.Errorf("stats %+v", res.Stats)
		}
	})
	t.Run("one interface still works", func(t *testing.T) {
		p := freePort(t)
		startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 0))
		c := newClient(t, testOptions(p), lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3")), zerolog.Nop())
		c.sendHook = func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error {
			if dst.Addr() == netip.MustParseAddr("127.0.0.2") {
				return syscall.ENETDOWN
			}
			_, err := conn.WriteToUDPAddrPort(b, dst)
			return err
		}
		res, err := c.Round(context.Background())
		if err != nil || len(res.Servers) != 1 || res.Stats.SendErrors != 1 {
			t.Fatalf("Round = %v, %v, stats %+v", endpoints(res.Servers), err, res.Stats)
		}
	})
	t.Run("no IPv4 broadcast at all", func(t *testing.T) {
		ifc := fakeIf("odd0", "127.0.1.2", "127.0.0.2")
		ifc.Broadcast, ifc.Prefix = netip.Addr{}, netip.Prefix{}
		c := newClient(t, testOptions(freePort(t)), lister(t, ifc), zerolog.Nop())
		if _, err := c.Round(context.Background()); !errors.Is(err, ErrNoProbeSent) {
			t.Fatalf("Round = %v", err)
		}
	})
}

func TestRoundSubnetScan(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.5", p), plainResponder("10.213.0.5", 0))
	o := testOptions(p)
	o.SubnetScan = true
	o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/29")}
	o.ScanRate = 1000
	// The broadcast (127.0.0.7) reaches nobody; our own address 127.0.0.2 is skipped.
	c := newClient(t, o, lister(t, fakeIf("fake7", "127.0.0.2", "127.0.0.7")), zerolog.Nop())
	res, err := c.Round(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := endpoints(res.Servers); !slices.Equal(got, []string{"10.213.0.5:8000"}) {
		t.Fatalf("servers %v, stats %+v", got, res.Stats)
	}
	// Hosts .1-.6 minus our .2 (and lo's .1).
	if res.Stats.ScanTargets != 4 || res.Stats.ProbesSent != 5 {
		t.Errorf("stats %+v, want 4 scan targets and 5 probes", res.Stats)
	}
	t.Run("off", func(t *testing.T) {
		o.SubnetScan = false
		res, err := newClient(t, o, lister(t, fakeIf("fake7", "127.0.0.2", "127.0.0.7")), zerolog.Nop()).Round(context.Background())
		if err != nil || len(res.Servers) != 0 || res.Stats.ScanTargets != 0 {
			t.Fatalf("servers %v, stats %+v, err %v", endpoints(res.Servers), res.Stats, err)
		}
	})
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
	c := newClient(t, o, iface.ListerFunc(func() ([]iface.Interface, error) { return []iface.Interface{ifc}, nil }), zerolog.New(&logs))
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

func TestUnusablePayloadIP(t *testing.T) {
	r := &round{broadcasts: []netip.Addr{netip.MustParseAddr("10.1.255.255"), netip.MustParseAddr("192.168.1.255")}}
	for _, tc := range []struct{ ip, want string }{
		{"10.1.2.3", ""},
		{"192.168.1.10", ""},
		{"10.2.255.255", ""}, // someone else's broadcast shape, but not ours
		{"127.0.0.1", "loopback"},
		{"127.9.9.9", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"10.1.255.255", "broadcast"},
		{"192.168.1.255", "broadcast"},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			if got := r.unusable(netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Errorf("unusable(%s) = %q, want %q", tc.ip, got, tc.want)
			}
		})
	}
}
