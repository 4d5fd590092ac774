package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// runCLI runs the CLI in-process. None of these cases sends a packet: they
// stop at configuration, or only list interfaces.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"bridge"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageAndConfigErrorsExit2(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("not-a-key\n"), 0o600)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"negative timeout", nil, []string{"discover", "--timeout=-1"}, []string{"timeout (flag --timeout)", "must be > 0"}},
		{"bad env port", map[string]string{"DISCOVERY_CLIENT_PORT": "99999"}, []string{"discover"}, []string{"discovery_port (env DISCOVERY_CLIENT_PORT)", `"99999"`}},
		{"unknown flag", nil, []string{"discover", "--bogus"}, []string{"bogus"}},
		{"encryption without key", nil, []string{"discover", "--encryption"}, []string{"encryption is on but no secret key"}},
		{"invalid key file", nil, []string{"discover", "--encryption", "--secret-key-file", keyFile}, []string{"invalid Fernet key", keyFile}},
		{"bad address policy", nil, []string{"run", "--address-from", "peer"}, []string{`address_from (flag --address-from): bad value "peer"`}},
		{"file sink without path", nil, []string{"run", "--sink", "file"}, []string{"the file sink needs file_path"}},
		{"deregister floor", nil, []string{"run", "--sink", "consul", "--consul-deregister-after", "30s"}, []string{"consul_deregister_after (flag --consul-deregister-after)"}},
		{"write rate not a number", nil, []string{"run", "--sink", "consul", "--consul-mode", "catalog", "--consul-write-rate", "fast"}, []string{`consul_write_rate (flag --consul-write-rate): bad value "fast": want writes per second`}},
		{"write rate negative", nil, []string{"run", "--sink", "consul", "--consul-mode", "catalog", "--consul-write-rate", "-2"}, []string{"consul_write_rate", "want writes per second"}},
		{"unknown config key", nil, []string{"--config", writeTemp(t, "discovery_prot: 1\n"), "discover"}, []string{`unknown key "discovery_prot"`}},
		{"config after the subcommand", nil, []string{"run", "--config", writeTemp(t, "discovery_prot: 1\n")}, []string{`unknown key "discovery_prot"`}},
		{"config alias after the subcommand", nil, []string{"discover", "-c", writeTemp(t, "timeout: -1\n")}, []string{"timeout (file "}},
		{"interval floor", nil, []string{"run", "--interval", "1ns", "--timeout", "1ms"}, []string{`interval (flag --interval): bad value "1ns": at least 100ms`}},
		{"interval not above timeout", nil, []string{"run", "--interval", "5s"}, []string{"interval (flag --interval) 5s must exceed timeout (default) 5s"}},
		{"timeout ceiling", nil, []string{"discover", "--timeout", "1h"}, []string{`timeout (flag --timeout): bad value "1h": at most 10m`}},
		{"huge scan", nil, []string{"discover", "--whitelist", "no-such-if0", "--scan-cidr", "10.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{"global flag after the subcommand", nil, []string{"discover", "--log-level", "debug", "--timeout=-1"}, []string{"timeout (flag --timeout)"}},
		{"global flag before the subcommand", nil, []string{"--log-level", "loud", "discover"}, []string{`log_level (flag --log-level): bad value "loud"`}},
		{"subcommand flag wins over global", nil, []string{"--log-level", "debug", "run", "--log-level", "loud"}, []string{`log_level (flag --log-level): bad value "loud"`}},
		{"respond bad ip", nil, []string{"respond", "--ip", "eleven"}, []string{`--ip: bad value "eleven"`}},
		{"respond bad key", nil, []string{"respond", "--ip", "10.0.0.1", "--secret-key", "short"}, []string{"invalid Fernet key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.env, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretsNotEchoed(t *testing.T) {
	const secret = "s3cr3t-consul-token-abcdef"
	code, out, stderr := runCLI(t, map[string]string{"CONSUL_HTTP_TOKEN": secret},
		"run", "--sink", "consul", "--consul-token-file", "/nonexistent", "--timeout", "x")
	if code != exitUsage || strings.Contains(out+stderr, secret) {
		t.Fatalf("exit %d, output leaks the token or wrong code: %s %s", code, out, stderr)
	}
}

func TestKeygenMakesUsableKeys(t *testing.T) {
	code, out, _ := runCLI(t, nil, "keygen")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := discover.ParseKey(strings.TrimSpace(out)); err != nil {
		t.Fatalf("keygen printed %q: %v", out, err)
	}
	_, out2, _ := runCLI(t, nil, "keygen")
	if out == out2 {
		t.Fatal("two keygen runs printed the same key")
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "bridge ") {
		t.Fatalf("exit %d, %q", code, out)
	}
}

// TestInterfacesJSON lists interfaces (no traffic): loopback is never
// selected, and a whitelist naming nothing selects nothing (exit 1).
func TestInterfacesJSON(t *testing.T) {
	code, out, stderr := runCLI(t, nil, "interfaces", "--json", "--whitelist", "no-such-if0")
	if code != exitNone {
		t.Fatalf("exit %d, want 1; %s", code, stderr)
	}
	var rep struct {
		Interfaces []map[string]any `json:"interfaces"`
		Segmented  []any            `json:"segmented"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(rep.Interfaces) != 0 || rep.Segmented == nil {
		t.Fatalf("report = %+v", rep)
	}
	var full struct {
		Interfaces []struct{ Name, Rule, Reason string }     `json:"interfaces"`
		Skipped    []struct{ Name, IP, Rule, Reason string } `json:"skipped"`
	}
	_, out, _ = runCLI(t, nil, "interfaces", "--json")
	if err := json.Unmarshal([]byte(out), &full); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, i := range full.Interfaces {
		if i.Name == "lo" {
			t.Fatal("loopback selected")
		}
		if i.Rule == "" || i.Reason == "" {
			t.Errorf("taken interface %s has no rule or reason: %+v", i.Name, i)
		}
	}
	var sawLo bool
	for _, s := range full.Skipped {
		if s.Name == "lo" && s.IP == "127.0.0.1" {
			sawLo = s.Rule == "loopback" && s.Reason == "loopback interface"
		}
	}
	if !sawLo {
		t.Errorf("lo 127.0.0.1 not listed as skipped by rule loopback: %s", out)
	}
}

func TestHelpMentionsEveryCommand(t *testing.T) {
	code, out, _ := runCLI(t, nil, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"run", "discover", "interfaces", "doctor", "respond", "keygen", "version"} {
		if !strings.Contains(out, "   "+c+" ") {
			t.Errorf("--help lacks %s", c)
		}
	}
}

func TestDoctorHints(t *testing.T) {
	base := loadTestConfig(t)
	enc := loadTestConfig(t, "DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "true", "DISCOVERY_CLIENT_SECRET_KEY", "x")
	sel := []iface.Interface{{Name: "eth0"}}
	tests := []struct {
		name string
		cfg  *config.Config
		sel  []iface.Interface
		res  discover.Result
		err  error
		want string
	}{
		{"no interface", base, nil, discover.Result{}, discover.ErrNoInterfaces, "no interface is selected"},
		{"no probe sent", base, sel, discover.Result{}, discover.ErrNoProbeSent, "--network host"},
		{"silence, plaintext", base, sel, discover.Result{}, nil, "try --encryption"},
		{"silence, encrypted", enc, sel, discover.Result{}, nil, "same key"},
		{"rejected replies", enc, sel, discover.Result{Stats: discover.Stats{Replies: 2, Rejected: 2}}, nil, "2 encrypted replies were rejected"},
		{"wrong prefix", base, sel, discover.Result{Stats: discover.Stats{Replies: 1, Invalid: 1}}, nil, "response_prefix"},
		{"foreign address", base, sel, refusedResult(discover.RefusedForeign, 3, true), nil, "3 replies refused (foreign_address): they advertised addresses neither their source"},
		{"source cap", base, sel, refusedResult(discover.RefusedSourceCap, 40, false), nil, "max_servers_per_source (8)"},
		{"replay", enc, sel, refusedResult(discover.RefusedReplay, 2, false), nil, "clock_skew (30s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hints := strings.Join(doctorHints(tc.cfg, tc.sel, tc.res, tc.err), "\n")
			if !strings.Contains(hints, tc.want) {
				t.Errorf("hints %q lack %q", hints, tc.want)
			}
		})
	}
	if h := doctorHints(base, sel, discover.Result{Servers: []discover.Server{{}}}, nil); h != nil {
		t.Errorf("hints when servers were found: %v", h)
	}
}

// refusedResult is a round that refused n replies for why, and found a
// server or not.
func refusedResult(why discover.Refusal, n int, found bool) discover.Result {
	var res discover.Result
	res.Stats.Replies = n
	res.Stats.Refused[why] = n
	if found {
		res.Servers = []discover.Server{{}}
	}
	return res
}

// loadTestConfig loads the configuration from defaults and env, given as
// name, value pairs.
func loadTestConfig(t *testing.T, env ...string) *config.Config {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(env); i += 2 {
		m[env[i]] = env[i+1]
	}
	c, err := builtin.Registry().Schema().Load(config.Inputs{LookupEnv: func(k string) (string, bool) { v, ok := m[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
