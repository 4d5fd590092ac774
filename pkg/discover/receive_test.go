package discover

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

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
	c := newClient(t, testOptions(p), lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil)
	res, err := settledRoundOf(t, c, 4)
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
		res, err := settledRoundOf(t, newClient(t, o, l, nil), 1)
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
		res, err := newClient(t, o, l, nil).Round(context.Background())
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
		res, err := newClient(t, o, l, nil).Round(context.Background())
		if err != nil || len(res.Servers) != 0 || res.Stats.Replies != 0 {
			t.Fatalf("servers %v, stats %+v, err %v", endpoints(res.Servers), res.Stats, err)
		}
	})
	t.Run("plaintext reply rejected in encrypted mode", func(t *testing.T) {
		q := freePort(t)
		rawServer(t, addrPort("127.0.0.5", q), []byte("SERVER_IP:10.213.0.5"), key.Seal([]byte("SERVER_IP:10.213.0.6"), time.Now().Add(-time.Hour)))
		o := testOptions(q)
		o.Key, o.Settle, o.Timeout = key, 0, 300*time.Millisecond
		res, err := newClient(t, o, lister(t, fakeIf("fake5", "127.0.1.5", "127.0.0.5")), nil).Round(context.Background())
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
		// 255.255.255.255 is never registered (RefusedUnroutable); 127.0.0.1
		// is, only because these fake interfaces are on 127.0.0.0/8.
		{AddressPayload,
			map[string]string{"127.0.0.3": "127.0.0.1", "127.0.0.4": "10.213.0.4"},
			map[string]AddressPolicy{"127.0.0.3": AddressPayload, "127.0.0.4": AddressPayload}},
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
				res, err := settledRoundOf(t, c, 3) // a reply from each server
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Servers) != len(tc.want) {
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

// TestPolicyNotesAtScale: eight replies advertising loopback addresses
// give five policy notes at info, one line saying the rest are at debug,
// and all eight at debug.
func TestPolicyNotesAtScale(t *testing.T) {
	p := freePort(t)
	r := plainResponder("127.0.0.1", 0)
	r.Replies = 8 // 127.0.0.1 .. 127.0.0.8, all loopback, from 127.0.0.2
	startResponder(t, addrPort("127.0.0.2", p), r)
	for _, tc := range []struct {
		name  string
		debug bool
		want  int
	}{{"info", false, policyNotesAtInfo}, {"debug", true, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuf
			log := logs.logger()
			if tc.debug {
				log = logs.debugLogger()
			}
			c := newClient(t, testOptions(p), lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), log)
			for range 2 {
				if _, err := settledRoundOf(t, c, 8); err != nil {
					t.Fatal(err)
				}
			}
			if n := logs.count("using the packet's source address"); n != tc.want {
				t.Errorf("%d policy notes, want %d:\n%s", n, tc.want, logs.b.String())
			}
			if n := logs.count(`"level":"INFO","msg":"reply advertises`); n != policyNotesAtInfo {
				t.Errorf("%d policy notes at info, want %d", n, policyNotesAtInfo)
			}
			if n := logs.count(`"level":"INFO","msg":"more replies advertise addresses that cannot be registered; each is logged at debug","logged_at_info":5`); n != 1 {
				t.Errorf("%d lines saying the rest are at debug, want 1:\n%s", n, logs.b.String())
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
	o.MaxServersPerSource = 1000 // one responder sends them all
	res, err := settledRoundOf(t, newClient(t, o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil), 50)
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

func TestReceivedIsFirstArrival(t *testing.T) {
	// ingest without a socket, on a manual clock: each server is stamped
	// with the clock when its first reply is ingested, and a later
	// duplicate does not restamp it.
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktest.New(start)
	o := DefaultOptions()
	o.AdvertisedAddresses = AdvertisedAny
	c, err := New(o, lister(t), nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	sel := []iface.Interface{fakeIf("fake2", "127.0.1.2", "127.0.0.2")}
	r := newRound(c, nil, sel, sel, socketNow(), socketNow().Add(time.Hour))
	a, b := []byte("SERVER_IP:10.213.0.2"), []byte("SERVER_IP:10.213.0.3:8443")
	src := netip.MustParseAddrPort("127.0.0.2:9999")

	if !r.ingest(a, src, 0) {
		t.Fatal("first reply of a not kept")
	}
	clk.Advance(time.Second)
	if !r.ingest(b, src, 0) {
		t.Fatal("first reply of b not kept")
	}
	clk.Advance(time.Minute)
	if r.ingest(a, src, 0) || r.ingest(b, src, 0) {
		t.Fatal("a duplicate was kept as a new server")
	}
	clk.Advance(time.Hour) // the round "ends" much later

	got := r.servers()
	if len(got) != 2 || r.st.Duplicates != 2 {
		t.Fatalf("servers %v, stats %+v", endpoints(got), r.st)
	}
	want := map[string]time.Time{"10.213.0.2:8000": start, "10.213.0.3:8443": start.Add(time.Second)}
	for _, s := range got {
		if w := want[s.Endpoint().String()]; !s.Received.Equal(w) {
			t.Errorf("%v: Received %v, want %v (its first reply's arrival)", s.Endpoint(), s.Received, w)
		}
	}
}
