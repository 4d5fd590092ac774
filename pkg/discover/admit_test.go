package discover

import (
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// lanIf is eth0 on 10.213.1.0/24 (index 5), the bridge at .10.
var lanIf = iface.Interface{
	Name: "eth0", Index: 5, Addr: netip.MustParseAddr("10.213.1.10"),
	Prefix: netip.MustParsePrefix("10.213.1.0/24"), Broadcast: netip.MustParseAddr("10.213.1.255"), Up: true,
}

// otherIf is eth1 on 10.213.2.0/24 (index 6), not selected.
var otherIf = iface.Interface{
	Name: "eth1", Index: 6, Addr: netip.MustParseAddr("10.213.2.10"),
	Prefix: netip.MustParsePrefix("10.213.2.0/24"), Broadcast: netip.MustParseAddr("10.213.2.255"), Up: true,
}

// admitRound is a round of a Client with o, on eth0 (selected) and eth1,
// without a socket: ingest is called directly.
func admitRound(t *testing.T, o Options, clk *clocktest.Clock) *round {
	t.Helper()
	all := []iface.Interface{lanIf, otherIf}
	c, err := New(o, iface.ListerFunc(func() ([]iface.Interface, error) { return all, nil }), nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	return newRound(c, nil, all, all[:1], socketNow(), socketNow().Add(time.Hour))
}

func TestAdmission(t *testing.T) {
	scan := netip.MustParsePrefix("10.99.0.0/24")
	tests := []struct {
		name    string
		set     func(*Options)
		payload string
		src     string // ip:port
		ifindex int
		want    string // registered endpoint, or "" when refused
		refused Refusal
	}{
		{"stock server on the LAN", nil, "SERVER_IP:10.213.1.2", "10.213.1.2:9999", 5, "10.213.1.2:8000", 0},
		{"stock server with no default route", nil, "SERVER_IP:127.0.0.1", "10.213.1.2:9999", 5, "10.213.1.2:8000", 0},
		{"pktinfo unknown: any selected network", nil, "SERVER_IP:10.213.1.2", "10.213.1.2:9999", 0, "10.213.1.2:8000", 0},
		{"another on-link address", nil, "SERVER_IP:10.213.1.7:8080", "10.213.1.2:9999", 5, "10.213.1.7:8080", 0},
		{"a server on this host, through lo", nil, "SERVER_IP:10.213.1.10", "10.213.1.10:9999", 1, "10.213.1.10:8000", 0},

		{"random source port (a blind spray)", nil, "SERVER_IP:10.213.1.2", "10.213.1.2:40000", 5, "", RefusedSourcePort},
		{"off-link source", nil, "SERVER_IP:198.51.100.9", "198.51.100.9:9999", 5, "", RefusedOffLink},
		{"source of another interface's network", nil, "SERVER_IP:10.213.2.3", "10.213.2.3:9999", 5, "", RefusedOffLink},
		{"source on eth1 arriving on eth1 (not selected)", nil, "SERVER_IP:10.213.2.3", "10.213.2.3:9999", 6, "10.213.2.3:8000", 0},
		{"documentation address", nil, "SERVER_IP:192.0.2.7:8080", "10.213.1.66:9999", 5, "", RefusedForeign},
		{"cloud metadata", nil, "SERVER_IP:169.254.169.254:80", "10.213.1.66:9999", 5, "", RefusedUnroutable},
		{"240/4", nil, "SERVER_IP:240.0.0.1", "10.213.1.66:9999", 5, "", RefusedUnroutable},
		{"0/8", nil, "SERVER_IP:0.1.2.3", "10.213.1.66:9999", 5, "", RefusedUnroutable},
		{"multicast under payload", func(o *Options) { o.AddressFrom = AddressPayload }, "SERVER_IP:224.0.0.1", "10.213.1.66:9999", 5, "", RefusedUnroutable},
		{"loopback under payload", func(o *Options) { o.AddressFrom = AddressPayload }, "SERVER_IP:127.0.0.1", "10.213.1.66:9999", 5, "", RefusedUnroutable},
		{"network address", nil, "SERVER_IP:10.213.1.0", "10.213.1.66:9999", 5, "", RefusedSubnetEdge},
		{"broadcast mapped to a source", nil, "SERVER_IP:10.213.1.255", "10.213.1.66:9999", 5, "10.213.1.66:8000", 0},
		{"broadcast under payload", func(o *Options) { o.AddressFrom = AddressPayload }, "SERVER_IP:10.213.1.255", "10.213.1.66:9999", 5, "", RefusedSubnetEdge},

		{"any: a multi-homed server's other address", func(o *Options) { o.AdvertisedAddresses = AdvertisedAny }, "SERVER_IP:192.0.2.7:8080", "10.213.1.66:9999", 5, "192.0.2.7:8080", 0},
		{"any still refuses metadata", func(o *Options) { o.AdvertisedAddresses = AdvertisedAny }, "SERVER_IP:169.254.169.254", "10.213.1.66:9999", 5, "", RefusedUnroutable},
		{"any still refuses off-link sources", func(o *Options) { o.AdvertisedAddresses = AdvertisedAny }, "SERVER_IP:10.213.1.2", "198.51.100.9:9999", 5, "", RefusedOffLink},
		{"inside a scan CIDR", func(o *Options) { o.ScanCIDRs = []netip.Prefix{scan} }, "SERVER_IP:10.99.0.5", "10.213.1.66:9999", 5, "10.99.0.5:8000", 0},
		{"scan host not probed this round", func(o *Options) { o.ScanCIDRs = []netip.Prefix{scan} }, "SERVER_IP:10.99.0.5", "10.99.0.5:9999", 5, "", RefusedOffLink},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			if tc.set != nil {
				tc.set(&o)
			}
			r := admitRound(t, o, clocktest.New(time.Now()))
			kept := r.ingest([]byte(tc.payload), netip.MustParseAddrPort(tc.src), tc.ifindex)
			got := ""
			if kept {
				got = r.servers()[0].Endpoint().String()
			}
			if got != tc.want {
				t.Fatalf("kept %q, want %q (refused %v)", got, tc.want, r.refused)
			}
			if tc.want == "" && r.refused[tc.refused] != 1 {
				t.Errorf("refused %v, want one %s", r.refused, tc.refused)
			}
			if tc.want != "" && r.refused.Total() != 0 {
				t.Errorf("refused %v, want none", r.refused)
			}
		})
	}
}

func TestAdmissionScanRepliesOnlyFromProbedHosts(t *testing.T) {
	o := DefaultOptions()
	o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}
	r := admitRound(t, o, clocktest.New(time.Now()))
	cur := newScanCursor(o.ScanCIDRs)
	r.adm.scanning(cur, []netip.Addr{netip.MustParseAddr("10.99.0.200")})
	i, ok := cur.index(netip.MustParseAddr("10.99.0.5"))
	if !ok || i != 4 {
		t.Fatalf("index(10.99.0.5) = %d, %v", i, ok)
	}
	r.adm.probedHost(i)
	for _, tc := range []struct {
		src  string
		kept bool
	}{
		{"10.99.0.5:9999", true},   // probed by the scan
		{"10.99.0.200:9999", true}, // a keep-alive target
		{"10.99.0.6:9999", false},  // in the scan CIDR, not probed yet
		{"10.98.0.5:9999", false},  // outside
		{"10.99.0.5:12345", false}, // probed, wrong source port
	} {
		ip := netip.MustParseAddrPort(tc.src).Addr()
		if got := r.ingest([]byte("SERVER_IP:"+ip.String()), netip.MustParseAddrPort(tc.src), 5); got != tc.kept {
			t.Errorf("reply from %s kept %v, want %v", tc.src, got, tc.kept)
		}
	}
}

func TestAdmissionSourceCap(t *testing.T) {
	o := DefaultOptions()
	o.MaxServersPerSource = 3
	r := admitRound(t, o, clocktest.New(time.Now()))
	src := netip.MustParseAddrPort("10.213.1.66:9999")
	kept := 0
	for i := range 10 {
		if r.ingest([]byte("SERVER_IP:10.213.1.66:"+itoa(8000+i)), src, 5) {
			kept++
		}
	}
	// Duplicates of a kept server are not new: they never count.
	r.ingest([]byte("SERVER_IP:10.213.1.66:8000"), src, 5)
	if kept != 3 || r.refused[RefusedSourceCap] != 7 || r.st.Duplicates != 1 {
		t.Fatalf("kept %d, refused %v, duplicates %d; want 3 kept, 7 refused, 1 duplicate", kept, r.refused, r.st.Duplicates)
	}
	// Another source is not held back by the first.
	if !r.ingest([]byte("SERVER_IP:10.213.1.67"), netip.MustParseAddrPort("10.213.1.67:9999"), 5) {
		t.Error("another source's server refused")
	}
}

func TestAdmissionReplay(t *testing.T) {
	key := otherKey(t)
	start := time.Date(2026, 12, 7, 10, 0, 30, 500e6, time.UTC)
	clk := clocktest.New(start)
	o := DefaultOptions()
	o.Key = key
	r := admitRound(t, o, clk) // the round starts at clk's time
	src := netip.MustParseAddrPort("10.213.1.2:9999")
	for _, tc := range []struct {
		name  string
		stamp time.Time
		want  bool
	}{
		{"sealed during the round", start.Add(200 * time.Millisecond), true},
		{"sealed before the round, within clock_skew", start.Add(-29 * time.Second), true},
		{"sealed before the probe beyond clock_skew: a replay", start.Add(-32 * time.Second), false},
		{"within max_token_age but a replay", start.Add(-50 * time.Second), false},
	} {
		r.seen = map[uint64]struct{}{}
		got := r.ingest(key.Seal([]byte("SERVER_IP:10.213.1.2"), tc.stamp), src, 5)
		if got != tc.want {
			t.Errorf("%s: kept %v, want %v (refused %v, rejected %d)", tc.name, got, tc.want, r.refused, r.st.Rejected)
		}
	}
	if r.refused[RefusedReplay] != 2 || r.st.Rejected != 0 {
		t.Errorf("refused %v, rejected %d: want 2 replays, none rejected", r.refused, r.st.Rejected)
	}
}

func TestUnroutable(t *testing.T) {
	for ip, want := range map[string]bool{
		"0.0.0.0": true, "0.255.1.1": true, "127.0.0.1": true, "169.254.169.254": true, "169.254.0.1": true,
		"224.0.0.251": true, "239.1.1.1": true, "240.0.0.1": true, "255.255.255.255": true,
		"10.0.0.1": false, "192.168.1.1": false, "172.16.0.1": false, "100.64.0.1": false, "8.8.8.8": false, "223.255.255.254": false,
	} {
		if got := unroutable(netip.MustParseAddr(ip)); got != want {
			t.Errorf("unroutable(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestRefusalNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Refusals() {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] || r.explain() == "" {
			t.Errorf("refusal %d: name %q explain %q", r, n, r.explain())
		}
		seen[n] = true
	}
	var c RefusalCounts
	c[RefusedOffLink] = 3
	if b, _ := c.MarshalJSON(); string(b) != `{"off_link_source":3}` {
		t.Errorf("JSON %s", b)
	}
}

// TestSocketDrops fills a small receive buffer on loopback and reads the
// kernel's drop count back.
func TestSocketDrops(t *testing.T) {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.SetReadBuffer(1); err != nil { // the kernel's minimum
		t.Fatal(err)
	}
	sc, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for range 200 {
		_, _ = sc.Write(make([]byte, 512))
	}
	n, ok := socketDrops(rc)
	switch {
	case !ok && runtime.GOOS == "linux":
		t.Fatal("SO_MEMINFO gave no drop count on Linux")
	case !ok:
		t.Skip("the kernel's drop count is read on Linux only")
	}
	if n < 100 {
		t.Errorf("%d drops reported after 200 datagrams into a minimal buffer, want most of them", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzAdmission feeds arbitrary datagrams from arbitrary sources through a
// round's ingest: it never panics, and whatever it keeps is what the
// policy promises: from the discovery port, from the LAN or a probed host,
// never an unroutable or subnet-edge address, an advertised address that
// is the source or inside the LAN or the scan CIDR, at most
// MaxServersPerSource per source.
func FuzzAdmission(f *testing.F) {
	for _, tc := range []struct {
		payload string
		src     [4]byte
		port    uint16
		ifindex int
	}{
		{"SERVER_IP:10.213.1.2", [4]byte{10, 213, 1, 2}, 9999, 5},
		{"SERVER_IP:169.254.169.254:80", [4]byte{10, 213, 1, 66}, 9999, 5},
		{"SERVER_IP:10.99.0.5", [4]byte{10, 99, 0, 5}, 9999, 0},
		{"SERVER_IP: 127.0.0.1 \n", [4]byte{10, 213, 1, 3}, 9999, 1},
		{"SERVER_IP:192.0.2.7:8080", [4]byte{198, 51, 100, 9}, 40000, 6},
	} {
		f.Add([]byte(tc.payload), tc.src[0], tc.src[1], tc.src[2], tc.src[3], tc.port, tc.ifindex)
	}
	scan := netip.MustParsePrefix("10.99.0.0/24")
	f.Fuzz(func(t *testing.T, payload []byte, a, b, c, d byte, port uint16, ifindex int) {
		o := DefaultOptions()
		o.ScanCIDRs = []netip.Prefix{scan}
		o.MaxServersPerSource = 2
		r := admitRound(t, o, clocktest.New(time.Now()))
		cur := newScanCursor(o.ScanCIDRs)
		r.adm.scanning(cur, nil)
		r.adm.probedHost(4) // 10.99.0.5
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{a, b, c, d}), port)
		for range 3 { // the same datagram thrice: duplicates and the cap
			r.ingest(payload, src, ifindex)
		}
		r.ingest(append(payload, ':', '1'), src, ifindex) // another port, same source
		for _, s := range r.servers() {
			ip := s.IP
			switch {
			case s.Source.Port() != o.Port:
				t.Fatalf("kept %v from port %d", s.Endpoint(), s.Source.Port())
			case !lanIf.Prefix.Contains(s.Source.Addr()) && !otherIf.Prefix.Contains(s.Source.Addr()) && s.Source.Addr() != netip.MustParseAddr("10.99.0.5"):
				t.Fatalf("kept %v from %v, neither on a network of ours nor probed", s.Endpoint(), s.Source)
			case unroutable(ip), ip == netip.MustParseAddr("10.213.1.0"), ip == netip.MustParseAddr("10.213.1.255"):
				t.Fatalf("kept the address %v", ip)
			case ip != s.Source.Addr() && !lanIf.Prefix.Contains(ip) && !scan.Contains(ip):
				t.Fatalf("kept the advertised %v from %v", ip, s.Source)
			}
		}
		if n := len(r.servers()); n > o.MaxServersPerSource {
			t.Fatalf("kept %d servers of one source", n)
		}
	})
}

// TestNoteRefusals: an episode logs its first five (source, reason) pairs
// at warn, says once that the others follow at debug, logs a pair once
// while it goes on, and ends with one info line; the next episode starts
// afresh.
func TestNoteRefusals(t *testing.T) {
	var logs logBuf
	c, err := New(DefaultOptions(), lister(t), logs.debugLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	round := func(sources int) {
		notes := map[refusalNote]struct{}{}
		var counts RefusalCounts
		for i := range sources {
			notes[refusalNote{src: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), reason: RefusedOffLink}] = struct{}{}
			counts[RefusedOffLink]++
		}
		c.noteRefusals(notes, counts)
	}
	count := func(level, msg string) int { return logs.count(`"level":"` + level + `","msg":"` + msg) }
	const pair, more = "replies from this source refused", "more sources are refused"
	round(8)
	round(8) // the same pairs: nothing new
	if w, d, m := count("WARN", pair), count("DEBUG", pair), count("WARN", more); w != 5 || d != 3 || m != 1 {
		t.Fatalf("warn %d, debug %d, more %d; want 5, 3, 1:\n%s", w, d, m, logs.b.String())
	}
	round(9) // one new pair, past the budget: debug, no second "more"
	round(0)
	round(2) // a new episode: warn again
	if w, d, m, end := count("WARN", pair), count("DEBUG", pair), count("WARN", more), count("INFO", "no reply refused"); w != 7 || d != 4 || m != 1 || end != 1 {
		t.Fatalf("warn %d, debug %d, more %d, end %d; want 7, 4, 1, 1:\n%s", w, d, m, end, logs.b.String())
	}
}
