package discover_test

// End-to-end tests of a stranger on the LAN (README, "Security"): an
// attacker host on the bridge's segment forges replies (e2e/internal/forge:
// raw sockets, any source address and port) while honest servers answer.
// With the defaults none of the forged identities that no honest server
// sends reaches a sink, a flood stays within the limits and the memory
// limit, and the honest servers are unaffected. Everything runs in network
// namespaces the tests create.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/forge"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/memcg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// attackLAN is a harness.RunLAN (bridge at 10.213.1.10, honest servers from .11)
// with an attacker host at 10.213.1.66.
type attackLAN struct {
	*harness.RunLAN
	attacker *netns.Host
}

func newAttackLAN(t *testing.T, honest int) *attackLAN {
	t.Helper()
	l := harness.NewRunLAN(t, honest, false)
	a := &attackLAN{RunLAN: l, attacker: l.Lab.Host("attacker", l.Br, "10.213.1.66/24")}
	for i, h := range l.Servers {
		harness.Respond(t, h, 1, "--ip", fmt.Sprintf("10.213.1.%d", 11+i))
	}
	return a
}

// sinkView is what every sink of a bridge holds: the stdout sink's adds
// less its removes, the file sink's servers and the http_sd targets.
type sinkView struct {
	stdout, file, httpSD []string
}

// readSinks reads the three sinks of bridge b (file at path).
func readSinks(t *testing.T, l *attackLAN, b *harness.BridgeProc, path string) sinkView {
	t.Helper()
	var v sinkView
	out, _ := b.Output()
	held := map[string]bool{}
	for _, e := range harness.StdoutEvents(t, out) {
		k := fmt.Sprintf("%s:%d", e.IP, e.Port)
		held[k] = e.Event == "added"
	}
	for k, ok := range held {
		if ok {
			v.stdout = append(v.stdout, k)
		}
	}
	if doc, err := readFileDoc(path); err == nil {
		for _, s := range doc.Servers {
			v.file = append(v.file, fmt.Sprintf("%s:%d", s.IP, s.Port))
		}
	}
	if code, body, err := harness.NSGet(l.Client.NS, "http://"+harness.MetricsAddr+"/sd/prometheus"); err == nil && code == http.StatusOK {
		var groups []struct {
			Targets []string `json:"targets"`
		}
		if err := json.Unmarshal([]byte(body), &groups); err != nil {
			t.Fatalf("http_sd body %q: %v", body, err)
		}
		for _, g := range groups {
			v.httpSD = append(v.httpSD, g.Targets...)
		}
	}
	for _, s := range [][]string{v.stdout, v.file, v.httpSD} {
		slices.Sort(s)
	}
	return v
}

// startAttackBridge runs `bridge run` in the client namespace with the
// stdout, file and http_sd outputs, a round a second, and extra args.
func startAttackBridge(t *testing.T, l *attackLAN, name string, extra ...string) (*harness.BridgeProc, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "servers.json")
	args := append([]string{"--sink", "stdout,file", "--file-path", path, "--prometheus-sd",
		"--metrics-addr", harness.MetricsAddr, "--interval", "1s", "--timeout", "0.5", "--missed-rounds", "3"}, extra...)
	return harness.StartRun(t, l.Client, name, args...), path
}

// forgedReply answers every probe the attacker sees with one fixed reply
// from src.
func forgedReply(t *testing.T, h *netns.Host, src, payload string) *forge.Proc {
	t.Helper()
	ap := netip.MustParseAddrPort(src)
	return forge.Answer(t, h, forge.AnswerOptions{
		Src: ap.Addr().String(), SrcPorts: fmt.Sprint(ap.Port()), Payload: []byte(payload),
	})
}

// TestAttackForgedRepliesRefused (issue 28 (1) and (7)): an attacker on the
// LAN answers every probe with replies no honest server sends (addresses
// elsewhere, cloud metadata, 240/4, 0/8, the subnet's network address, an
// off-link source, a random source port) and sprays the ephemeral ports
// blind from an off-link source. With the defaults none reaches a sink,
// each is counted by reason, and the honest servers are there throughout.
// A bridge with advertised_addresses any admits the address elsewhere (a
// multi-homed server's), and only it.
func TestAttackForgedRepliesRefused(t *testing.T) {
	t.Parallel()
	l := newAttackLAN(t, 2)
	honest := []string{"10.213.1.11:8000", "10.213.1.12:8000"}
	forged := []struct{ src, payload, reason string }{
		{"10.213.1.66:9999", "SERVER_IP:192.0.2.7:8080", "foreign_address"},
		{"10.213.1.66:9999", "SERVER_IP:169.254.169.254:80", "unroutable_address"},
		{"10.213.1.66:9999", "SERVER_IP:240.0.0.1", "unroutable_address"},
		{"10.213.1.66:9999", "SERVER_IP:0.1.2.3", "unroutable_address"},
		{"10.213.1.66:9999", "SERVER_IP:10.213.1.0", "subnet_address"},
		{"198.51.100.9:9999", "SERVER_IP:198.51.100.9", "off_link_source"},
		{"10.213.1.66:40001", "SERVER_IP:10.213.1.66:9000", "source_port"},
	}
	var attackers []*forge.Proc
	for _, f := range forged {
		attackers = append(attackers, forgedReply(t, l.attacker, f.src, f.payload))
	}
	spray := forge.Spray(t, l.attacker, forge.SprayOptions{
		Src: netip.MustParseAddrPort("198.51.100.10:9999"), Dst: netip.MustParseAddr(harness.ClientIP),
		Template: "SERVER_IP:198.51.100.10:{dport}", Rate: 40000, Rounds: 1000,
	})
	b, path := startAttackBridge(t, l, "defaults")

	want := sinkView{honest, honest, honest}
	harness.Wait(t, 15*time.Second, "the honest servers in every sink", func() (bool, string) {
		v := readSinks(t, l, b, path)
		return slices.Equal(v.stdout, honest) && slices.Equal(v.file, honest) && slices.Equal(v.httpSD, honest), fmt.Sprintf("%+v", v)
	})
	// Eight more rounds under attack: every sink holds the honest servers
	// and nothing else, every time we look.
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if v := readSinks(t, l, b, path); !slices.Equal(v.stdout, want.stdout) || !slices.Equal(v.file, want.file) || !slices.Equal(v.httpSD, want.httpSD) {
			t.Fatalf("sinks hold %+v, want only %v", v, honest)
		}
	}
	for i, a := range attackers {
		if ans, err := a.Answers(); err != nil || len(ans) < 8 {
			t.Fatalf("attacker %d (%s) answered %d probes (%v): the attack did not run", i, forged[i].payload, len(ans), err)
		}
	}
	body, err := harness.MetricsBody(l.Client.NS)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forged {
		if n, _, _ := harness.MetricIn(body, `udp_discovery_bridge_replies_refused_total{reason="`+f.reason+`"}`); n < 8 {
			t.Errorf("replies_refused_total{reason=%q} = %v, want one a round at least", f.reason, n)
		}
	}
	if n, _, _ := harness.MetricIn(body, "udp_discovery_bridge_endpoints"); n != 2 {
		t.Errorf("endpoints = %v, want 2", n)
	}
	sp := spray.Finish(t)
	t.Logf("blind spray from 198.51.100.10: %d datagrams at %.0f/s, none admitted", sp.Sent, sp.RatePPS)
	if sp.Sent < 100000 {
		t.Errorf("the spray sent %d datagrams, want a real spray", sp.Sent)
	}
	_, stderr := b.Output()
	if !strings.Contains(stderr, "replies refused by the admission policy") {
		t.Errorf("no WARN about refused replies in the log:\n%s", harness.Tail(stderr, 40))
	}
	if n := strings.Count(stderr, `"message":"replies from this source refused"`); n > 2*len(forged) {
		t.Errorf("%d per-source refusal lines for %d forged kinds: want each once while it goes on", n, len(forged))
	}
	b.Sigterm(t, 5*time.Second)

	// (7) advertised_addresses any: the address elsewhere is admitted, as
	// upstream admits it; everything else is still refused.
	b2, path2 := startAttackBridge(t, l, "any", "--advertised-addresses", "any")
	withForeign := append(slices.Clone(honest), "192.0.2.7:8080")
	slices.Sort(withForeign)
	harness.Wait(t, 15*time.Second, "the multi-homed address admitted", func() (bool, string) {
		v := readSinks(t, l, b2, path2)
		return slices.Equal(v.file, withForeign) && slices.Equal(v.stdout, withForeign), fmt.Sprintf("%+v", v)
	})
	time.Sleep(3 * time.Second)
	if v := readSinks(t, l, b2, path2); !slices.Equal(v.file, withForeign) || !slices.Equal(v.httpSD, withForeign) {
		t.Errorf("with advertised_addresses any the sinks hold %+v, want %v", v, withForeign)
	}
}

// TestAttackFloodWithinLimits (issue 28 (2)): one attacker host answers
// every probe with 2,000 fresh identities of its own address; then with
// identities of 150 forged on-link sources. The bridge holds at most
// max_servers_per_source of one source and max_servers in all, counts the
// refusals, says so on /readyz, keeps the honest servers, and once the
// flood stops drops the fakes after missed_rounds without the removal
// guard holding them.
func TestAttackFloodWithinLimits(t *testing.T) {
	t.Parallel()
	l := newAttackLAN(t, 2)
	honest := []string{"10.213.1.11:8000", "10.213.1.12:8000"}
	b, path := startAttackBridge(t, l, "limits", "--max-servers", "40")
	harness.Wait(t, 15*time.Second, "the honest servers", func() (bool, string) {
		v := readSinks(t, l, b, path)
		return slices.Equal(v.file, honest), fmt.Sprintf("%+v", v)
	})

	held := func() []string { return readSinks(t, l, b, path).file }
	one := forge.Answer(t, l.attacker, forge.AnswerOptions{
		Src: "10.213.1.66", IdentityPorts: "1-60000", PerProbe: 2000,
	})
	time.Sleep(6 * time.Second)
	v := held()
	fakes := slices.DeleteFunc(slices.Clone(v), func(s string) bool { return slices.Contains(honest, s) })
	if len(fakes) != discover.DefaultMaxServersPerSource || !slices.Contains(v, honest[0]) || !slices.Contains(v, honest[1]) {
		t.Fatalf("one flooding source: the file holds %d fakes and %v; want %d fakes (max_servers_per_source) and the honest servers", len(fakes), v, discover.DefaultMaxServersPerSource)
	}
	code, body, _ := harness.NSGet(l.Client.NS, "http://"+harness.MetricsAddr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "max_servers_per_source") {
		t.Errorf("/readyz during the flood = %d %s, want 503 naming the limits", code, body)
	}
	ans := one.Finish(t)
	t.Logf("one source: %d forged replies", ans.Sent)

	many := forge.Answer(t, l.attacker, forge.AnswerOptions{
		Src: "10.213.1.100-10.213.1.249", IdentityPorts: "1-60000", PerProbe: 3000,
	})
	time.Sleep(6 * time.Second)
	v = held()
	if len(v) > 40 || !slices.Contains(v, honest[0]) || !slices.Contains(v, honest[1]) {
		t.Fatalf("150 forged sources: the file holds %d servers, want at most max_servers (40) with the honest ones", len(v))
	}
	body, err := harness.MetricsBody(l.Client.NS)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`udp_discovery_bridge_servers_refused_total{limit="max_servers"}`, `udp_discovery_bridge_replies_refused_total{reason="source_cap"}`} {
		if n, _, _ := harness.MetricIn(body, p); n == 0 {
			t.Errorf("%s = 0 after the floods", p)
		}
	}
	many.Finish(t)

	// The flood stops: the fakes never answered three rounds in a row as
	// the same identities... some did (a source's first 8 each round). The
	// guard must not hold them for removal_guard_rounds either way: they
	// are gone within missed_rounds plus a round or two.
	stopped := time.Now()
	harness.Wait(t, 12*time.Second, "only the honest servers again", func() (bool, string) {
		v := held()
		return slices.Equal(v, honest), fmt.Sprint(len(v), " held")
	})
	t.Logf("fakes gone %s after the flood stopped", time.Since(stopped).Round(100*time.Millisecond))
	harness.Wait(t, 5*time.Second, "/readyz 200", func() (bool, string) {
		code, body, _ := harness.NSGet(l.Client.NS, "http://"+harness.MetricsAddr+"/readyz")
		return code == http.StatusOK, body
	})
	if n, _, _ := harness.Metric(l.Client.NS, "udp_discovery_bridge_removal_guard_episodes_total"); n != 0 {
		t.Errorf("removal_guard_episodes_total = %v: the flood's identities held the guard", n)
	}
}

// TestAttackReplayedToken (issue 28 (6)): in encrypted mode an attacker
// replays a captured reply token of a server that died 45 s ago: within
// max_token_age + clock_skew, but older than the probe it answers beyond
// clock_skew. It is refused as a replay and never registered, while a
// token sealed now (a control: the attack is real) is admitted.
func TestAttackReplayedToken(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	attacker := l.Lab.Host("attacker", l.Br, "10.213.1.66/24")
	keyText, err := discover.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(keyText), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := discover.ParseKey(keyText)
	if err != nil {
		t.Fatal(err)
	}
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11", "--secret-key-file", keyFile)
	old := key.Seal([]byte("SERVER_IP:10.213.1.13"), time.Now().Add(-45*time.Second))
	fresh := key.Seal([]byte("SERVER_IP:10.213.1.14"), time.Now())
	forge.Answer(t, attacker, forge.AnswerOptions{Src: "10.213.1.13", Payload: old})
	forge.Answer(t, attacker, forge.AnswerOptions{Src: "10.213.1.14", Payload: fresh})

	path := filepath.Join(t.TempDir(), "servers.json")
	b := harness.StartRun(t, l.Client, "encrypted", "--sink", "file", "--file-path", path, "--metrics-addr", harness.MetricsAddr,
		"--interval", "1s", "--timeout", "0.5", "--encryption", "--secret-key-file", keyFile)
	want := []string{"10.213.1.11:8000", "10.213.1.14:8000"}
	harness.Wait(t, 15*time.Second, "the server and the fresh token's", func() (bool, string) {
		doc, _ := readFileDoc(path)
		var got []string
		for _, s := range doc.Servers {
			got = append(got, fmt.Sprintf("%s:%d", s.IP, s.Port))
		}
		slices.Sort(got)
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	time.Sleep(4 * time.Second)
	doc, _ := readFileDoc(path)
	for _, s := range doc.Servers {
		if s.IP == "10.213.1.13" {
			t.Fatalf("the replayed token registered 10.213.1.13: %+v", doc.Servers)
		}
	}
	if n, _, _ := harness.Metric(l.Client.NS, `udp_discovery_bridge_replies_refused_total{reason="replay"}`); n < 4 {
		t.Errorf("replies_refused_total{reason=\"replay\"} = %v, want the replay refused every round", n)
	}
	b.Sigterm(t, 5*time.Second)
}

// TestAttackFloodMemory (issue 28 (3)): the bridge runs in a memory cgroup
// with the chart's limit (128 MiB) and GOMEMLIMIT as the chart sets it
// (90% of it) while an attacker answers every probe with 25,000 fresh
// identities from rotating forged sources on a /16 (100,000 new
// identities a round with the 4 probes of a round). It is never
// OOM-killed and stays within the limit; it holds at most max_servers.
func TestAttackFloodMemory(t *testing.T) {
	memcg.Require(t)
	lab := netns.New(t)
	br := lab.Bridge("lan")
	client := lab.Host("client", br, "10.213.0.10/16")
	srv := lab.Host("s1", br, "10.213.0.11/16")
	attacker := lab.Host("attacker", br, "10.213.0.66/16")
	harness.Respond(t, srv, 1, "--ip", "10.213.0.11")

	const limit = 128 << 20
	g := memcg.New(t, limit)
	argv := []string{bridgebin.Path(t), "run", "--sink", "stdout", "--metrics-addr", harness.MetricsAddr,
		"--interval", "2s", "--timeout", "1"}
	p := g.Start(t, client.WithEnv(harness.HermeticEnv(fmt.Sprintf("GOMEMLIMIT=%d", limit/10*9))), argv...)
	t.Cleanup(func() {
		if t.Failed() {
			out, errOut := p.Output()
			t.Logf("bridge exit %d\nstdout (tail):\n%s\nstderr (tail):\n%s", p.ExitCode(), harness.Tail(out, 5), harness.Tail(errOut, 40))
		}
	})
	harness.Wait(t, 15*time.Second, "the honest server", func() (bool, string) {
		n, _, err := harness.Metric(client.NS, "udp_discovery_bridge_endpoints")
		return err == nil && n == 1, fmt.Sprint(n, err)
	})
	flood := forge.Answer(t, attacker, forge.AnswerOptions{
		Src: "10.213.100.0-10.213.255.255", PerProbe: 25000,
	})
	var peakHeld float64
	for end := time.Now().Add(40 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if p.Exited() {
			break
		}
		if n, _, err := harness.Metric(client.NS, "udp_discovery_bridge_endpoints"); err == nil {
			peakHeld = max(peakHeld, n)
		}
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	ans := flood.Finish(t)
	t.Logf("flood: %d forged replies to %d probes; bridge peak %.1f MiB of %d MiB (failcnt %d, OOM kills %d), held at most %.0f servers",
		ans.Sent, ans.Probes, float64(st.MaxUsage)/(1<<20), limit>>20, st.Failcnt, st.OOMKills, peakHeld)
	if st.OOMKills != 0 || p.Exited() {
		t.Fatalf("the bridge was killed (exit %d, OOM kills %d)", p.ExitCode(), st.OOMKills)
	}
	if ans.Probes < 10 || ans.Sent < 250000 {
		t.Fatalf("the flood answered %d probes with %d replies: it did not run", ans.Probes, ans.Sent)
	}
	if peakHeld > 10001 {
		t.Errorf("held %v servers, more than max_servers (10000) plus the honest one", peakHeld)
	}
	if n, _, _ := harness.Metric(client.NS, `udp_discovery_bridge_endpoints`); n < 1 {
		t.Errorf("the honest server is gone")
	}
}

// TestAttackScanKeepAlives (issue 28 (5)): a routed server found by the
// subnet scan stays registered while an attacker on the bridge's LAN
// answers every probe with 2,000 forged replies from off-LAN sources
// outside the scan CIDR and 1,000 from addresses inside it. Forged replies
// from hosts the round did not probe are refused, so they earn no
// keep-alive; the bridge never probes an address outside its scan CIDR;
// keep-alive probes take at most half of the scan's probes.
func TestAttackScanKeepAlives(t *testing.T) {
	t.Parallel()
	lab, brA, brT, router, client := harness.NewRoutedLab(t)
	attacker := lab.Host("attacker", brA, "10.213.1.66/24")
	s22 := lab.Host("s22", brT, "10.213.3.2/24")
	harness.RoutedServer(t, router, s22, "10.213.3.2", "10.213.7.254", "10.213.4.0/22")
	bridgebin.Path(t)
	harness.Respond(t, s22, 1, "--ip", "10.213.7.254")
	// Count every probe the bridge sends outside its scan CIDR, towards
	// the forged sources' network.
	harness.MustHost(t, client, "iptables", "-A", "OUTPUT", "-d", "10.213.200.0/21", "-p", "udp", "--dport", "9999")

	b := harness.StartRun(t, client, "scan", "--interval", "500ms", "--timeout", "0.4", "--retries", "0",
		"--scan-cidr", "10.213.4.0/22", "--scan-rate", "2000", "--missed-rounds", "3",
		"--sink", "stdout", "--metrics-addr", harness.MetricsAddr, "--log-format", "json")
	find := func(event, ip string) bool {
		out, _ := b.Output()
		for _, e := range harness.StdoutEvents(t, out) {
			if e.Event == event && e.IP == ip {
				return true
			}
		}
		return false
	}
	harness.Wait(t, 15*time.Second, "the routed server added", func() (bool, string) {
		return find("added", "10.213.7.254"), "not yet"
	})
	out := forge.Answer(t, attacker, forge.AnswerOptions{Src: "10.213.200.0-10.213.207.255", PerProbe: 2000})
	in := forge.Answer(t, attacker, forge.AnswerOptions{Src: "10.213.4.1-10.213.7.253", PerProbe: 1000})
	time.Sleep(10 * time.Second) // 20 rounds under attack
	if find("removed", "10.213.7.254") {
		t.Fatal("the routed server was removed under the attack")
	}
	so, si := out.Finish(t), in.Finish(t)
	if so.Probes < 15 || si.Probes < 15 {
		t.Fatalf("the attackers answered %d and %d probes: the attack did not run", so.Probes, si.Probes)
	}
	r := client.Run(t.Context(), "iptables", "-L", "OUTPUT", "-v", "-x", "-n")
	var pkts int
	for line := range strings.Lines(r.Stdout) {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, "10.213.200.0/21") {
			fmt.Sscan(f[0], &pkts)
		}
	}
	body, err := harness.MetricsBody(client.NS)
	if err != nil {
		t.Fatal(err)
	}
	keep, _, _ := harness.MetricIn(body, "udp_discovery_bridge_scan_keepalive_probes_total")
	probed, _, _ := harness.MetricIn(body, "udp_discovery_bridge_scan_hosts_probed_total")
	offLink, _, _ := harness.MetricIn(body, `udp_discovery_bridge_replies_refused_total{reason="off_link_source"}`)
	t.Logf("%d + %d forged replies; %v refused off_link_source; %v keep-alive and %v scan probes; %d probes towards the forged network",
		so.Sent, si.Sent, offLink, keep, probed, pkts)
	if pkts != 0 {
		t.Errorf("the bridge sent %d probes to 10.213.200.0/21, outside its scan CIDR", pkts)
	}
	if offLink < float64(so.Sent)/2 {
		t.Errorf("only %v replies refused as off-link of %d forged from outside", offLink, so.Sent)
	}
	if keep > probed {
		t.Errorf("keep-alive probes %v exceed scan probes %v: more than half the scan's rate", keep, probed)
	}
}
