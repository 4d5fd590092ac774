package config_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

type (
	Config = config.Config
	Inputs = config.Inputs
	Error  = config.Error
)

// testSchema is the configuration of a bridge with the built-in sinks, and
// a reader of the Consul settings a Config loaded with it carries.
func testSchema() (*config.Schema, func(*Config) consul.Config) {
	return sink.NewRegistry(sink.StdoutFactory(), sink.FileFactory(), consul.Factory(), kubernetes.Factory()).Schema(),
		func(c *Config) consul.Config { cc, _ := c.SinkSettings("consul").(consul.Config); return cc }
}

// Load loads in with the built-in sinks.
func Load(in Inputs) (*Config, error) {
	s, _ := testSchema()
	return s.Load(in)
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, in Inputs) *Config {
	t.Helper()
	c, err := Load(in)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaultsMatchUpstream(t *testing.T) {
	schema, sec := testSchema()
	c, err := schema.Load(Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	cc := sec(c)
	checks := []struct {
		name      string
		got, want any
	}{
		{"discovery_port", c.Discovery.Port, uint16(9999)},
		{"discovery_message", string(c.Discovery.Message), "DISCOVER_SERVER"},
		{"response_prefix", string(c.Discovery.Prefix), "SERVER_IP:"},
		{"timeout", c.Discovery.Timeout, 5 * time.Second},
		{"retries", c.Discovery.Retries, 3},
		{"enable_subnet_scan", c.Discovery.SubnetScan, true},
		{"default_port", c.Discovery.DefaultPort, uint16(8000)},
		{"address_from", c.Discovery.AddressFrom, discover.AddressAuto},
		{"interval", c.Interval, 10 * time.Second},
		{"missed_rounds", c.MissedRounds, 3},
		{"max_removal_fraction", c.MaxRemovalFraction, 0.5},
		{"removal_guard_rounds", c.RemovalGuardRounds, 10},
		{"consul_service", cc.Service, "django"},
		{"consul_deregister_after", cc.DeregisterAfter, time.Minute},
		{"on_exit", cc.OnExit, "deregister"},
		{"metrics_addr", c.MetricsAddr, ":9108"},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
		if src := c.Source(tc.name); src != "default" {
			t.Errorf("%s source = %q, want default", tc.name, src)
		}
	}
	if !slices.Equal(c.Sinks, []string{"stdout"}) {
		t.Errorf("sinks = %v, want [stdout]", c.Sinks)
	}
	if c.Discovery.Whitelist != nil || c.Discovery.Blacklist != nil {
		t.Errorf("lists = %v %v, want none", c.Discovery.Whitelist, c.Discovery.Blacklist)
	}
}

func TestPriority(t *testing.T) {
	file := writeFile(t, "bridge.yaml", "discovery_port: 1111\nretries: 5\ntimeout: 2\ninterfaces_whitelist: [eth0, eth1]\n")
	tests := []struct {
		name     string
		in       Inputs
		wantPort uint16
		wantSrc  string
	}{
		{"default", Inputs{}, 9999, "default"},
		{"file", Inputs{File: file}, 1111, "file " + file},
		{"env over file", Inputs{File: file, LookupEnv: envOf(map[string]string{"DISCOVERY_CLIENT_PORT": "2222"})}, 2222, "env DISCOVERY_CLIENT_PORT"},
		{"flag over env", Inputs{File: file, LookupEnv: envOf(map[string]string{"DISCOVERY_CLIENT_PORT": "2222"}), Flags: map[string]any{"discovery_port": "3333"}}, 3333, "flag --port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.in)
			if c.Discovery.Port != tc.wantPort || c.Source("discovery_port") != tc.wantSrc {
				t.Errorf("port = %d from %q, want %d from %q", c.Discovery.Port, c.Source("discovery_port"), tc.wantPort, tc.wantSrc)
			}
		})
	}
	c := mustLoad(t, Inputs{File: file})
	if c.Discovery.Retries != 5 || c.Discovery.Timeout != 2*time.Second || !slices.Equal(c.Discovery.Whitelist, []string{"eth0", "eth1"}) {
		t.Errorf("file values: retries %d timeout %v whitelist %v", c.Discovery.Retries, c.Discovery.Timeout, c.Discovery.Whitelist)
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		flags map[string]any
		check func(*Config) bool
	}{
		{"timeout seconds", nil, map[string]any{"timeout": "0.5"}, func(c *Config) bool { return c.Discovery.Timeout == 500*time.Millisecond }},
		{"timeout duration", nil, map[string]any{"timeout": "500ms"}, func(c *Config) bool { return c.Discovery.Timeout == 500*time.Millisecond }},
		{"env list comma", map[string]string{"DISCOVERY_CLIENT_INTERFACES_WHITELIST": "eth0, br-lan,,"}, nil,
			func(c *Config) bool { return slices.Equal(c.Discovery.Whitelist, []string{"eth0", "br-lan"}) }},
		{"flag list repeated and comma", nil, map[string]any{"interfaces_blacklist": []string{"a,b", "c"}},
			func(c *Config) bool { return slices.Equal(c.Discovery.Blacklist, []string{"a", "b", "c"}) }},
		{"bool yes", map[string]string{"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN": "no"}, nil, func(c *Config) bool { return !c.Discovery.SubnetScan }},
		{"bool on", map[string]string{"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN": "On"}, nil, func(c *Config) bool { return c.Discovery.SubnetScan }},
		{"scan cidr masked", nil, map[string]any{"scan_cidrs": []string{"10.1.2.3/22"}},
			func(c *Config) bool {
				return slices.Equal(c.Discovery.ScanCIDRs, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/22")})
			}},
		{"interface rules", map[string]string{
			"DISCOVERY_CLIENT_INTERFACES_REGEX": "eth[0-9]{1,2}|ens.*", "DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX": "eth9",
			"DISCOVERY_CLIENT_INTERFACES_CIDRS": "192.168.1.9/24,10.0.0.0/8", "DISCOVERY_CLIENT_INTERFACES_CAN_REACH": "192.168.1.1",
			"DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER": "true",
		}, nil, func(c *Config) bool {
			return c.Discovery.InterfaceRegex == "eth[0-9]{1,2}|ens.*" && c.Discovery.InterfaceSkipRegex == "eth9" &&
				slices.Equal(c.Discovery.InterfaceCIDRs, []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.0.0.0/8")}) &&
				c.Discovery.InterfaceCanReach == netip.MustParseAddr("192.168.1.1") && c.Discovery.SkipContainerInterfaces
		}},
		{"interface rules off by default", nil, nil, func(c *Config) bool {
			return c.Discovery.InterfaceRegex == "" && c.Discovery.InterfaceSkipRegex == "" && c.Discovery.InterfaceCIDRs == nil && !c.Discovery.InterfaceCanReach.IsValid() && !c.Discovery.SkipContainerInterfaces
		}},
		{"sinks from env", map[string]string{"DISCOVERY_CLIENT_SINKS": "stdout,file", "DISCOVERY_CLIENT_FILE_PATH": "/tmp/x.json"}, nil,
			func(c *Config) bool { return slices.Equal(c.Sinks, []string{"stdout", "file"}) }},
		{"secret key fallback env", map[string]string{"DISCOVERY_ENCRYPTION_ENABLED": "1", "DISCOVERY_SECRET_KEY": "k"}, nil,
			func(c *Config) bool {
				return c.Encryption && c.SecretKey == "k" && c.Source("secret_key") == "env DISCOVERY_SECRET_KEY"
			}},
		{"guard off by fraction 1", map[string]string{"DISCOVERY_CLIENT_MAX_REMOVAL_FRACTION": "1"}, nil,
			func(c *Config) bool { return c.MaxRemovalFraction == 1 }},
		{"guard off by rounds 0", nil, map[string]any{"removal_guard_rounds": "0"},
			func(c *Config) bool { return c.RemovalGuardRounds == 0 }},
		{"guard fraction from flag", nil, map[string]any{"max_removal_fraction": "0.25"},
			func(c *Config) bool { return c.MaxRemovalFraction == 0.25 }},
		{"client secret key wins", map[string]string{"DISCOVERY_CLIENT_SECRET_KEY": "a", "DISCOVERY_SECRET_KEY": "b"}, nil,
			func(c *Config) bool { return c.SecretKey == "a" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, Inputs{LookupEnv: envOf(tc.env), Flags: tc.flags})
			if !tc.check(c) {
				t.Errorf("unexpected config: %+v", *c)
			}
		})
	}
}

// TestLockHeartbeatCoversTakeover: with --consul-lock the default heartbeat
// TTL outlasts the lock's takeover (2 x 10s session + 5s lock wait + 10s
// interval + 5s timeout = 40s) by an interval: 50s.
func TestLockHeartbeatCoversTakeover(t *testing.T) {
	schema, sec := testSchema()
	c, err := schema.Load(Inputs{Flags: map[string]any{"consul_lock": "k"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sec(c).Agent.TTL; got != 50*time.Second {
		t.Errorf("heartbeat TTL with a lock = %s, want 50s", got)
	}
	if c, err = schema.Load(Inputs{}); err != nil {
		t.Fatal(err)
	}
	if got := sec(c).Agent.TTL; got != 35*time.Second {
		t.Errorf("heartbeat TTL without a lock = %s, want 35s (3 x 10s + 5s)", got)
	}
}

func TestErrorsNameKeyValueAndSource(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		flags map[string]any
		file  string
		want  []string
	}{
		{"negative timeout flag", nil, map[string]any{"timeout": "-1"}, "", []string{`timeout (flag --timeout): bad value "-1": must be > 0`}},
		{"unparsable reported once", map[string]string{"DISCOVERY_CLIENT_TIMEOUT": "soon"}, nil, "", []string{`timeout (env DISCOVERY_CLIENT_TIMEOUT): bad value "soon"`}},
		{"garbage timeout env", map[string]string{"DISCOVERY_CLIENT_TIMEOUT": "soon"}, nil, "", []string{`timeout (env DISCOVERY_CLIENT_TIMEOUT): bad value "soon"`}},
		{"port range", map[string]string{"DISCOVERY_CLIENT_PORT": "70000"}, nil, "", []string{`discovery_port (env DISCOVERY_CLIENT_PORT): bad value "70000": want a port number 1..65535`}},
		{"unknown file key", nil, nil, "discovery_prot: 1\n", []string{`unknown key "discovery_prot"`}},
		{"bad address_from", nil, map[string]any{"address_from": "peer"}, "", []string{`address_from (flag --address-from): bad value "peer"`}},
		{"encryption without key", nil, map[string]any{"encryption_enabled": "true"}, "", []string{"encryption is on but no secret key is set"}},
		{"file sink without path", nil, map[string]any{"sinks": []string{"file"}}, "", []string{"the file sink needs file_path"}},
		{"unknown sink", nil, map[string]any{"sinks": []string{"etcd"}}, "", []string{`sinks (flag --sink): bad value "etcd"`}},
		{"deregister floor", map[string]string{"DISCOVERY_CLIENT_CONSUL_DEREGISTER_AFTER": "30s"}, nil, "", []string{"consul_deregister_after", "1m"}},
		{"ttl shorter than interval", nil, map[string]any{"consul_ttl": "5s"}, "", []string{"consul_ttl (flag --consul-ttl)", "must exceed interval + timeout"}},
		{"ttl too short for the lock", nil, map[string]any{"consul_ttl": "30s", "consul_lock": "k"}, "", []string{"consul_ttl (flag --consul-ttl) 30s is too short for consul_lock_session_ttl (default) 10s", "at least 50s"}},
		{"several problems at once", nil, map[string]any{"retries": "x", "scan_cidrs": []string{"fe80::/64"}}, "", []string{`retries (flag --retries): bad value "x"`, `scan_cidrs (flag --scan-cidr): bad value "fe80::/64"`}},
		{"fraction zero", nil, map[string]any{"max_removal_fraction": "0"}, "", []string{`max_removal_fraction (flag --max-removal-fraction): bad value "0": want a fraction 0 < f <= 1 (1 turns the removal guard off)`}},
		{"fraction above one", map[string]string{"DISCOVERY_CLIENT_MAX_REMOVAL_FRACTION": "1.5"}, nil, "", []string{`max_removal_fraction (env DISCOVERY_CLIENT_MAX_REMOVAL_FRACTION): bad value "1.5": want a fraction 0 < f <= 1`}},
		{"fraction a percentage", nil, nil, "max_removal_fraction: 50%\n", []string{`bad value "50%": want a decimal number such as 0.5`}},
		{"fraction NaN", nil, map[string]any{"max_removal_fraction": "NaN"}, "", []string{`max_removal_fraction (flag --max-removal-fraction): bad value "NaN": want a decimal number`}},
		{"guard rounds negative", nil, map[string]any{"removal_guard_rounds": "-1"}, "", []string{`removal_guard_rounds (flag --removal-guard-rounds): bad value "-1": must be >= 0 (0 turns the removal guard off)`}},
		{"guard rounds not a number", map[string]string{"DISCOVERY_CLIENT_REMOVAL_GUARD_ROUNDS": "ten"}, nil, "", []string{`removal_guard_rounds (env DISCOVERY_CLIENT_REMOVAL_GUARD_ROUNDS): bad value "ten": want a whole number`}},
		{"bad interface rules", map[string]string{"DISCOVERY_CLIENT_INTERFACES_REGEX": "eth["}, map[string]any{
			"interfaces_skip_regex": "a)|(b", "interfaces_cidrs": []string{"10.0.0.0/8", "eth0"}, "interfaces_can_reach": "gw.lan", "interfaces_skip_container": "sure"}, "",
			[]string{`interfaces_regex (env DISCOVERY_CLIENT_INTERFACES_REGEX): bad value "eth[": want an RE2 pattern`,
				`interfaces_skip_regex (flag --interfaces-skip-regex): bad value "a)|(b"`,
				`interfaces_cidrs (flag --interfaces-cidr): bad value "eth0": want an IPv4 network`,
				`interfaces_can_reach (flag --interfaces-can-reach): bad value "gw.lan": want an IPv4 address`,
				`interfaces_skip_container (flag --interfaces-skip-container): bad value "sure"`}},
		{"yaml list for scalar", nil, nil, "timeout: [1, 2]\n", []string{`c.yaml): bad value "[1 2]": want a single value`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{LookupEnv: envOf(tc.env), Flags: tc.flags}
			if tc.file != "" {
				in.File = writeFile(t, "c.yaml", tc.file)
			}
			_, err := Load(in)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *config.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(ce.Problems) != len(tc.want) && tc.name != "deregister floor" && tc.name != "ttl shorter than interval" && tc.name != "ttl too short for the lock" {
				t.Errorf("%d problems reported, want %d: %v", len(ce.Problems), len(tc.want), err)
			}
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "very-secret-token-value"
	_, err := Load(Inputs{Flags: map[string]any{"consul_token": secret, "consul_token_file": "/x", "secret_key": []string{secret, "b"}}})
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error leaks the secret: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"5", 5 * time.Second, true},
		{"0.25", 250 * time.Millisecond, true},
		{"1m30s", 90 * time.Second, true},
		{"500ms", 500 * time.Millisecond, true},
		{"", 0, false},
		{"five", 0, false},
		{"1e30", 0, false},
		{"NaN", 0, false},
	}
	for _, tc := range tests {
		got, err := config.ParseDuration(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
