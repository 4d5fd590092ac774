package forge_test

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/forge"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

func TestMain(m *testing.M) {
	code := m.Run()
	forge.Cleanup()
	os.Exit(code)
}

// lan is two hosts on one switch: the attacker and the victim.
type lan struct {
	lab              *netns.Lab
	br               *netns.Bridge
	attacker, victim *netns.Host
}

func newLAN(t *testing.T) lan {
	t.Helper()
	lab := netns.New(t)
	br := lab.Bridge("lan")
	return lan{
		lab:      lab,
		br:       br,
		attacker: lab.Host("attacker", br, "10.213.1.10/24"),
		victim:   lab.Host("victim", br, "10.213.1.20/24"),
	}
}

// setRPFilter sets rp_filter on all and on every link of h; the kernel uses
// the larger of conf.all and conf.<dev>, so both are set.
func setRPFilter(t *testing.T, h *netns.Host, v int) {
	t.Helper()
	script := fmt.Sprintf("echo %d > /proc/sys/net/ipv4/conf/all/rp_filter", v)
	for _, l := range h.Links() {
		script += fmt.Sprintf(" && echo %d > /proc/sys/net/ipv4/conf/%s/rp_filter", v, l.Dev)
	}
	if r := h.Run(context.Background(), "sh", "-c", script); r.Err != nil {
		t.Fatalf("rp_filter=%d in %s: %v: %s", v, h.NS, r.Err, r.Stderr)
	}
}

// setDefaultRoute replaces h's default route with one via gw, or removes
// it when gw is "".
func setDefaultRoute(t *testing.T, h *netns.Host, gw string) {
	t.Helper()
	argv := []string{"ip", "route", "del", "default"}
	if gw != "" {
		argv = []string{"ip", "route", "replace", "default", "via", gw}
	}
	r := h.Run(context.Background(), argv...)
	if r.Err != nil && !(gw == "" && strings.Contains(r.Stderr, "No such process")) {
		t.Fatalf("%v in %s: %v: %s", argv, h.NS, r.Err, r.Stderr)
	}
}

// TestForgedSourceReachesVictim sends, from the attacker, datagrams whose
// source is a silent on-link address, an off-link address, the victim's
// own address and the attacker's real address, to a UDP socket on the
// victim, under each rp_filter setting and routing table of the victim.
// The receiving socket sees the forged source address and port.
func TestForgedSourceReachesVictim(t *testing.T) {
	n := newLAN(t)
	wan := n.lab.Bridge("wan")
	n.victim.AddLink(wan, "10.213.2.20/24")
	dst := netip.MustParseAddrPort("10.213.1.20:40000")
	srcs := []struct {
		name string
		src  netip.AddrPort
	}{
		{"on-link", netip.MustParseAddrPort("10.213.1.77:9999")},
		{"off-link", netip.MustParseAddrPort("198.51.100.9:9999")},
		{"victim", netip.MustParseAddrPort("10.213.1.20:9999")},
		{"attacker", netip.MustParseAddrPort("10.213.1.10:4444")},
	}
	// want lists the sources the victim's socket receives. The victim's own
	// address is a martian source (accept_local=0) whatever rp_filter says.
	cases := []struct {
		route string // victim's default gateway: "" none, on the LAN, or on the other leg
		rp    int
		want  []string
	}{
		{"", 0, []string{"on-link", "off-link", "attacker"}},
		{"", 1, []string{"on-link", "attacker"}},
		{"", 2, []string{"on-link", "attacker"}},
		{"10.213.1.1", 0, []string{"on-link", "off-link", "attacker"}},
		{"10.213.1.1", 1, []string{"on-link", "off-link", "attacker"}},
		{"10.213.1.1", 2, []string{"on-link", "off-link", "attacker"}},
		{"10.213.2.1", 0, []string{"on-link", "off-link", "attacker"}},
		{"10.213.2.1", 1, []string{"on-link", "attacker"}},
		{"10.213.2.1", 2, []string{"on-link", "off-link", "attacker"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("gw=%s/rp_filter=%d", cmp.Or(c.route, "none"), c.rp), func(t *testing.T) {
			setDefaultRoute(t, n.victim, c.route)
			setRPFilter(t, n.victim, c.rp)
			l := forge.Listen(t, n.victim, forge.ListenOptions{Addrs: []string{dst.String()}})
			var dg []forge.Datagram
			for _, s := range srcs {
				dg = append(dg, forge.Datagram{Src: s.src, Dst: dst, Payload: []byte(s.name)})
			}
			sum := forge.Send(t, n.attacker, forge.SendOptions{}, dg...)
			if sum.Sent != int64(len(dg)) || sum.SendErrors != 0 {
				t.Fatalf("sent %d of %d, %d errors (%s)", sum.Sent, len(dg), sum.SendErrors, sum.LastError)
			}
			// The "attacker" datagram is sent last; what has not arrived
			// once it has was dropped.
			if _, err := l.WaitRecvs(len(c.want), 2*time.Second); err != nil {
				t.Logf("waiting for %d datagrams: %v", len(c.want), err)
			}
			time.Sleep(50 * time.Millisecond)
			l.Finish(t)
			recvs, err := l.Recvs()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recvs {
				p, _ := hex.DecodeString(r.PayloadHex)
				got = append(got, string(p))
				for _, s := range srcs {
					if s.name == string(p) && r.Src != s.src.String() {
						t.Errorf("%s datagram arrived from %s, want the forged %s", s.name, r.Src, s.src)
					}
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(c.want))
			if !slices.Equal(got, want) {
				t.Errorf("victim received %q, want %q", got, want)
			}
		})
	}
}

// TestSendRepeats sends a list of two datagrams three times at a rate.
func TestSendRepeats(t *testing.T) {
	n := newLAN(t)
	l := forge.Listen(t, n.victim, forge.ListenOptions{Addrs: []string{"0.0.0.0:40001"}, Count: 6})
	dst := netip.MustParseAddrPort("10.213.1.20:40001")
	sum := forge.Send(t, n.attacker, forge.SendOptions{Count: 3, Rate: 1000},
		forge.Datagram{Src: netip.MustParseAddrPort("10.213.1.99:9999"), Dst: dst, Payload: []byte("SERVER_IP:10.213.1.99")},
		forge.Datagram{Src: netip.MustParseAddrPort("203.0.113.5:1234"), Dst: dst, Payload: []byte{0, 1, 0xff}},
	)
	if sum.Sent != 6 || sum.SendErrors != 0 {
		t.Fatalf("sent %d, %d errors (%s), want 6 and 0", sum.Sent, sum.SendErrors, sum.LastError)
	}
	if err := l.Wait(); err != nil {
		t.Fatalf("listener (wanted 6 datagrams): %v", err)
	}
	s, err := l.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if s.Received != 6 || s.DistinctSrcs != 2 {
		t.Errorf("received %d from %d sources, want 6 from 2", s.Received, s.DistinctSrcs)
	}
}

// TestAnswerFreshIdentities: the attacker answers each broadcast probe
// with 1000 forged replies, each from a source of a rotating range and
// naming an identity no earlier reply named.
func TestAnswerFreshIdentities(t *testing.T) {
	n := newLAN(t)
	const perProbe, rounds = 1000, 3
	a := forge.Answer(t, n.attacker, forge.AnswerOptions{
		Match:         []byte("DISCOVER_SERVER"),
		Src:           "10.213.1.100-10.213.1.250",
		IdentityIPs:   "10.213.64.0/18",
		IdentityPorts: "8000-8099",
		PerProbe:      perProbe,
	})
	got, sum := forge.Probe(t, n.victim, forge.ProbeOptions{
		To: netip.MustParseAddrPort("10.213.1.255:9999"), Rounds: rounds, Wait: 500 * time.Millisecond,
	})
	as := a.Finish(t)
	answers, err := a.Answers()
	if err != nil {
		t.Fatal(err)
	}
	if as.Probes != rounds || len(answers) != rounds || as.Sent != perProbe*rounds {
		t.Fatalf("attacker answered %d probes (%d events) with %d replies, want %d and %d", as.Probes, len(answers), as.Sent, rounds, perProbe*rounds)
	}
	for i, ans := range answers {
		if ans.FirstN != uint64(i*perProbe) || !strings.HasPrefix(ans.From, "10.213.1.20:") {
			t.Errorf("answer %d: %+v, want first_n %d from 10.213.1.20", i, ans, i*perProbe)
		}
	}
	if sum.Received != perProbe*rounds {
		t.Errorf("victim received %d replies, want %d", sum.Received, perProbe*rounds)
	}
	for _, r := range got {
		// 151 sources rotate under 1000 replies: every one is used.
		if r.Replies != perProbe || r.DistinctPayloads != perProbe || r.NewPayloads != perProbe || r.DistinctSrcs != 151 {
			t.Errorf("round %d: %d replies, %d distinct and %d new payloads, %d sources; want %d, %d, %d, 151",
				r.Round, r.Replies, r.DistinctPayloads, r.NewPayloads, r.DistinctSrcs, perProbe, perProbe, perProbe)
		}
	}
	if len(got) > 0 && len(got[0].Sample) > 0 {
		s := got[0].Sample[0]
		if s.Src != "10.213.1.100:9999" || s.Payload != "SERVER_IP:10.213.64.0:8000" {
			t.Errorf("first reply %+v, want SERVER_IP:10.213.64.0:8000 from 10.213.1.100:9999", s)
		}
	}
}

// TestAnswerFlood100k answers each probe with 100,000 fresh identities, as
// fast as the kernel takes them, and reports the rate and what the prober
// (8 MiB receive buffer, like the bridge) got.
func TestAnswerFlood100k(t *testing.T) {
	n := newLAN(t)
	const perProbe, rounds = 100_000, 2
	a := forge.Answer(t, n.attacker, forge.AnswerOptions{
		Src:           "10.213.1.100-10.213.1.250",
		IdentityIPs:   "10.213.64.0/18",
		IdentityPorts: "8000-8099",
		PerProbe:      perProbe,
	})
	got, _ := forge.Probe(t, n.victim, forge.ProbeOptions{
		To: netip.MustParseAddrPort("10.213.1.255:9999"), Rounds: rounds, Wait: 3 * time.Second,
	})
	a.Finish(t)
	answers, err := a.Answers()
	if err != nil {
		t.Fatal(err)
	}
	if len(answers) != rounds {
		t.Fatalf("attacker answered %d probes, want %d", len(answers), rounds)
	}
	for i, ans := range answers {
		if ans.Sent != perProbe || ans.Errors != 0 {
			t.Errorf("probe %d: sent %d with %d errors, want %d and 0", i, ans.Sent, ans.Errors, perProbe)
		}
		r := got[i]
		t.Logf("probe %d: %d forged replies written in %.3fs (%.0f/s); prober got %d (%d new identities), last after %.3fs",
			i, ans.Sent, ans.ElapsedS, ans.RatePPS, r.Replies, r.NewPayloads, r.LastS)
		if r.Replies == 0 || r.NewPayloads != r.DistinctPayloads || int64(r.DistinctPayloads) != r.Replies {
			t.Errorf("round %d: %d replies, %d distinct and %d new payloads: want every reply a new identity", i, r.Replies, r.DistinctPayloads, r.NewPayloads)
		}
	}
}

// TestSprayCoversRange sprays a forged reply at every port of Linux's
// ephemeral range; a raw socket on the victim counts what the host
// accepted, and a real socket on one port of the range gets its one.
func TestSprayCoversRange(t *testing.T) {
	n := newLAN(t)
	setRPFilter(t, n.victim, 1)
	l := forge.Listen(t, n.victim, forge.ListenOptions{Addrs: []string{"0.0.0.0:45678"}, Raw: true, RawPorts: "32768-60999", Quiet: true})
	sp := forge.Spray(t, n.attacker, forge.SprayOptions{
		Src:      netip.MustParseAddrPort("10.213.1.77:9999"),
		Dst:      netip.MustParseAddrPort("10.213.1.20:0").Addr(),
		Template: "SERVER_IP:10.213.1.77:{dport}",
		Rate:     50_000,
	})
	if err := sp.Wait(); err != nil {
		t.Fatalf("spray: %v", err)
	}
	ss, err := sp.Summary()
	if err != nil {
		t.Fatal(err)
	}
	const ports = 60999 - 32768 + 1
	if ss.Sent != ports || ss.SendErrors != 0 {
		t.Fatalf("spray sent %d with %d errors (%s), want %d", ss.Sent, ss.SendErrors, ss.LastError, ports)
	}
	time.Sleep(200 * time.Millisecond)
	ls := l.Finish(t)
	t.Logf("spray: %d datagrams in %.3fs (%.0f/s); victim accepted %d on %d ports", ss.Sent, ss.ElapsedS, ss.RatePPS, ls.Received, ls.DistinctDstPorts)
	// The raw socket counts each datagram once; the UDP socket's one is
	// counted again.
	if ls.DistinctDstPorts != ports || ls.MinDstPort != 32768 || ls.MaxDstPort != 60999 || ls.Received != ports+1 {
		t.Errorf("victim got %d datagrams on %d ports %d..%d, want %d on %d ports 32768..60999",
			ls.Received, ls.DistinctDstPorts, ls.MinDstPort, ls.MaxDstPort, ports+1, ports)
	}
}

// TestUsageErrors: a bad command line exits 2 and says what is wrong.
func TestUsageErrors(t *testing.T) {
	n := newLAN(t)
	cases := []struct {
		argv []string
		want string
	}{
		{[]string{"send"}, "no datagram"},
		{[]string{"send", "-d", "10.213.1.1:9 10.213.1.20:9"}, "want 'SRC_IP:PORT DST_IP:PORT ENC:PAYLOAD'"},
		{[]string{"send", "-d", "10.213.1.1:9 10.213.1.20:9 rot13:x"}, `encoding "rot13"`},
		{[]string{"answer", "-src", "10.213.1.9-10.213.1.1"}, "ends before it starts"},
		{[]string{"answer", "-src", "10.213.1.9", "-id-ports", "0"}, "want 1..65535"},
		{[]string{"spray", "-src", "10.213.1.9:1", "-dst", "x", "-payload", "text:a"}, `-dst "x"`},
		{[]string{"listen"}, "nothing to listen on"},
		{[]string{"nosuchmode"}, "usage: forger MODE"},
	}
	for _, c := range cases {
		r := n.attacker.Run(context.Background(), append([]string{forge.Bin(t)}, c.argv...)...)
		if r.ExitCode != 2 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("forger %q: exit %d, stderr %q; want exit 2 and %q", c.argv, r.ExitCode, r.Stderr, c.want)
		}
	}
}
