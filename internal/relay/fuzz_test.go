package relay

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// fuzzKey is a fixed key for the encrypted half of FuzzProbe.
const fuzzKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

// FuzzProbe feeds one datagram of any payload, source and interface to a
// relay on eth0 (plaintext or encrypted): it never panics, and whatever it
// answers goes only to the probe's own source, on eth0's networks, not
// one of our addresses, with at most MaxReplies replies none of which is
// a target on eth0's networks.
func FuzzProbe(f *testing.F) {
	key, err := discover.ParseKey(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	start := time.Unix(1_700_000_000, 0)
	token := key.Seal(plainProbe, start)
	ip := func(s string) uint32 { return binary.BigEndian.Uint32(netip.MustParseAddr(s).AsSlice()) }
	for _, seed := range []struct {
		payload   []byte
		src       uint32
		port      uint16
		ifindex   uint8
		encrypted bool
	}{
		{plainProbe, ip("10.1.0.20"), 40000, eth0Index, false},
		{plainProbe, ip("198.51.100.7"), 40000, eth0Index, false},
		{plainProbe, ip("10.1.0.1"), 9999, eth0Index, false},
		{plainProbe, ip("10.1.0.255"), 40000, eth0Index, false},
		{plainProbe, ip("10.2.0.20"), 40000, eth1Index, false},
		{plainProbe, ip("192.168.50.9"), 1, eth0Index, false},
		{token, ip("10.1.0.20"), 40000, eth0Index, true},
		{token, ip("203.0.113.9"), 40000, eth0Index, true},
		{[]byte("DISCOVER_SERVER\x00"), ip("10.1.0.20"), 40000, eth0Index, false},
	} {
		f.Add(seed.payload, seed.src, seed.port, seed.ifindex, seed.encrypted)
	}
	// The targets: some on eth0's networks (never relayed), some not.
	set := targets("10.1.0.50", "10.2.0.5", "192.168.50.60:8000", "10.3.0.7:8080", "10.2.0.6", "10.2.0.7",
		"10.2.0.8", "10.2.0.9", "10.2.0.10", "10.2.0.11", "10.1.0.99")
	relays := map[bool]*Relay{}
	for _, enc := range []bool{false, true} {
		cfg := testConfig()
		cfg.Rate, cfg.Burst = DefaultRate, DefaultBurst
		if enc {
			cfg.Key = key
		}
		r, err := New(cfg, fixed(set...), hostLister(), clocktest.New(start), zerolog.Nop())
		if err != nil {
			f.Fatal(err)
		}
		if err := r.refresh(); err != nil {
			f.Fatal(err)
		}
		relays[enc] = r
	}
	eth0 := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("192.168.50.0/24")}
	own := map[netip.Addr]bool{}
	for _, i := range hostIfs {
		own[i.Addr] = true
	}
	f.Fuzz(func(t *testing.T, payload []byte, src uint32, port uint16, ifindex uint8, encrypted bool) {
		r := relays[encrypted]
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], src)
		d := Datagram{Payload: payload, Source: netip.AddrPortFrom(netip.AddrFrom4(a), port), IfIndex: int(ifindex)}
		c := newFakeConn()
		r.handle(c, d)
		got := c.sent()
		if len(got) == 0 {
			return
		}
		s := d.Source.Addr()
		if int(ifindex) != eth0Index || !cidr.AnyContains(eth0, s) || own[s] {
			t.Fatalf("answered %s arriving on interface %d: %d replies", d.Source, ifindex, len(got))
		}
		if len(got) > r.cfg.MaxReplies {
			t.Fatalf("%d replies, MaxReplies %d", len(got), r.cfg.MaxReplies)
		}
		for _, w := range got {
			if w.to != d.Source {
				t.Fatalf("reply to %s for a probe from %s", w.to, d.Source)
			}
			text := []byte(w.data)
			if encrypted {
				if text, err = key.Open(text, start, time.Minute, time.Minute); err != nil {
					t.Fatalf("reply does not open: %v", err)
				}
			}
			tip, _, _, ok := discover.ParseReply(text, []byte("SERVER_IP:"))
			if !ok || cidr.AnyContains(eth0, tip) {
				t.Fatalf("reply %q: a target on the receiving network, or not a reply", text)
			}
		}
	})
}
