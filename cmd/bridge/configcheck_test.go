package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheck checks that `bridge config check` refuses what `bridge
// run` refuses (exit 2, the key and its source named) and accepts the
// defaults, without sending anything (it never starts a round).
func TestConfigCheck(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("not-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"defaults", nil, nil, 0, "configuration ok"},
		{"catalog deregister floor", map[string]string{"DISCOVERY_CLIENT_CONSUL_MODE": "catalog"}, []string{"--consul-deregister-after", "5s"}, 0, "configuration ok"},
		{"interval floor", map[string]string{"DISCOVERY_CLIENT_INTERVAL": "1ns"}, nil, 2, `interval (env DISCOVERY_CLIENT_INTERVAL): bad value "1ns": at least 100ms`},
		{"interval not above timeout", nil, []string{"--interval", "1s", "--timeout", "2"}, 2, "interval (flag --interval) 1s must exceed timeout (flag --timeout) 2s"},
		{"agent deregister floor", nil, []string{"--consul-deregister-after", "1s"}, 2, "consul_deregister_after (flag --consul-deregister-after)"},
		{"bad duration", nil, []string{"--max-token-age", "forever"}, 2, `max_token_age (flag --max-token-age): bad value "forever"`},
		{"invalid key file", nil, []string{"--encryption", "--secret-key-file", keyFile}, 2, "invalid Fernet key"},
		{"huge scan", nil, []string{"--scan-cidr", "10.0.0.0/8"}, 2, "10.0.0.0/8"},
		{"relay on, local", nil, []string{"--relay-interfaces", "eth1"}, 0, "configuration ok"},
		{"relay delay over 1s", nil, []string{"--relay-interfaces", "eth1", "--relay-delay", "2s"}, 2, `relay_delay (flag --relay-delay): bad value "2s": at most 1s`},
		{"relay burst below a full answer", map[string]string{"DISCOVERY_CLIENT_RELAY_BURST": "2"}, nil, 2,
			`relay_burst (env DISCOVERY_CLIENT_RELAY_BURST): bad value "2": below relay_max_replies 8`},
		{"relay source consul without catalog mode", nil, []string{"--relay-interfaces", "eth1", "--relay-source", "consul"}, 2,
			`relay_source (flag --relay-source): bad value "consul": the relay reads the servers the fleet's catalog mode writes`},
		{"relay source consul in catalog mode", map[string]string{"DISCOVERY_CLIENT_CONSUL_MODE": "catalog", "DISCOVERY_CLIENT_SINKS": "consul"},
			[]string{"--relay-interfaces", "eth1", "--relay-source", "consul"}, 0, "configuration ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.env, append([]string{"config", "check"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tc.want) {
				t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", tc.want, out, errOut)
			}
		})
	}
}

// TestHelpMentionsConfigCheck checks that --help lists the config command
// and that its own help tells what check does.
func TestHelpMentionsConfigCheck(t *testing.T) {
	code, out, _ := runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "   config ") {
		t.Errorf("--help (exit %d) lacks config:\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "config", "check", "--help")
	if code != 0 || !strings.Contains(out, "without sending anything") || !strings.Contains(out, "--interval") {
		t.Errorf("config check --help (exit %d) does not describe the check or lacks run's flags:\n%s", code, out)
	}
}
