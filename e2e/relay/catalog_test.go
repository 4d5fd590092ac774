package relay_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/forge"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/udpprobe"
)

// probe is the stock probe payload.
var probe = []byte("DISCOVER_SERVER")

// relayLab is the catalog lab with a third segment: segments a
// (10.213.31.0/24) and b (10.213.32.0/24) with two servers each, c
// (10.213.33.0/24) with none, routed through one router (.1 on each);
// a catalog-mode bridge on each segment (a1, b1, c1 at .21) relaying on
// its segment, reading a three-server Consul with ACLs on.
type relayLab struct {
	*catalogh.Lab
	router  *netns.Host
	servers map[string]*netns.Proc // by "ip:8000"
	hosts   map[string]*netns.Host // server hosts by "ip:8000"
	ids     map[string]string      // service ID by "ip:8000"
}

// segment returns the servers ("ip:8000") of segment seg ("a" or "b").
func (l *relayLab) segment(seg string) []string {
	var out []string
	for ep := range l.servers {
		if strings.HasPrefix(ep, fmt.Sprintf("10.213.%d.", catalogh.SegNet(seg))) {
			out = append(out, ep)
		}
	}
	slices.Sort(out)
	return out
}

// gateway is the router's address on segment seg.
func gateway(seg string) string { return fmt.Sprintf("10.213.%d.1", catalogh.SegNet(seg)) }

// bcast is segment seg's broadcast address, port 9999.
func bcast(seg string) netip.AddrPort {
	return netip.MustParseAddrPort(fmt.Sprintf("10.213.%d.255:9999", catalogh.SegNet(seg)))
}

// host creates a plain host on segment seg at .last, routed through the
// router.
func (l *relayLab) host(name, seg string, last int) *netns.Host {
	l.T.Helper()
	h := l.Lab.Lab.Host(name, l.Seg[seg], fmt.Sprintf("10.213.%d.%d/24", catalogh.SegNet(seg), last))
	h.SetDefaultRoute(gateway(seg))
	return h
}

func newRelayLab(t *testing.T, extra ...string) *relayLab {
	t.Helper()
	l := &relayLab{Lab: catalogh.NewLab(t), servers: map[string]*netns.Proc{}, hosts: map[string]*netns.Host{}, ids: map[string]string{}}
	l.Seg["c"] = l.Lab.Lab.Bridge("segc")
	l.router = l.Lab.Lab.Router("rtr", map[*netns.Bridge]string{
		l.Seg["a"]: gateway("a") + "/24", l.Seg["b"]: gateway("b") + "/24", l.Seg["c"]: gateway("c") + "/24"})
	l.StartACLCluster()
	tok := catalogh.ACLToken(t, l.Consul, "bridge-catalog", harness.DocsPolicy(t, "catalog mode"))
	tokFile := catalogh.WriteTokenFile(t, tok)
	for _, seg := range []string{"a", "b"} {
		for i := range 2 {
			h, ip := l.ServerHost(seg, i)
			h.SetDefaultRoute(gateway(seg))
			ep := ip + ":8000"
			l.servers[ep] = harness.Respond(t, h, 1, "--ip", ip)
			l.hosts[ep] = h
			l.ids[ep] = harness.ServerID(catalogh.Service, ip, 8000)
		}
	}
	for _, seg := range []string{"a", "b", "c"} {
		name := seg + "1"
		h := l.BridgeHost(name)
		h.SetDefaultRoute(gateway(seg))
		l.Bridge(name, append([]string{"--consul-token-file", tokFile, "--relay-interfaces", h.Dev(l.Seg[seg])}, extra...)...)
	}
	return l
}

// metric reads one sample of bridge name's metrics (0 when absent).
func (l *relayLab) metric(name, prefix string) float64 {
	l.T.Helper()
	v, _, err := harness.Metric(l.Hosts[name].NS, prefix)
	if err != nil {
		l.T.Fatalf("metric %s of %s: %v", prefix, name, err)
	}
	return v
}

// dropped is bridge name's count of probes dropped for reason.
func (l *relayLab) dropped(name, reason string) float64 {
	return l.metric(name, `udp_discovery_bridge_relay_probes_dropped_total{reason="`+reason+`"}`)
}

// waitTargets waits until bridge name's relay holds n targets from a
// fresh read of its source.
func (l *relayLab) waitTargets(name string, n int) {
	l.T.Helper()
	harness.Wait(l.T, 30*time.Second, fmt.Sprintf("%s relays %d servers", name, n), func() (bool, string) {
		body, err := harness.MetricsBody(l.Hosts[name].NS)
		if err != nil {
			return false, err.Error()
		}
		got, _, _ := harness.MetricIn(body, "udp_discovery_bridge_relay_targets")
		ok, _, _ := harness.MetricIn(body, `udp_discovery_bridge_relay_source_ok{source="consul"}`)
		return got == float64(n) && ok == 1, fmt.Sprintf("targets %v, source_ok %v", got, ok)
	})
}

// cpu is the CPU time the process pid has used (user + system).
func cpu(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces): state is the
	// 3rd field, utime the 14th, stime the 15th.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

// TestRelayCatalog is issue 32's end-to-end proof with the Consul
// catalog: three segments routed through a router, servers on a and b
// and none on c, a catalog fleet of one bridge per segment on a
// three-server Consul with ACLs on (default deny), each bridge relaying on
// its own segment from the catalog's passing instances, with the token of
// the README's catalog-mode policy and nothing more.
func TestRelayCatalog(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := newRelayLab(t)
	all := slices.Sorted(func(yield func(string) bool) {
		for ep := range l.servers {
			if !yield(ep) {
				return
			}
		}
	})
	var ids []string
	for _, ep := range all {
		ids = append(ids, l.ids[ep])
	}
	took := l.WaitCatalog(60*time.Second, "the four servers passing", catalogh.All("passing", ids))
	t.Logf("MEASURED: four servers passing in the catalog %s after the bridges started", took.Round(100*time.Millisecond))
	// Each relay holds the servers of the other segments only... as its
	// set: the whole fleet; what it leaves out is decided per probe.
	for _, b := range []string{"a1", "b1", "c1"} {
		l.waitTargets(b, 4)
	}
	c1 := l.BridgeHost("c1").IP(l.Seg["c"])

	client := l.host("clic", "c", 50)
	cdev := client.Dev(l.Seg["c"])
	t.Run("a client on the segment without a server finds every server", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, client, nil, 0, "--whitelist", cdev, "--advertised-addresses", "any", "--timeout", "1")
		harness.WantServers(t, got, r, all...)
		for ep, s := range got {
			if s.SourceAddress != netip.AddrPortFrom(c1, 9999).String() {
				t.Errorf("%s answered from %s, want the relay %s", ep, s.SourceAddress, c1)
			}
		}
		// The relayed addresses are reachable: the client connects to
		// each server's port through the router.
		for _, ep := range all {
			h := l.hosts[ep]
			ln, err := netns.Listen(t.Context(), h.NS, "tcp", ep)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				if c, err := ln.Accept(); err == nil {
					c.Close()
				}
			}()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			c, err := netns.Dial(ctx, client.NS, "tcp", ep)
			cancel()
			ln.Close()
			if err != nil {
				t.Errorf("the client on c cannot reach the relayed %s: %v", ep, err)
				continue
			}
			c.Close()
		}
		// A bridge client with the default admission refuses relayed
		// replies: their address is neither the reply's source nor on
		// its networks (foreign_address), as docs/operations/relay.md says.
		res := harness.Bridge(t, client, nil, "discover", "--json", "--whitelist", cdev, "--timeout", "1")
		if res.ExitCode != 1 || !strings.Contains(res.Stderr, "foreign_address") {
			t.Errorf("bridge discover with advertised_addresses local on c: exit %d, want 1 (none) with foreign_address refusals\nstdout: %s\nstderr: %s",
				res.ExitCode, res.Stdout, harness.Tail(res.Stderr, 20))
		}
	})

	t.Run("a stock probe gets every server in the stock format after the delay", func(t *testing.T) {
		p := udpprobe.New(t, client, "10.213.33.50:0")
		rs := p.Probe(bcast("c"), probe, time.Second)
		got, bad := udpprobe.Named(rs)
		if !slices.Equal(got, all) || len(bad) > 0 || len(rs) != len(all) {
			t.Fatalf("replies %v: named %v (unparsable %q), want one each of %v", rs, got, bad, all)
		}
		var after []time.Duration
		for _, r := range rs {
			if r.Src != netip.AddrPortFrom(c1, 9999) {
				t.Errorf("reply %q from %s, want the relay's %s:9999", r.Payload, r.Src, c1)
			}
			// relay_delay (50 ms) is a floor: no reply can arrive sooner.
			if r.After < 50*time.Millisecond {
				t.Errorf("reply %q %s after the probe, before relay_delay (50ms)", r.Payload, r.After)
			}
			after = append(after, r.After)
		}
		t.Logf("MEASURED: a stock probe on c: %d replies from the relay, %s-%s after the probe (relay_delay 50ms)",
			len(rs), slices.Min(after).Round(100*time.Microsecond), slices.Max(after).Round(100*time.Microsecond))
	})

	t.Run("on a segment with a server, discover_one gets its own server first", func(t *testing.T) {
		bcli := l.host("clib", "b", 50)
		own := l.segment("b")
		for i := range 20 {
			got, r := harness.DiscoverJSON(t, bcli, nil, 0, "--one", "--whitelist", bcli.Dev(l.Seg["b"]), "--advertised-addresses", "any", "--timeout", "1")
			if len(got) != 1 {
				t.Fatalf("try %d: --one found %v\n%s", i+1, harness.Keys(got), r.Stderr)
			}
			for ep := range got {
				if !slices.Contains(own, ep) {
					t.Errorf("try %d: --one on b took %s first, not b's own %v", i+1, ep, own)
				}
			}
		}
		// The same seen by a stock probe: b's servers answer within a few
		// milliseconds, the relay (b1) after relay_delay with a's servers
		// only, never b's own.
		// From an address of its own: the --one runs above spent .50's
		// allowance at the servers (5 probes a second after 20) and at
		// the relay (8 replies a second after 32).
		harness.MustHost(t, bcli, "ip", "addr", "add", "10.213.32.51/24", "dev", bcli.Dev(l.Seg["b"]))
		p := udpprobe.New(t, bcli, "10.213.32.51:0")
		b1 := l.BridgeHost("b1").IP(l.Seg["b"])
		var local, relayed []time.Duration
		for range 20 {
			rs := p.Probe(bcast("b"), probe, 300*time.Millisecond)
			var fl, fr time.Duration
			for _, r := range rs {
				got, _ := udpprobe.Named([]udpprobe.Reply{r})
				switch {
				case r.Src.Addr() == b1:
					if len(got) != 1 || !slices.Contains(l.segment("a"), got[0]) {
						t.Errorf("the relay on b answered %q: not one of a's servers %v", r.Payload, l.segment("a"))
					}
					if fr == 0 {
						fr = r.After
					}
				case fl == 0:
					fl = r.After
				}
			}
			if fl == 0 || fr == 0 || fr < fl {
				t.Errorf("a probe on b: first local reply after %s, first relayed after %s: %v", fl, fr, rs)
			}
			local, relayed = append(local, fl), append(relayed, fr)
			time.Sleep(200 * time.Millisecond) // within b1's 8 replies/s for this source
		}
		t.Logf("MEASURED: on b, 20 of 20 `bridge discover --one` took b's own server; of 20 stock probes the first local reply came after %s (median, max %s), the first relayed after %s (median, min %s)",
			udpprobe.Median(local).Round(10*time.Microsecond), slices.Max(local).Round(10*time.Microsecond),
			udpprobe.Median(relayed).Round(100*time.Microsecond), slices.Min(relayed).Round(100*time.Microsecond))
	})

	t.Run("a stopped server leaves the relayed answers within the catalog's delay plus 1s", func(t *testing.T) {
		testRemoval(t, l, client, all)
	})

	t.Run("forged and off-link probes get nothing", func(t *testing.T) {
		victim := l.host("victim", "a", 77)
		listen := forge.Listen(t, victim, forge.ListenOptions{Addrs: []string{"0.0.0.0:40001"}})
		before := l.dropped("c1", "off_link")
		// A probe on c forged with the victim's (off-link) address as its
		// source: an amplifier would send the victim the answer.
		forge.Send(t, client, forge.SendOptions{Count: 20, Rate: 200}, forge.Datagram{
			Src: netip.MustParseAddrPort("10.213.31.77:40001"), Dst: bcast("c"), Payload: probe})
		// A real probe from the victim's segment to c's broadcast
		// address, which the router forwards onto c as a broadcast
		// (directed broadcast forwarding, bc_forwarding, on for this
		// part: off by default). A unicast probe to the relay's host
		// never reaches the relay: it listens on broadcast addresses
		// only.
		// The kernel wants it on "all" and on the input interface.
		for _, dev := range []string{"all", l.router.Dev(l.Seg["a"])} {
			harness.MustHost(t, l.router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/"+dev+"/bc_forwarding")
		}
		p := udpprobe.New(t, victim, "10.213.31.77:0")
		var got int
		for range 20 {
			got += len(p.Probe(bcast("c"), probe, 100*time.Millisecond))
		}
		time.Sleep(300 * time.Millisecond)
		s := listen.Finish(t)
		if s.Received != 0 || got != 0 {
			t.Errorf("the victim received %d replies to forged probes and %d to its own off-link probes, want 0", s.Received, got)
		}
		if d := l.dropped("c1", "off_link") - before; d != 40 {
			t.Errorf("c1 dropped %v probes as off_link, want the 40 sent", d)
		}
		t.Logf("MEASURED: 20 probes on c forged from a's 10.213.31.77 and 20 probes from a to c's broadcast address forwarded by the router: 40 dropped as off_link, 0 replies")
	})

	t.Run("a flood from one source gets at most the rate limit", func(t *testing.T) {
		testFlood(t, l, 4-1) // one server of a was stopped above
	})
}

// testRemoval stops one of a's servers and measures when the catalog
// stops listing it as passing and when the relay on c stops relaying it,
// probing from c every 250 ms from four source addresses in turn (each
// within its 8 replies a second).
func testRemoval(t *testing.T, l *relayLab, client *netns.Host, all []string) {
	gone := l.segment("a")[0]
	var probers []*udpprobe.Prober
	for i := range 4 {
		ip := fmt.Sprintf("10.213.33.%d", 51+i)
		harness.MustHost(t, client, "ip", "addr", "add", ip+"/24", "dev", client.Dev(l.Seg["c"]))
		probers = append(probers, udpprobe.New(t, client, ip+":0"))
	}
	res := udpprobe.Removal{
		Probers: probers, To: bcast("c"), Payload: probe, Every: 250 * time.Millisecond, Server: gone,
		Gone: func() bool {
			pass, err := catalogh.Passing(l.Consul)
			return err == nil && !pass[l.ids[gone]]
		},
		After: 3 * time.Second, Timeout: 60 * time.Second,
	}.Run(t, func() { harness.StopResponder(t, l.servers[gone]) })
	if res.LastWith.IsZero() {
		t.Fatalf("no relayed answer named %s after it stopped: the probes missed the window", gone)
	}
	if late := res.LastWith.Sub(res.Gone); late > time.Second {
		t.Errorf("a probe %s after the catalog dropped %s was still answered with it (bound: 1s)", late.Round(time.Millisecond), gone)
	}
	t.Logf("MEASURED: %s stopped: out of the catalog's passing instances %s later (the fleet's removal: 3 missed rounds of 1s); the last probe answered with it was sent %s after that, the first without it %s after (probes every 250ms; %d answered)",
		gone, res.Gone.Sub(res.Stopped).Round(100*time.Millisecond), res.LastWith.Sub(res.Gone).Round(time.Millisecond),
		res.FirstWithout.Sub(res.Gone).Round(time.Millisecond), res.Answered)
	l.waitTargets("c1", len(all)-1)
}

// testFlood floods c1 with 5,000 probes a second for 5 s from one
// source and counts what came back, on the wire and on the relay's
// counters. targets is the number of servers c1 relays.
func testFlood(t *testing.T, l *relayLab, targets int) {
	flooder := l.host("flood", "c", 60)
	src := netip.MustParseAddrPort("10.213.33.60:40000")
	listen := forge.Listen(t, flooder, forge.ListenOptions{Addrs: []string{src.String()}})
	pid := l.Bridges["c1"].PID
	m := func(name string) float64 { return l.metric("c1", "udp_discovery_bridge_relay_"+name) }
	rcv0, in0, rel0, rep0, out0, rate0 := m("probes_received_total"), m("received_bytes_total"), m("probes_relayed_total"), m("replies_sent_total"), m("sent_bytes_total"), l.dropped("c1", "rate")
	cpu0 := cpu(t, pid)
	sum := forge.Send(t, flooder, forge.SendOptions{Count: 25000, Rate: 5000}, forge.Datagram{Src: src, Dst: bcast("c"), Payload: probe})
	time.Sleep(500 * time.Millisecond) // the last replies' relay_delay
	cpuUsed := cpu(t, pid) - cpu0
	ls := listen.Finish(t)
	recvs, err := listen.Recvs()
	if err != nil {
		t.Fatal(err)
	}
	var payload int
	for _, r := range recvs {
		payload += len(r.PayloadHex) / 2
	}
	rcv, in, rel, rep, out, rate := m("probes_received_total")-rcv0, m("received_bytes_total")-in0, m("probes_relayed_total")-rel0,
		m("replies_sent_total")-rep0, m("sent_bytes_total")-out0, l.dropped("c1", "rate")-rate0
	if sum.Sent != 25000 {
		t.Fatalf("the flooder sent %d probes, want 25000: %+v", sum.Sent, sum)
	}
	// Each probe is answered with every target or not at all; the source
	// may take 32 replies at once, then 8 a second.
	bound := 32 + 8*(sum.ElapsedS+0.6)
	if float64(ls.Received) > bound || ls.Received < 32 {
		t.Errorf("the flooding source got %d replies in %.2fs, want at least the burst (32) and at most %.0f", ls.Received, sum.ElapsedS, bound)
	}
	if rep != float64(ls.Received) || int(ls.Received)%targets != 0 {
		t.Errorf("the relay sent %v replies, the source received %d (whole answers of %d)", rep, ls.Received, targets)
	}
	if rate < rcv*0.95 {
		t.Errorf("of %v probes read only %v were dropped for the rate", rcv, rate)
	}
	wireIn, wireOut := in+28*rcv, out+28*rep
	t.Logf("MEASURED: a flood of %d probes from one source in %.2fs (%.0f/s): the relay read %v (%v B of payload, %v B on the wire), dropped %v for the rate, answered %v probes with %v replies (%v B of payload, %v B on the wire; %d B received at the source): %.5f bytes out per byte in on the wire; the bridge used %s of CPU",
		sum.Sent, sum.ElapsedS, sum.RatePPS, rcv, in, wireIn, rate, rel, rep, out, wireOut, payload, wireOut/wireIn, cpuUsed)
}
