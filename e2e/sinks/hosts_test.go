package sinks_test

// End-to-end test of the file sink's hosts format served as DNS: the real
// bridge writes the file in the client's namespace, CoreDNS (built from
// its Go module with its hosts plugin, internal/corednsbin) and dnsmasq
// serve it there with the settings of docs/sinks/file.md as written (only
// the directory replaced), and dig asks them on the namespace's loopback.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/corednsbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// hostsPage is the documentation page that holds the hosts examples.
const hostsPage = "docs/sinks/file.md"

// docsHostsDir is the directory of the hosts file in hostsPage's examples,
// which the test replaces with its own.
const docsHostsDir = "/var/lib/udp-discovery-bridge/hosts.d"

// docsHostsExample returns hostsPage's text block marked
// `<!-- hosts-example: name -->`.
func docsHostsExample(t *testing.T, name string) string {
	t.Helper()
	return docsBlock(t, hostsPage, "hosts-example", name, "text")
}

// corefileReload returns the reload period of the Corefile's hosts block.
func corefileReload(t *testing.T, corefile string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(corefileSetting(t, corefile, "reload"))
	if err != nil {
		t.Fatalf("the documented Corefile's reload: %v", err)
	}
	return d
}

// corefileSetting returns the value of the Corefile's line "name value".
func corefileSetting(t *testing.T, corefile, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + name + `\s+(\S+)\s*$`).FindStringSubmatch(corefile)
	if m == nil {
		t.Fatalf("the documented Corefile sets no %s:\n%s", name, corefile)
	}
	return m[1]
}

// dnsAnswer is what dig printed for one A query.
type dnsAnswer struct {
	status string   // NOERROR, NXDOMAIN, ...
	addrs  []string // the A records, sorted
	ttls   []string // their TTLs
}

func (a dnsAnswer) String() string { return a.status + " " + strings.Join(a.addrs, ",") }

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digA      = regexp.MustCompile(`(?m)^\S+\s+(\d+)\s+IN\s+A\s+(\S+)$`)
)

// dig asks the server at 127.0.0.1:port in h's namespace for name's A
// records with dig, at path bin.
func dig(h *netns.Host, bin, port, name string) (dnsAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := h.Run(ctx, bin, "@127.0.0.1", "-p", port, "+noall", "+comments", "+answer", "+time=1", "+tries=1", name, "A")
	if r.Err != nil {
		return dnsAnswer{}, fmt.Errorf("dig %s: %v: %s%s", name, r.Err, r.Stdout, r.Stderr)
	}
	m := digStatus.FindStringSubmatch(r.Stdout)
	if m == nil {
		return dnsAnswer{}, fmt.Errorf("dig %s: no status in %q", name, r.Stdout)
	}
	a := dnsAnswer{status: m[1]}
	for _, rec := range digA.FindAllStringSubmatch(r.Stdout, -1) {
		a.ttls = append(a.ttls, rec[1])
		a.addrs = append(a.addrs, rec[2])
	}
	slices.Sort(a.addrs)
	return a, nil
}

// dnsServer is a DNS server on the client namespace's loopback.
type dnsServer struct {
	name, port string
	dig        string // dig's path
	// absent is its status for a name of the zone the file does not hold.
	absent string
	// ttl is the TTL of its answers.
	ttl string
}

// answers reports whether s answers every name of want with exactly its
// addresses (none: s.absent), and what it answered.
func (s dnsServer) answers(h *netns.Host, want map[string][]string) (bool, string) {
	ok := true
	var got []string
	for _, name := range harness.Keys(want) {
		a, err := dig(h, s.dig, s.port, name)
		if err != nil {
			return false, err.Error()
		}
		wantStatus := "NOERROR"
		if len(want[name]) == 0 {
			wantStatus = s.absent
		}
		if a.status != wantStatus || !slices.Equal(a.addrs, want[name]) {
			ok = false
		}
		got = append(got, s.name+" "+name+": "+a.String())
	}
	return ok, strings.Join(got, "; ")
}

// TestHostsFileDNS: `bridge run --sink file --file-format hosts` with three
// servers (one answering for two ports); CoreDNS's hosts plugin and dnsmasq
// serve the file with the documented settings; dig gets each server's name
// with its address and the shared name with every address, once; quiet
// rounds leave the file alone; a server stopped leaves the file within
// missed_rounds × interval + timeout, dnsmasq's answers at once and
// CoreDNS's within its reload period more, as docs/sinks/file.md says.
func TestHostsFileDNS(t *testing.T) {
	t.Parallel()
	digBin := netns.RequireTool(t, "dig")
	dnsmasq := netns.RequireTool(t, "dnsmasq")
	start := time.Now()
	l := harness.NewRunLAN(t, 3, false)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	harness.Respond(t, l.Servers[0], 2, "--ip", "10.213.1.11", "--app-port", "8001")
	s2 := harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	harness.Respond(t, l.Servers[2], 1, "--ip", "10.213.1.13")
	coredns := corednsbin.Path(t)

	dir := filepath.Join(t.TempDir(), "hosts.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	inDir := strings.NewReplacer(docsHostsDir, dir)
	path := inDir.Replace(docsHostsDir + "/django.hosts")
	const (
		interval     = time.Second
		timeout      = 500 * time.Millisecond
		missedRounds = 3
		// slack is what the bounds allow for a loaded machine: the poll
		// period, dig's start, the scheduling of three processes.
		slack = time.Second
	)
	args := []string{"--sink", "file", "--file-format", "hosts", "--file-path", path, "--whitelist", l.Client.Dev(l.Br),
		"--interval", interval.String(), "--timeout", timeout.String(), "--missed-rounds", fmt.Sprint(missedRounds), "--metrics-addr", ""}

	// CoreDNS on :53 of the client namespace, with the documented Corefile.
	corefileText := inDir.Replace(docsHostsExample(t, "coredns"))
	if !strings.Contains(corefileText, "hosts "+path+" ") {
		t.Fatalf("the documented Corefile does not serve the documented file %s:\n%s", path, corefileText)
	}
	reload := corefileReload(t, corefileText)
	corefile := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(corefile, []byte(corefileText), 0o644); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Client.Start(t.Context(), coredns, "-conf", corefile)
	if err != nil {
		t.Fatal(err)
	}
	// dnsmasq on 127.0.0.1:5353, with the documented lines and the test's
	// own listening options.
	dnsmasqConf := filepath.Join(t.TempDir(), "dnsmasq.conf")
	if err := os.WriteFile(dnsmasqConf, []byte(inDir.Replace(docsHostsExample(t, "dnsmasq"))), 0o644); err != nil {
		t.Fatal(err)
	}
	dp, err := l.Client.Start(t.Context(), dnsmasq, "--keep-in-foreground", "--conf-file="+dnsmasqConf, "--port=5353",
		"--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--pid-file=", "--log-facility=-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range map[string]*netns.Proc{"coredns": cp, "dnsmasq": dp} {
				stdout, stderr := p.Output()
				t.Logf("%s (exit %d):\n%s\n%s", name, p.ExitCode(), harness.Tail(stdout, 40), harness.Tail(stderr, 40))
			}
			b, _ := os.ReadFile(path)
			t.Logf("%s:\n%s", path, b)
		}
	})
	// CoreDNS's hosts plugin has no SOA to answer NXDOMAIN with: it
	// answers SERVFAIL for a name it does not hold (docs/sinks/file.md).
	// dnsmasq answers from hosts files with TTL 0 (local-ttl).
	servers := []dnsServer{{"coredns", "53", digBin, "SERVFAIL", corefileSetting(t, corefileText, "ttl")}, {"dnsmasq", "5353", digBin, "NXDOMAIN", "0"}}

	// waitAll waits until every server answers want and, unless fileGone
	// is empty, the file holds no fileGone; it returns how long each of
	// them took. Each is watched on its own: the file every 10 ms, a
	// server as fast as dig answers.
	waitAll := func(what string, want map[string][]string, fileGone string) map[string]time.Duration {
		t.Helper()
		since := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		type result struct {
			name   string
			took   time.Duration // -1: not within the time
			detail string
		}
		results := make(chan result)
		watch := func(name string, period time.Duration, cond func() (bool, string)) {
			go func() {
				for {
					ok, detail := cond()
					if ok {
						results <- result{name, time.Since(since), ""}
						return
					}
					select {
					case <-ctx.Done():
						results <- result{name, -1, detail}
						return
					case <-time.After(period):
					}
				}
			}()
		}
		n := len(servers)
		if fileGone != "" {
			n++
			watch("file", 10*time.Millisecond, func() (bool, string) {
				b, err := os.ReadFile(path)
				return err == nil && !strings.Contains(string(b), fileGone), fmt.Sprint(err, "\n", string(b))
			})
		}
		for _, s := range servers {
			watch(s.name, 50*time.Millisecond, func() (bool, string) { return s.answers(l.Client, want) })
		}
		took := map[string]time.Duration{}
		for range n {
			r := <-results
			if r.took < 0 {
				t.Errorf("waiting for %s: %s still answers %s", what, r.name, r.detail)
			}
			took[r.name] = r.took
		}
		if t.Failed() {
			t.FailNow()
		}
		return took
	}

	b := harness.StartRun(t, l.Client, "hosts", args...)
	want := map[string][]string{
		"django.udb.internal":             {"10.213.1.11", "10.213.1.12", "10.213.1.13"},
		"django-10-213-1-11.udb.internal": {"10.213.1.11"},
		"django-10-213-1-12.udb.internal": {"10.213.1.12"},
		"django-10-213-1-13.udb.internal": {"10.213.1.13"},
	}
	first := waitAll("both servers answering every server", want, "")
	t.Logf("MEASURED: after the bridge started, dnsmasq answered the three servers in %s, CoreDNS in %s (it started before the file existed: its next reload)",
		first["dnsmasq"].Round(10*time.Millisecond), first["coredns"].Round(10*time.Millisecond))
	for _, s := range servers {
		a, err := dig(l.Client, s.dig, s.port, "django.udb.internal")
		if err != nil || len(a.ttls) != 3 || slices.Compact(a.ttls)[0] != s.ttl {
			t.Errorf("%s: the shared name's records have TTLs %v (%v), want %s", s.name, a.ttls, err, s.ttl)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if doc := docsHostsExample(t, "file"); string(got) != doc {
		t.Errorf("the hosts file:\n%s\nthe documented one (%s):\n%s", got, hostsPage, doc)
	}

	// Quiet rounds leave the file alone.
	st1, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * interval)
	if st2, err := os.Stat(path); err != nil || !os.SameFile(st1, st2) || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("the file was rewritten during quiet rounds (%v)", err)
	}

	// s2 stops: it leaves the file, then each server's answers.
	gone := map[string][]string{
		"django.udb.internal":             {"10.213.1.11", "10.213.1.13"},
		"django-10-213-1-11.udb.internal": {"10.213.1.11"},
		"django-10-213-1-12.udb.internal": nil,
		"django-10-213-1-13.udb.internal": {"10.213.1.13"},
	}
	harness.StopResponder(t, s2)
	left := waitAll("10.213.1.12 gone from the file and both servers' answers", gone, "\n10.213.1.12 ")
	removal := missedRounds*interval + timeout
	ms := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	t.Logf("MEASURED: 10.213.1.12 stopped answering: out of the file after %s (bound missed_rounds × interval + timeout = %s), "+
		"out of dnsmasq's answers after %s (%s after the file; bound %s), out of CoreDNS's after %s (%s after the file; bound + reload %s = %s); whole test %s",
		ms(left["file"]), removal, ms(left["dnsmasq"]), ms(left["dnsmasq"]-left["file"]), removal,
		ms(left["coredns"]), ms(left["coredns"]-left["file"]), reload, removal+reload, time.Since(start).Round(100*time.Millisecond))
	for _, c := range []struct {
		what  string
		took  time.Duration
		bound time.Duration
	}{
		{"the file", left["file"], removal},
		{"dnsmasq's answers", left["dnsmasq"], removal},
		{"CoreDNS's answers", left["coredns"], removal + reload},
		{"CoreDNS's answers after the file's", left["coredns"] - left["file"], reload},
	} {
		if c.took > c.bound+slack {
			t.Errorf("10.213.1.12 left %s %s after it stopped answering; the documented bound is %s (+ %s for the machine)", c.what, c.took, c.bound, slack)
		}
	}
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}
