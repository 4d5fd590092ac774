package sink

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// defaultHosts are the hosts format's default names.
var defaultHosts = HostsNames{Pattern: DefaultHostsName, Shared: DefaultHostsSharedName}

// hostsDoc is a hosts document: the header, then lines.
func hostsDoc(lines ...string) string {
	return hostsHeader + "\n" + strings.Join(append(lines, ""), "\n")
}

func TestHostsFormat(t *testing.T) {
	withPort := HostsNames{Pattern: "web-{ip_dashed}-{port}.hall-3.example", Shared: "web.hall-3.example"}
	for _, tc := range []struct {
		name  string
		names HostsNames
		eps   []endpoint.Endpoint
		want  string
	}{
		{"no servers: the header alone", defaultHosts, nil, hostsDoc()},
		{"one line per address, in address order (10 after 9), each name then the shared one",
			defaultHosts,
			[]endpoint.Endpoint{ep("10.0.0.10:8000", t0), ep("10.0.0.9:8001", t0), ep("192.168.1.2:8000", t0)},
			hostsDoc(
				"10.0.0.9 django-10-0-0-9.udb.internal django.udb.internal # ports 8001",
				"10.0.0.10 django-10-0-0-10.udb.internal django.udb.internal # ports 8000",
				"192.168.1.2 django-192-168-1-2.udb.internal django.udb.internal # ports 8000")},
		{"two ports on one address, no {port} in the pattern: one line, one name",
			defaultHosts,
			[]endpoint.Endpoint{ep("10.0.0.1:8001", t0), ep("10.0.0.1:8000", t0)},
			hostsDoc("10.0.0.1 django-10-0-0-1.udb.internal django.udb.internal # ports 8000 8001")},
		{"two ports on one address with {port}: one line, a name per port in port order",
			withPort,
			[]endpoint.Endpoint{ep("10.0.0.1:8001", t0), ep("10.0.0.1:8000", t0), ep("10.0.0.2:80", t0)},
			hostsDoc(
				"10.0.0.1 web-10-0-0-1-8000.hall-3.example web-10-0-0-1-8001.hall-3.example web.hall-3.example # ports 8000 8001",
				"10.0.0.2 web-10-0-0-2-80.hall-3.example web.hall-3.example # ports 80")},
		{"ready only: pending and failing servers are left out",
			defaultHosts,
			[]endpoint.Endpoint{health(ep("10.0.0.1:8000", t0), endpoint.Ready, "ok", t0), health(ep("10.0.0.2:8000", t0), endpoint.Pending, "", t0),
				health(ep("10.0.0.3:8000", t0), endpoint.Failing, "refused", t0), health(ep("10.0.0.4:8000", t0), endpoint.Ready, "ok", t0)},
			hostsDoc(
				"10.0.0.1 django-10-0-0-1.udb.internal django.udb.internal # ports 8000",
				"10.0.0.4 django-10-0-0-4.udb.internal django.udb.internal # ports 8000")},
		{"no server ready: the header alone",
			defaultHosts,
			[]endpoint.Endpoint{health(ep("10.0.0.2:8000", t0), endpoint.Pending, "", t0)},
			hostsDoc()},
		{"IPv4-mapped addresses unmapped; IPv6 and port 0 left out; loopback and link-local kept",
			defaultHosts,
			[]endpoint.Endpoint{ep("[::ffff:10.0.0.2]:8000", t0), ep("[2001:db8::1]:8000", t0), ep("10.0.0.3:0", t0),
				ep("127.0.0.1:8000", t0), ep("169.254.1.2:8000", t0)},
			hostsDoc(
				"10.0.0.2 django-10-0-0-2.udb.internal django.udb.internal # ports 8000",
				"127.0.0.1 django-127-0-0-1.udb.internal django.udb.internal # ports 8000",
				"169.254.1.2 django-169-254-1-2.udb.internal django.udb.internal # ports 8000")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hostsFormat{names: tc.names}
			s := snap(1, tc.eps...)
			key, err := h.key(s)
			if err != nil {
				t.Fatal(err)
			}
			doc, _ := h.document(s, key, t0)
			if string(doc) != tc.want {
				t.Errorf("document:\n%s\nwant:\n%s", doc, tc.want)
			}
			// What it lists is what it reads back.
			eps, back, ok := h.decode(doc)
			if !ok || string(back) != string(key) {
				t.Fatalf("decode of our own document: ok %v, key %q", ok, back)
			}
			if d := endpoint.Between(snapshotOf(eps).Endpoints, h.listed(s).Endpoints); !d.Empty() || d.Unchanged != len(eps) {
				t.Errorf("decoded %v, listed %v: %+v", eps, h.listed(s).Endpoints, d)
			}
		})
	}
}

// TestFileHostsWritesOnlyOnChange: file_format hosts writes atomically
// (no temporary file left, a new inode per write), only when the ready
// servers change: a quiet round, a round whose only change is a server
// that is not ready, and a restart with the same set write nothing; Plan
// reads the servers back, ports included.
func TestFileHostsWritesOnlyOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	clk := clocktest.New(t0)
	f, err := NewFileHosts(path, clk, defaultHosts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := ep("10.0.0.1:8000", t0), ep("10.0.0.2:8001", t0)
	if res, err := f.Apply(ctx, snap(1)); err != nil || res.Writes != 1 {
		t.Fatalf("empty first apply: %+v, %v (want the header written)", res, err)
	}
	if got, _ := os.ReadFile(path); string(got) != hostsDoc() {
		t.Fatalf("empty set = %q", got)
	}
	res, err := f.Apply(ctx, snap(2, a, b))
	if err != nil || res.Writes != 1 || len(res.Diff.Added) != 2 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	want := hostsDoc("10.0.0.1 django-10-0-0-1.udb.internal django.udb.internal # ports 8000",
		"10.0.0.2 django-10-0-0-2.udb.internal django.udb.internal # ports 8001")
	if got, _ := os.ReadFile(path); string(got) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", got, want)
	}
	st1, _ := os.Stat(path)
	a2 := a
	a2.LastSeen = t0.Add(time.Minute)
	clk.Advance(time.Minute)
	if res, err := f.Apply(ctx, snap(3, a2, b)); err != nil || res.Writes != 0 {
		t.Fatalf("quiet apply wrote: %+v, %v", res, err)
	}
	c := health(ep("10.0.0.3:8000", t0), endpoint.Pending, "", t0)
	if res, err := f.Apply(ctx, snap(4, a2, b, c)); err != nil || res.Writes != 0 {
		t.Fatalf("a pending server's arrival wrote: %+v, %v", res, err)
	}
	if st2, _ := os.Stat(path); !os.SameFile(st1, st2) {
		t.Fatal("file replaced on a quiet round")
	}
	// b's check fails: it leaves the file.
	bFailing := health(b, endpoint.Failing, "refused", t0)
	if res, err := f.Apply(ctx, snap(5, a2, bFailing, c)); err != nil || res.Writes != 1 || len(res.Diff.Removed) != 1 || res.Diff.Removed[0].Addr != b.Addr {
		t.Fatalf("b failing: %+v, %v (want one write removing it)", res, err)
	}
	if st3, _ := os.Stat(path); os.SameFile(st1, st3) {
		t.Error("the file was written in place, not replaced")
	}
	if got, _ := os.ReadFile(path); string(got) != hostsDoc("10.0.0.1 django-10-0-0-1.udb.internal django.udb.internal # ports 8000") {
		t.Errorf("file after b failed:\n%s", got)
	}

	// A restart with the same set writes nothing; Plan reads the servers back.
	f2, _ := NewFileHosts(path, clocktest.New(t0), defaultHosts)
	if res, err := f2.Apply(ctx, snap(1, a, bFailing)); err != nil || res.Writes != 0 {
		t.Fatalf("restart apply: %+v, %v", res, err)
	}
	diff, err := f2.Plan(ctx, snap(1, b, ep("10.0.0.1:8001", t0)))
	if err != nil || len(diff.Removed) != 1 || diff.Removed[0].Addr != a.Addr || len(diff.Added) != 2 {
		t.Fatalf("Plan = %+v, %v (want 10.0.0.1:8000 removed, 10.0.0.1:8001 and b added)", diff, err)
	}
	// Other names are another file: written once.
	f3, _ := NewFileHosts(path, clk, HostsNames{Pattern: "{ip_dashed}.lab", Shared: "all.lab"})
	if res, err := f3.Apply(ctx, snap(1, a)); err != nil || res.Writes != 1 || !res.Diff.Empty() {
		t.Fatalf("renamed: %+v, %v (want one write, nothing added or removed)", res, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A file the sink did not write (no header) is replaced, as every
	// format replaces what is not its own.
	if err := os.WriteFile(path, []byte("10.0.0.1 django-10-0-0-1.udb.internal django.udb.internal # ports 8000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f4, _ := NewFileHosts(path, clk, defaultHosts)
	if res, err := f4.Apply(ctx, snap(1, a)); err != nil || res.Writes != 1 {
		t.Fatalf("over a file without the header: %+v, %v", res, err)
	}
}

// validDNSName says why s is not a DNS name (RFC 1123 labels of at most
// 63 characters, 253 in all), or "": the test's own reading of the rule,
// independent of the keys' patterns.
func validDNSName(s string) string {
	if len(s) > 253 {
		return fmt.Sprintf("%d characters", len(s))
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Sprintf("label %q of %d characters", l, len(l))
		}
		for i, r := range l {
			alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
			if !alnum && (r != '-' || i == 0 || i == len(l)-1) {
				return fmt.Sprintf("label %q: %q at %d", l, r, i)
			}
		}
	}
	return ""
}

// hostsExtremes are addresses whose names are the longest and shortest a
// pattern can make, and some in between.
var hostsExtremes = []netip.AddrPort{
	netip.MustParseAddrPort("255.255.255.255:65535"), netip.MustParseAddrPort("0.0.0.0:1"),
	netip.MustParseAddrPort("10.1.2.3:8000"), netip.MustParseAddrPort("10.1.2.31:8000"), netip.MustParseAddrPort("10.1.2.3:18000"),
}

// checkHostsPattern fails t unless every name pattern makes of
// hostsExtremes is a valid DNS name, and distinct servers get distinct
// names (servers of one address too when pattern holds {port}).
func checkHostsPattern(t *testing.T, pattern string) {
	t.Helper()
	n := HostsNames{Pattern: pattern}
	seen := map[string]netip.AddrPort{}
	for _, a := range hostsExtremes {
		name := n.Name(a)
		if why := validDNSName(name); why != "" {
			t.Fatalf("file_hosts_name %q accepted, but names %v %q: %s", pattern, a, name, why)
		}
		if b, dup := seen[name]; dup && (b.Addr() != a.Addr() || strings.Contains(pattern, HostsPort)) {
			t.Fatalf("file_hosts_name %q gives %v and %v the same name %q", pattern, a, b, name)
		}
		seen[name] = a
	}
}

// TestHostsNameKeys: the keys accept the names that make valid DNS names
// for every address, refuse the others, and a loaded configuration's
// refusal names the key, the value, where it came from and why.
func TestHostsNameKeys(t *testing.T) {
	name, shared := hostsNameKey(), hostsSharedNameKey()
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		pattern string
		ok      bool
	}{
		{DefaultHostsName, true},
		{"{ip_dashed}", true},
		{"{ip_dashed}.udb.internal", true},
		{"{ip_dashed}-{port}", true},
		{"{port}-{ip_dashed}.x", true},
		{"web-{ip_dashed}-p{port}.hall-3.example.com", true},
		{"abcdefghijklm-{ip_dashed}-abcdefghijkl-{port}-abcdefghijklm", true}, // 14, 14, 14: 62 at most
		{"abcdefghijklm-{ip_dashed}-abcdefghijkl-{port}-abcdefghijklmn", false},
		{long + ".{ip_dashed}." + long, true},
		{"9{ip_dashed}9", true},
		{strings.Repeat("a.", 119) + "{ip_dashed}", true}, // 249
		{strings.Repeat("a.", 120) + "{ip_dashed}", false},
		{"abcdefghijklmno-{ip_dashed}", false}, // 15 before
		{"{ip_dashed}-abcdefghijklmn", false},  // 15 after
		{"{ip_dashed}-abcdefghijklmn-{port}", false},
		{"django.udb.internal", false}, // no {ip_dashed}
		{"{port}.udb.internal", false},
		{"{ip_dashed}.{port}.udb", false}, // two labels
		{"{ip_dashed}-{ip_dashed}", false},
		{"{ip_dashed}{port}", false}, // 10-1-2-3 18000 or 10-1-2-31 8000
		{"{ip_dashed}9{port}", false},
		{"{port}{ip_dashed}", false},
		{"{ip}.udb", false},
		{"{IP_DASHED}.udb", false},
		{"Django-{ip_dashed}", false},
		{"django_{ip_dashed}", false},
		{"-{ip_dashed}", false},
		{"{ip_dashed}-", false},
		{"{ip_dashed}..udb", false},
		{"{ip_dashed}.udb.", false},
		{".{ip_dashed}", false},
		{long + "a.{ip_dashed}", false},
		{"é{ip_dashed}", false},
		{"{ip_dashed} x", false},
	} {
		err := name.Check(tc.pattern)
		if (err == nil) != tc.ok {
			t.Errorf("file_hosts_name %q: %v, want ok=%v", tc.pattern, err, tc.ok)
		}
		if err == nil {
			checkHostsPattern(t, tc.pattern)
		}
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{DefaultHostsSharedName, true}, {"django", true}, {"a-b.c", true}, {long + "." + long, true},
		{strings.Repeat("a.", 126) + "a", true}, {strings.Repeat("a.", 127) + "a", false},
		{"", false},
		{"Django.lan", false}, {"django_udb", false}, {"-django", false}, {"django.", false}, {long + "a", false},
		{"{ip_dashed}.lan", false}, {"a..b", false}, {"*.lan", false},
	} {
		err := shared.Check(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("file_hosts_shared_name %q: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err == nil && tc.name != "" {
			if why := validDNSName(tc.name); why != "" {
				t.Errorf("file_hosts_shared_name %q accepted: %s", tc.name, why)
			}
		}
	}
	if err := (HostsNames{Pattern: "x.lan", Shared: "y.lan"}).Check(); err == nil || !strings.Contains(err.Error(), `file_hosts_name "x.lan": want a DNS name`) {
		t.Errorf("Check of a name without {ip_dashed} = %v", err)
	}
	if _, err := NewFileHosts(filepath.Join(t.TempDir(), "hosts"), nil, HostsNames{Pattern: DefaultHostsName}); err == nil || !strings.Contains(err.Error(), "file_hosts_shared_name: empty") {
		t.Errorf("NewFileHosts without a shared name = %v", err)
	}

	// Loaded: the error names the key, the value and its source.
	schema := NewRegistry(StdoutFactory(), FileFactory()).Schema()
	for _, tc := range []struct {
		in   config.Inputs
		want string
	}{
		{config.Inputs{Flags: map[string]any{"file_hosts_name": "Web-{ip_dashed}"}}, `file_hosts_name (flag --file-hosts-name): bad value "Web-{ip_dashed}": want a DNS name`},
		{config.Inputs{LookupEnv: func(k string) (string, bool) {
			return "lan_1", k == "DISCOVERY_CLIENT_FILE_HOSTS_SHARED_NAME"
		}}, `file_hosts_shared_name (env DISCOVERY_CLIENT_FILE_HOSTS_SHARED_NAME): bad value "lan_1": want a DNS name`},
		{config.Inputs{Flags: map[string]any{"file_hosts_name": strings.Repeat("a.", 120) + "{ip_dashed}"}}, `file_hosts_name (flag --file-hosts-name): bad value`},
	} {
		_, err := schema.Load(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error = %v, want %s", err, tc.want)
		}
	}
}

// FuzzHostsNamePattern: any file_hosts_name the key accepts makes a valid
// DNS name of every address and port, and distinct names of distinct
// servers.
func FuzzHostsNamePattern(f *testing.F) {
	for _, s := range []string{DefaultHostsName, "{ip_dashed}", "{port}-{ip_dashed}", "a-{ip_dashed}-b-{port}-c.d", "{ip_dashed}{port}", "x.{ip_dashed}.y"} {
		f.Add(s)
	}
	key := hostsNameKey()
	f.Fuzz(func(t *testing.T, pattern string) {
		if pattern == "" || key.Check(pattern) != nil {
			return
		}
		checkHostsPattern(t, pattern)
	})
}

// FuzzFileHostsDecode: whatever is at the path (another tool's file, a
// hand edit), reading it back never panics, yields only IPv4 endpoints
// with a port, and what it yields survives a write and a read.
func FuzzFileHostsDecode(f *testing.F) {
	for _, seed := range []string{
		hostsDoc(),
		hostsDoc("10.0.0.1 django-10-0-0-1.udb.internal django.udb.internal # ports 8000 8001"),
		hostsDoc("10.0.0.1 a # ports 0 70000 x 80", "::1 b # ports 80", "::ffff:10.0.0.2 c # ports 81", "nope d # ports 1"),
		hostsDoc("10.0.0.1 # ports 80", "10.0.0.1 a #ports 80", "# ports 80", "10.0.0.1 a # ports 80 # ports 81"),
		"127.0.0.1 localhost\n", "", hostsHeader, hostsHeader + "\r\n10.0.0.1 a # ports 80\r\n",
	} {
		f.Add([]byte(seed))
	}
	h := hostsFormat{names: defaultHosts}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, h, b, func(a netip.AddrPort) bool { return a.Addr().Is4() && a.Port() != 0 })
	})
}

// TestFileFormatHostsKey: file_format hosts through the registry writes
// the hosts file under the configured names.
func TestFileFormatHostsKey(t *testing.T) {
	reg := NewRegistry(StdoutFactory(), FileFactory())
	path := filepath.Join(t.TempDir(), "hosts")
	cfg, err := reg.Schema().Load(config.Inputs{Flags: map[string]any{"sinks": []string{"file"}, "file_path": path, "file_format": "hosts",
		"file_hosts_name": "s{port}-{ip_dashed}.lab", "file_hosts_shared_name": "lab"}})
	if err != nil {
		t.Fatal(err)
	}
	sinks, err := reg.Build(cfg, Deps{Registerer: prometheus.NewRegistry(), BridgeID: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sinks[0].Apply(context.Background(), snap(1, ep("10.0.0.1:8000", t0))); err != nil {
		t.Fatal(err)
	}
	if got, want := mustRead(t, path), hostsDoc("10.0.0.1 s8000-10-0-0-1.lab lab # ports 8000"); got != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
