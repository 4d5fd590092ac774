package discover_test

// End-to-end tests of `bridge discover`, `respond`, `interfaces`, `doctor` and
// `keygen`: the real binary, run inside network namespaces joined by Linux
// bridges on 10.213.x.y. Nothing here runs in the root namespace, where a
// discovery round would broadcast to the machine's real network.

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestDiscoverLAN covers one segment with three servers: all found with the
// right ports and fields, table output, --one, exit codes, interfaces, doctor.
func TestDiscoverLAN(t *testing.T) {
	t.Parallel()
	l := harness.NewLAN(t, 3)
	bridgebin.Path(t)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11", "--app-port", "8001")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	harness.Respond(t, l.Servers[2], 1, "--ip", "10.213.1.13")
	dev := l.Client.Dev(l.Br)

	t.Run("all servers found with their ports and fields", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, l.Client, nil, 0, "--timeout", "1")
		harness.WantServers(t, got, r, "10.213.1.11:8001", "10.213.1.12:8000", "10.213.1.13:8000")
		want := map[string]harness.Server{
			"10.213.1.11:8001": {IP: "10.213.1.11", Port: 8001, SourceAddress: "10.213.1.11:9999", Interface: dev,
				RawResponse: "SERVER_IP:10.213.1.11:8001", PayloadIP: "10.213.1.11", AddressFrom: "payload"},
			"10.213.1.12:8000": {IP: "10.213.1.12", Port: 8000, SourceAddress: "10.213.1.12:9999", Interface: dev,
				RawResponse: "SERVER_IP:10.213.1.12", PayloadIP: "10.213.1.12", AddressFrom: "payload"},
			"10.213.1.13:8000": {IP: "10.213.1.13", Port: 8000, SourceAddress: "10.213.1.13:9999", Interface: dev,
				RawResponse: "SERVER_IP:10.213.1.13", PayloadIP: "10.213.1.13", AddressFrom: "payload"},
		}
		for k, w := range want {
			if g, ok := got[k]; ok && g != w {
				t.Errorf("server %s:\n got %+v\nwant %+v", k, g, w)
			}
		}
	})

	t.Run("table output lists every server", func(t *testing.T) {
		r := harness.Bridge(t, l.Client, nil, "discover", "--timeout", "1")
		if r.ExitCode != 0 {
			t.Fatalf("exit %d, want 0\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		for _, s := range []string{"10.213.1.11", "8001", "10.213.1.12", "10.213.1.13", "8000"} {
			if !strings.Contains(r.Stdout, s) {
				t.Errorf("table output lacks %q:\n%s", s, r.Stdout)
			}
		}
	})

	t.Run("--one returns long before the timeout", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, l.Client, nil, 0, "--one", "--timeout", "10")
		if len(got) != 1 {
			t.Errorf("--one printed %d servers, want 1: %s", len(got), r.Stdout)
		}
		// Generous bound: the first reply arrives within milliseconds.
		if r.Elapsed > 2*time.Second {
			t.Errorf("--one with --timeout 10 took %v, want < 2s", r.Elapsed)
		}
	})

	t.Run("exit 1 when nothing answers", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, l.Client, nil, 1, "--port", "9998", "--timeout", "1")
		harness.WantServers(t, got, r)
	})

	t.Run("exit 2 on bad config naming the key", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want []string // substrings of stderr (case-insensitive)
		}{
			{"negative timeout flag", nil, []string{"--timeout=-1"}, []string{"timeout", "-1"}},
			{"timeout not a number", nil, []string{"--timeout", "soon"}, []string{"timeout", "soon"}},
			{"port out of range", nil, []string{"--port", "70000"}, []string{"port", "70000"}},
			{"negative retries", nil, []string{"--retries=-2"}, []string{"retries", "-2"}},
			{"unknown address policy", nil, []string{"--address-from", "dns"}, []string{"address", "dns"}},
			{"bad env timeout", []string{"DISCOVERY_CLIENT_TIMEOUT=abc"}, nil, []string{"timeout", "abc"}},
			{"scan cidr not a cidr", nil, []string{"--scan-cidr", "10.213.2.0/33"}, []string{"scan", "10.213.2.0/33"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := []string{"discover"}
				if tc.env == nil {
					// The flag under test comes last and overrides this bound.
					args = append(args, "--timeout", "1")
				}
				r := harness.Bridge(t, l.Client, tc.env, append(args, tc.args...)...)
				if r.ExitCode != 2 {
					t.Errorf("exit %d, want 2\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(strings.ToLower(r.Stderr), strings.ToLower(w)) {
						t.Errorf("stderr does not mention %q:\n%s", w, r.Stderr)
					}
				}
				if strings.TrimSpace(r.Stdout) != "" {
					t.Errorf("stdout not empty on a config error: %q", r.Stdout)
				}
			})
		}
	})

	t.Run("interfaces --json lists the veth", func(t *testing.T) {
		r := harness.Bridge(t, l.Client, nil, "interfaces", "--json")
		if r.ExitCode != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		var out struct {
			Interfaces []struct {
				Name            string `json:"name"`
				IP              string `json:"ip"`
				Netmask         string `json:"netmask"`
				Prefix          int    `json:"prefix"`
				Network         string `json:"network"`
				Broadcast       string `json:"broadcast"`
				BroadcastFromOS bool   `json:"broadcast_from_os"`
			} `json:"interfaces"`
			Segmented []json.RawMessage `json:"segmented"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("interfaces --json: %v\n%s", err, r.Stdout)
		}
		if len(out.Interfaces) != 1 {
			t.Fatalf("interfaces = %+v, want exactly %s (lo excluded)", out.Interfaces, dev)
		}
		i := out.Interfaces[0]
		if i.Name != dev || i.IP != "10.213.1.10" || i.Netmask != "255.255.255.0" || i.Prefix != 24 ||
			!strings.HasPrefix(i.Network, "10.213.1.0") || i.Broadcast != "10.213.1.255" || !i.BroadcastFromOS {
			t.Errorf("interface = %+v, want %s 10.213.1.10 255.255.255.0 /24 network 10.213.1.0 broadcast 10.213.1.255 from the OS", i, dev)
		}
		if len(out.Segmented) != 0 {
			t.Errorf("a /24 is not a segmented network, got %s", out.Segmented)
		}
	})

	t.Run("doctor finds the servers", func(t *testing.T) {
		r := harness.Bridge(t, l.Client, nil, "doctor", "--timeout", "1")
		if r.ExitCode != 0 {
			t.Errorf("doctor exit %d, want 0\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		out := r.Stdout + r.Stderr
		for _, s := range []string{dev, "10.213.1.11", "10.213.1.12", "10.213.1.13"} {
			if !strings.Contains(out, s) {
				t.Errorf("doctor output does not mention %s:\n%s", s, out)
			}
		}
	})

	t.Run("version", func(t *testing.T) {
		r := harness.Bridge(t, l.Client, nil, "version")
		if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) == "" {
			t.Errorf("version: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
		}
	})

	t.Run("doctor exits 1 when nothing answers", func(t *testing.T) {
		r := harness.Bridge(t, l.Client, nil, "doctor", "--port", "9998", "--timeout", "1")
		if r.ExitCode != 1 {
			t.Errorf("doctor exit %d, want 1\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
	})
}

// TestDiscoverInterfaceFilters puts a client on two segments and checks that
// whitelist and blacklist (flags and env) pick which segments are probed.
func TestDiscoverInterfaceFilters(t *testing.T) {
	t.Parallel()
	lab := netns.New(t)
	brA, brB := lab.Bridge("a"), lab.Bridge("b")
	client := lab.Host("client", brA, "10.213.1.10/24")
	client.AddLink(brB, "10.213.2.10/24")
	devA, devB := client.Dev(brA), client.Dev(brB)
	a1 := lab.Host("a1", brA, "10.213.1.11/24")
	a2 := lab.Host("a2", brA, "10.213.1.12/24")
	b1 := lab.Host("b1", brB, "10.213.2.11/24")
	bridgebin.Path(t)
	harness.Respond(t, a1, 1, "--ip", "10.213.1.11")
	harness.Respond(t, a2, 1, "--ip", "10.213.1.12")
	harness.Respond(t, b1, 1, "--ip", "10.213.2.11")
	onA := []string{"10.213.1.11:8000", "10.213.1.12:8000"}
	onB := []string{"10.213.2.11:8000"}
	all := append(slices.Clone(onA), onB...)

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"no filter probes both segments", nil, nil, all},
		{"whitelist A", nil, []string{"--whitelist", devA}, onA},
		{"interfaces-whitelist B", nil, []string{"--interfaces-whitelist", devB}, onB},
		{"whitelist both", nil, []string{"--whitelist", devA + "," + devB}, all},
		{"blacklist A", nil, []string{"--blacklist", devA}, onB},
		{"interfaces-blacklist B", nil, []string{"--interfaces-blacklist", devB}, onA},
		{"whitelist then blacklist", nil, []string{"--whitelist", devA + "," + devB, "--blacklist", devB}, onA},
		{"whitelist is case-sensitive", nil, []string{"--whitelist", strings.ToUpper(devA) + "," + devB}, onB},
		{"env whitelist", []string{"DISCOVERY_CLIENT_INTERFACES_WHITELIST=" + devB}, nil, onB},
		{"env blacklist", []string{"DISCOVERY_CLIENT_INTERFACES_BLACKLIST=" + devB}, nil, onA},
		{"flag overrides env", []string{"DISCOVERY_CLIENT_INTERFACES_WHITELIST=" + devB}, []string{"--whitelist", devA}, onA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, r := harness.DiscoverJSON(t, client, tc.env, 0, append([]string{"--timeout", "1"}, tc.args...)...)
			harness.WantServers(t, got, r, tc.want...)
			for k, s := range got {
				wantDev := devA
				if strings.HasPrefix(k, "10.213.2.") {
					wantDev = devB
				}
				if s.Interface != wantDev {
					t.Errorf("%s came in on %q, want %q", k, s.Interface, wantDev)
				}
			}
		})
	}

	t.Run("a link that is down is not probed", func(t *testing.T) {
		if err := client.SetLinkDown(devB); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := client.SetLinkUp(devB); err != nil {
				t.Error(err)
			}
		}()
		got, r := harness.DiscoverJSON(t, client, nil, 0, "--timeout", "1")
		harness.WantServers(t, got, r, onA...)
	})
}

// TestDiscoverRetriesSurviveLostProbe drops the first probe datagram for real
// in the server's namespace (an iptables quota rule that matches only the first
// probe): without retries the server is missed, with retries it is found.
func TestDiscoverRetriesSurviveLostProbe(t *testing.T) {
	t.Parallel()
	iptables := netns.RequireTool(t, "iptables")
	l := harness.NewLAN(t, 1)
	srv := l.Servers[0]
	bridgebin.Path(t)
	harness.Respond(t, srv, 1, "--ip", "10.213.1.11")

	// The probe "DISCOVER_SERVER" is a 43-byte IP packet (20 IP + 8 UDP + 15):
	// a 50-byte quota matches (drops) the first probe and no later one.
	dropFirstProbe := func(t *testing.T) {
		t.Helper()
		for _, args := range [][]string{
			{"-F", "INPUT"},
			{"-A", "INPUT", "-p", "udp", "--dport", "9999", "-m", "quota", "--quota", "50", "-j", "DROP"},
		} {
			if r := srv.Run(t.Context(), append([]string{iptables}, args...)...); r.Err != nil {
				t.Fatalf("iptables %s in %s: %v\n%s", strings.Join(args, " "), srv.NS, r.Err, r.Stderr)
			}
		}
	}
	dropped := func(t *testing.T) int {
		t.Helper()
		r := srv.Run(t.Context(), iptables, "-L", "INPUT", "-n", "-v", "-x")
		for line := range strings.Lines(r.Stdout) {
			if f := strings.Fields(line); len(f) > 2 && f[2] == "DROP" {
				n, err := strconv.Atoi(f[0])
				if err == nil {
					return n
				}
			}
		}
		t.Fatalf("no DROP rule counter in %s: %v\n%s%s", srv.NS, r.Err, r.Stdout, r.Stderr)
		return 0
	}

	t.Run("without retries the server is missed", func(t *testing.T) {
		dropFirstProbe(t)
		got, r := harness.DiscoverJSON(t, l.Client, nil, 1, "--retries", "0", "--timeout", "1")
		harness.WantServers(t, got, r)
		if n := dropped(t); n != 1 {
			t.Errorf("rule dropped %d packets, want exactly the one probe", n)
		}
	})
	t.Run("with retries the server is found", func(t *testing.T) {
		dropFirstProbe(t)
		got, r := harness.DiscoverJSON(t, l.Client, nil, 0, "--retries", "2", "--timeout", "1.5")
		harness.WantServers(t, got, r, "10.213.1.11:8000")
		if n := dropped(t); n != 1 {
			t.Errorf("rule dropped %d packets, want exactly the first probe", n)
		}
	})
}

// TestDiscoverEncrypted runs a responder with a Fernet key: the right key finds
// it (flag, file, env), a wrong key or plaintext finds nothing, a missing key is
// a config error.
func TestDiscoverEncrypted(t *testing.T) {
	t.Parallel()
	l := harness.NewLAN(t, 1)
	keygen := func(t *testing.T) string {
		t.Helper()
		r := harness.Bridge(t, l.Client, nil, "keygen")
		if r.ExitCode != 0 {
			t.Fatalf("keygen exit %d: %s", r.ExitCode, r.Stderr)
		}
		k := strings.TrimSpace(r.Stdout)
		if b, err := base64.URLEncoding.DecodeString(k); err != nil || len(b) != 32 {
			t.Fatalf("keygen printed %q: not URL-safe base64 of 32 bytes (%v)", k, err)
		}
		return k
	}
	key, wrong := keygen(t), keygen(t)
	if key == wrong {
		t.Fatalf("two keygen runs printed the same key %q", key)
	}
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11", "--secret-key", key)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	found := []string{"10.213.1.11:8000"}

	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		wantExit int
		want     []string
	}{
		{"right key", nil, []string{"--encryption", "--secret-key", key}, 0, found},
		{"key from file", nil, []string{"--encryption", "--secret-key-file", keyFile}, 0, found},
		{"key and switch from env", []string{"DISCOVERY_CLIENT_ENCRYPTION_ENABLED=true", "DISCOVERY_CLIENT_SECRET_KEY=" + key}, nil, 0, found},
		{"fallback env DISCOVERY_SECRET_KEY", []string{"DISCOVERY_SECRET_KEY=" + key}, []string{"--encryption"}, 0, found},
		{"wrong key finds nothing", nil, []string{"--encryption", "--secret-key", wrong}, 1, nil},
		{"plaintext probe is ignored", nil, nil, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, r := harness.DiscoverJSON(t, l.Client, tc.env, tc.wantExit, append([]string{"--timeout", "1"}, tc.args...)...)
			harness.WantServers(t, got, r, tc.want...)
			if s, ok := got["10.213.1.11:8000"]; ok && s.RawResponse != "SERVER_IP:10.213.1.11" {
				t.Errorf("raw_response = %q, want the decrypted SERVER_IP:10.213.1.11", s.RawResponse)
			}
			if strings.Contains(r.Stderr, key) || strings.Contains(r.Stderr, wrong) {
				t.Errorf("stderr leaks a secret key:\n%s", r.Stderr)
			}
		})
	}

	// bridge run's start-up line says whether encryption is on.
	for _, tc := range []struct {
		name string
		args []string
		on   bool
	}{
		{"run with the key", []string{"--encryption", "--secret-key", key}, true},
		{"run in plaintext", nil, false},
	} {
		t.Run(tc.name+" says so at start", func(t *testing.T) {
			b := harness.StartRun(t, l.Client, tc.name, append([]string{"--sink", "stdout", "--interval", "2s", "--timeout", "1",
				"--metrics-addr", "", "--log-format", "json"}, tc.args...)...)
			var starts []map[string]any
			harness.Wait(t, 10*time.Second, "the start-up line", func() (bool, string) {
				_, stderr := b.Output()
				starts = nil
				for line := range strings.Lines(stderr) {
					var m map[string]any
					if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "loop started" {
						starts = append(starts, m)
					}
				}
				return len(starts) > 0, stderr
			})
			if code := b.Sigterm(t, 5*time.Second); code != 0 {
				t.Errorf("bridge exit %d", code)
			}
			_, stderr := b.Output()
			if len(starts) != 1 || starts[0]["encryption"] != tc.on {
				t.Errorf("loop started lines %v, want one with encryption=%v", starts, tc.on)
			}
			if strings.Contains(stderr, key) {
				t.Errorf("stderr leaks the secret key:\n%s", stderr)
			}
		})
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"encryption without a key", []string{"--encryption"}},
		{"invalid key", []string{"--encryption", "--secret-key", "not-a-fernet-key"}},
		{"missing key file", []string{"--encryption", "--secret-key-file", filepath.Join(t.TempDir(), "absent")}},
	} {
		t.Run(tc.name+" is a config error", func(t *testing.T) {
			r := harness.Bridge(t, l.Client, nil, append([]string{"discover", "--timeout", "1"}, tc.args...)...)
			if r.ExitCode != 2 {
				t.Errorf("exit %d, want 2\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
			}
			if !strings.Contains(strings.ToLower(r.Stderr), "key") {
				t.Errorf("stderr does not name the key setting:\n%s", r.Stderr)
			}
			if strings.Contains(r.Stderr, "not-a-fernet-key") {
				t.Errorf("stderr echoes the secret value:\n%s", r.Stderr)
			}
		})
	}
}

// TestDiscoverSubnetScan puts the server on another subnet behind a router:
// broadcast cannot reach it, a unicast scan of its /28 can.
func TestDiscoverSubnetScan(t *testing.T) {
	t.Parallel()
	lab := netns.New(t)
	brA, brB := lab.Bridge("a"), lab.Bridge("b")
	lab.Router("r", map[*netns.Bridge]string{brA: "10.213.1.1/24", brB: "10.213.2.1/24"})
	client := lab.Host("client", brA, "10.213.1.10/24")
	client.SetDefaultRoute("10.213.1.1")
	srv := lab.Host("server", brB, "10.213.2.10/24")
	srv.SetDefaultRoute("10.213.2.1")
	bridgebin.Path(t)
	harness.Respond(t, srv, 1, "--ip", "10.213.2.10")

	t.Run("broadcast alone finds nothing", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, client, nil, 1, "--timeout", "1")
		harness.WantServers(t, got, r)
	})
	t.Run("scan of the other subnet finds the server", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, client, nil, 0, "--timeout", "1.5", "--scan-cidr", "10.213.2.0/28", "--scan-rate", "500")
		harness.WantServers(t, got, r, "10.213.2.10:8000")
		if s, ok := got["10.213.2.10:8000"]; ok && s.SourceAddress != "10.213.2.10:9999" {
			t.Errorf("source_address = %q, want 10.213.2.10:9999", s.SourceAddress)
		}
	})
	t.Run("scan cidr from env", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, client, []string{"DISCOVERY_CLIENT_SCAN_CIDRS=10.213.2.0/28"}, 0, "--timeout", "1.5", "--scan-rate", "500")
		harness.WantServers(t, got, r, "10.213.2.10:8000")
	})
	t.Run("enable-subnet-scan=false disables the scan", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, client, nil, 1, "--timeout", "1", "--enable-subnet-scan=false", "--scan-cidr", "10.213.2.0/28")
		harness.WantServers(t, got, r)
	})
	t.Run("an absurdly large scan is refused", func(t *testing.T) {
		r := harness.Bridge(t, client, nil, "discover", "--timeout", "1", "--scan-cidr", "10.0.0.0/8")
		if r.ExitCode != 2 || !strings.Contains(r.Stderr, "10.0.0.0/8") {
			t.Errorf("exit %d, want 2 with a message naming 10.0.0.0/8\nstderr: %s", r.ExitCode, r.Stderr)
		}
	})
}

// TestDiscoverAddressPolicy checks which address a reply is registered under:
// a server advertising 127.0.0.1 (as the stock server does without a default
// route) and a multi-homed server advertising an address other than its source
// and off the LAN (10.213.9.9). The admission policy refuses what would be
// registered at an unroutable address (127.0.0.1 with --address-from payload,
// whatever advertised_addresses says), and by default (advertised_addresses
// local) an address that is neither the source nor on a selected interface's
// network or a scan CIDR: the multi-homed server is found only with
// advertised_addresses any, the setting for it, or at its source address.
func TestDiscoverAddressPolicy(t *testing.T) {
	t.Parallel()
	l := harness.NewLAN(t, 2)
	bridgebin.Path(t)
	harness.Respond(t, l.Servers[0], 1, "--ip", "127.0.0.1")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.9.9")

	const (
		loopback = "10.213.1.11:9999" // advertises 127.0.0.1
		homed    = "10.213.1.12:9999" // advertises 10.213.9.9
	)
	type want struct{ ip, payloadIP, from string }
	anyAddr := []string{"--advertised-addresses", "any"}
	for _, tc := range []struct {
		name    string
		args    []string
		want    map[string]want   // by source address
		refused map[string]string // source IP -> refusal reason
	}{
		{"defaults (auto, local): the foreign address is refused", nil, map[string]want{
			loopback: {"10.213.1.11", "127.0.0.1", "source"},
		}, map[string]string{"10.213.1.12": "foreign_address"}},
		{"auto, any", anyAddr, map[string]want{
			loopback: {"10.213.1.11", "127.0.0.1", "source"},
			homed:    {"10.213.9.9", "10.213.9.9", "payload"},
		}, nil},
		{"--address-from auto, any", append([]string{"--address-from", "auto"}, anyAddr...), map[string]want{
			loopback: {"10.213.1.11", "127.0.0.1", "source"},
			homed:    {"10.213.9.9", "10.213.9.9", "payload"},
		}, nil},
		// 127.0.0.1 taken as it is: unroutable, refused even with any.
		{"--address-from payload, any: loopback refused", append([]string{"--address-from", "payload"}, anyAddr...), map[string]want{
			homed: {"10.213.9.9", "10.213.9.9", "payload"},
		}, map[string]string{"10.213.1.11": "unroutable_address"}},
		{"--address-from payload, local: both refused", []string{"--address-from", "payload"}, nil,
			map[string]string{"10.213.1.11": "unroutable_address", "10.213.1.12": "foreign_address"}},
		// The source address is admitted by local: no foreign address.
		{"--address-from source", []string{"--address-from", "source"}, map[string]want{
			loopback: {"10.213.1.11", "127.0.0.1", "source"},
			homed:    {"10.213.1.12", "10.213.9.9", "source"},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exit := 0
			if len(tc.want) == 0 {
				exit = 1 // nothing found
			}
			got, r := harness.DiscoverJSON(t, l.Client, []string{"BRIDGE_LOG_LEVEL=debug", "BRIDGE_LOG_FORMAT=json"}, exit,
				append([]string{"--timeout", "1"}, tc.args...)...)
			bySource := map[string]harness.Server{}
			for _, s := range got {
				bySource[s.SourceAddress] = s
			}
			if len(bySource) != len(tc.want) {
				t.Errorf("servers = %v, want one per source %v\nstderr: %s", got, slices.Sorted(maps.Keys(tc.want)), r.Stderr)
			}
			for src, w := range tc.want {
				s, ok := bySource[src]
				if !ok {
					t.Errorf("no server from %s: %v", src, got)
					continue
				}
				if s.IP != w.ip || s.PayloadIP != w.payloadIP || s.AddressFrom != w.from || s.Port != 8000 {
					t.Errorf("from %s: ip %s payload_ip %s address_from %s port %d; want %s %s %s 8000",
						src, s.IP, s.PayloadIP, s.AddressFrom, s.Port, w.ip, w.payloadIP, w.from)
				}
			}
			// Each refused source is logged with its reason, and the
			// round's stats count the refusals by reason.
			st := roundStats(t, r.Stderr)
			wantCounts := map[string]bool{}
			for src, reason := range tc.refused {
				wantCounts[reason] = true
				if !refusalLogged(r.Stderr, src, reason) {
					t.Errorf("no \"replies from this source refused\" line for %s with reason %s:\n%s", src, reason, r.Stderr)
				}
			}
			for reason, n := range st.Refused {
				if !wantCounts[reason] || n < 1 {
					t.Errorf("round stats refused %v, want only %v", st.Refused, tc.refused)
					break
				}
			}
			for reason := range wantCounts {
				if st.Refused[reason] < 1 {
					t.Errorf("round stats refused %v, want %s counted", st.Refused, reason)
				}
			}
		})
	}
}

// refusalLogged reports whether a JSON log holds the line of the admission
// policy refusing the replies of source src for reason.
func refusalLogged(stderr, src, reason string) bool {
	for line := range strings.Lines(stderr) {
		var rec struct {
			Message  string `json:"message"`
			SourceIP string `json:"source_ip"`
			Reason   string `json:"reason"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Message == "replies from this source refused" &&
			rec.SourceIP == src && rec.Reason == reason {
			return true
		}
	}
	return false
}

// TestDiscoverTwoRespondersOneHost runs two responders bound to :9999 on one
// host (SO_REUSEPORT): both answer each broadcast probe; identical replies
// dedupe into one server, different ports make two.
func TestDiscoverTwoRespondersOneHost(t *testing.T) {
	t.Parallel()
	l := harness.NewLAN(t, 1)
	srv := l.Servers[0]
	bridgebin.Path(t)
	harness.Respond(t, srv, 1, "--ip", "10.213.1.11")
	second := harness.Respond(t, srv, 2, "--ip", "10.213.1.11")

	t.Run("identical replies dedupe into one server", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, l.Client, []string{"BRIDGE_LOG_LEVEL=debug", "BRIDGE_LOG_FORMAT=json"}, 0,
			"--timeout", "1", "--retries", "0")
		harness.WantServers(t, got, r, "10.213.1.11:8000")
		// One probe, two answers: the round summary counts the second as a duplicate.
		st := roundStats(t, r.Stderr)
		if st.ProbesSent != 1 || st.Replies != 2 || st.Valid != 2 || st.Duplicates != 1 {
			t.Errorf("round stats = %+v, want 1 probe, 2 valid replies, 1 duplicate\n%s", st, r.Stderr)
		}
	})

	if err := second.Stop(); err != nil {
		_, stderr := second.Output()
		t.Fatalf("respond did not exit 0 on SIGTERM: %v\n%s", err, stderr)
	}
	harness.Respond(t, srv, 2, "--ip", "10.213.1.11", "--app-port", "8002")

	t.Run("different ports are two servers", func(t *testing.T) {
		got, r := harness.DiscoverJSON(t, l.Client, nil, 0, "--timeout", "1")
		harness.WantServers(t, got, r, "10.213.1.11:8000", "10.213.1.11:8002")
	})
}

// roundStats returns the stats of the "round finished" record of a JSON debug
// log (--log-format json --log-level debug).
func roundStats(t *testing.T, stderr string) (st struct {
	ProbesSent int `json:"probes_sent"`
	Replies    int `json:"replies"`
	Valid      int `json:"valid"`
	Duplicates int `json:"duplicates"`
	// Refused counts the replies the admission policy refused, by reason.
	Refused map[string]int `json:"refused"`
}) {
	t.Helper()
	for line := range strings.Lines(stderr) {
		var rec struct {
			Message string          `json:"message"`
			Stats   json.RawMessage `json:"stats"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Message != "round finished" {
			continue
		}
		if err := json.Unmarshal(rec.Stats, &st); err != nil {
			t.Fatalf("round finished stats: %v: %s", err, rec.Stats)
		}
		return st
	}
	t.Fatalf("no JSON \"round finished\" record with stats in the debug log:\n%s", stderr)
	return st
}
