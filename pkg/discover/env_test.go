package discover

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// env is a fake environment.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

func TestLoadOptionsDefaults(t *testing.T) {
	o, err := LoadOptions(env{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, DefaultOptions()) {
		t.Errorf("LoadOptions(empty env) = %+v\nwant DefaultOptions %+v", o, DefaultOptions())
	}
}

func TestLoadOptionsEveryVariable(t *testing.T) {
	o, err := LoadOptions(env{
		"DISCOVERY_CLIENT_PORT":                 "10999",
		"DISCOVERY_CLIENT_MESSAGE":              "HELLO",
		"DISCOVERY_CLIENT_RESPONSE_PREFIX":      "IP=",
		"DISCOVERY_CLIENT_TIMEOUT":              "0.5",
		"DISCOVERY_CLIENT_RETRIES":              "0",
		"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN":   "off",
		"DISCOVERY_CLIENT_SCAN_CIDRS":           "10.1.0.9/22, 10.2.0.0/24",
		"DISCOVERY_CLIENT_SCAN_RATE":            "50",
		"DISCOVERY_CLIENT_INTERFACES_WHITELIST": "eth0, eth1,",
		"DISCOVERY_CLIENT_INTERFACES_BLACKLIST": "docker0",
		"DISCOVERY_CLIENT_DEFAULT_PORT":         "8080",
		"DISCOVERY_CLIENT_ADDRESS_FROM":         "source",
		"DISCOVERY_CLIENT_MAX_TOKEN_AGE":        "2m",
		"DISCOVERY_CLIENT_CLOCK_SKEW":           "0",
		"DISCOVERY_CLIENT_SETTLE":               "200ms",
		"DISCOVERY_CLIENT_MAX_REPLIES":          "10",

		"DISCOVERY_CLIENT_INTERFACES_REGEX":          `eth[0-9]+|bond[0-9]+(\.[0-9]+)?`,
		"DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX":     "eth9",
		"DISCOVERY_CLIENT_INTERFACES_CIDRS":          "192.168.1.7/24, 10.0.0.0/8",
		"DISCOVERY_CLIENT_INTERFACES_CAN_REACH":      " 192.168.1.1 ",
		"DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER": "yes",
	}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultOptions()
	want.Port, want.Message, want.Prefix = 10999, []byte("HELLO"), []byte("IP=")
	want.Timeout, want.Retries, want.SubnetScan = 500*time.Millisecond, 0, false
	want.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/22"), netip.MustParsePrefix("10.2.0.0/24")}
	want.ScanRate, want.Whitelist, want.Blacklist = 50, []string{"eth0", "eth1"}, []string{"docker0"}
	want.DefaultPort, want.AddressFrom = 8080, AddressSource
	want.MaxTokenAge, want.ClockSkew, want.Settle, want.MaxReplies = 2*time.Minute, 0, 200*time.Millisecond, 10
	want.InterfaceRegex, want.InterfaceSkipRegex = `eth[0-9]+|bond[0-9]+(\.[0-9]+)?`, "eth9"
	want.InterfaceCIDRs = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.0.0.0/8")}
	want.InterfaceCanReach, want.SkipContainerInterfaces = netip.MustParseAddr("192.168.1.1"), true
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}
}

func TestLoadOptionsPriority(t *testing.T) {
	e := env{"DISCOVERY_CLIENT_TIMEOUT": "2", "DISCOVERY_CLIENT_RETRIES": "1"}
	o, err := LoadOptions(e.lookup,
		func(o *Options) { o.Timeout = 3 * time.Second },
		func(o *Options) { o.Timeout += time.Second }) // overrides apply in order
	if err != nil {
		t.Fatal(err)
	}
	if o.Timeout != 4*time.Second || o.Retries != 1 || o.Port != 9999 {
		t.Errorf("timeout %v retries %d port %d; want 4s (override), 1 (env), 9999 (default)", o.Timeout, o.Retries, o.Port)
	}
	// An override fixes a value the environment does not set, and is validated.
	_, err = LoadOptions(e.lookup, func(o *Options) { o.Retries = -1 })
	if err == nil || !strings.Contains(err.Error(), "retries: want 0..100, got -1") {
		t.Errorf("bad override: %v", err)
	}
}

func TestLoadOptionsBooleans(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "1": true, "yes": true, "on": true, "ON": true, " Yes ": true,
		"false": false, "0": false, "no": false, "off": false, "": false} {
		o, err := LoadOptions(env{"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN": v}.lookup)
		if err != nil || o.SubnetScan != want {
			t.Errorf("ENABLE_SUBNET_SCAN=%q: %v, %v; want %v", v, o.SubnetScan, err, want)
		}
	}
}

func TestLoadOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, variable, value, want string
	}{
		{"timeout words", "DISCOVERY_CLIENT_TIMEOUT", "soon", `timeout (env DISCOVERY_CLIENT_TIMEOUT): bad value "soon": want seconds (5, 0.5) or a duration (500ms, 1m)`},
		{"timeout zero", "DISCOVERY_CLIENT_TIMEOUT", "0", `timeout (env DISCOVERY_CLIENT_TIMEOUT): bad value "0": must be > 0`},
		{"port", "DISCOVERY_CLIENT_PORT", "70000", `discovery_port (env DISCOVERY_CLIENT_PORT): bad value "70000": want a port number 1..65535`},
		{"default port", "DISCOVERY_CLIENT_DEFAULT_PORT", "http", `default_port (env DISCOVERY_CLIENT_DEFAULT_PORT): bad value "http": want a port number 1..65535`},
		{"retries", "DISCOVERY_CLIENT_RETRIES", "101", `retries (env DISCOVERY_CLIENT_RETRIES): bad value "101": want 0..100`},
		{"bool", "DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN", "maybe", `enable_subnet_scan (env DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN): bad value "maybe": want true/false, 1/0, yes/no or on/off`},
		{"address_from", "DISCOVERY_CLIENT_ADDRESS_FROM", "dns", `address_from (env DISCOVERY_CLIENT_ADDRESS_FROM): bad value "dns": want one of auto, payload, source`},
		{"scan cidr", "DISCOVERY_CLIENT_SCAN_CIDRS", "10.0.0.0/24,fd00::/64", `scan_cidrs (env DISCOVERY_CLIENT_SCAN_CIDRS): bad value "10.0.0.0/24,fd00::/64": "fd00::/64": want an IPv4 network`},
		{"empty message", "DISCOVERY_CLIENT_MESSAGE", "", `discovery_message (env DISCOVERY_CLIENT_MESSAGE): bad value "": must not be empty`},
		{"max replies", "DISCOVERY_CLIENT_MAX_REPLIES", "0", `max_replies (env DISCOVERY_CLIENT_MAX_REPLIES): bad value "0": must be > 0`},
		{"interfaces regex", "DISCOVERY_CLIENT_INTERFACES_REGEX", "eth[", `interfaces_regex (env DISCOVERY_CLIENT_INTERFACES_REGEX): bad value "eth[": want an RE2 pattern matched against the whole interface name: error parsing regexp: missing closing ]`},
		{"interfaces skip regex", "DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX", "a)|(b", `interfaces_skip_regex (env DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX): bad value "a)|(b": want an RE2 pattern matched against the whole interface name: error parsing regexp`},
		{"interfaces cidrs", "DISCOVERY_CLIENT_INTERFACES_CIDRS", "10.0.0.0/33", `interfaces_cidrs (env DISCOVERY_CLIENT_INTERFACES_CIDRS): bad value "10.0.0.0/33": "10.0.0.0/33": want an IPv4 network`},
		{"interfaces can reach", "DISCOVERY_CLIENT_INTERFACES_CAN_REACH", "gateway.lan", `interfaces_can_reach (env DISCOVERY_CLIENT_INTERFACES_CAN_REACH): bad value "gateway.lan": want an IPv4 address`},
		{"interfaces skip container", "DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER", "sure", `interfaces_skip_container (env DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER): bad value "sure": want true/false`},
		{"encryption fallback var", "DISCOVERY_ENCRYPTION_ENABLED", "si", `encryption_enabled (env DISCOVERY_ENCRYPTION_ENABLED): bad value "si"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := LoadOptions(env{tc.variable: tc.value}.lookup)
			var ee *EnvError
			if !errors.As(err, &ee) || ee.Var != tc.variable || ee.Value != tc.value {
				t.Fatalf("err = %v; want an *EnvError for %s=%q", err, tc.variable, tc.value)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("one bad variable reported more than once: %v", err)
			}
			if !reflect.DeepEqual(o, DefaultOptions()) {
				t.Errorf("a bad variable changed the options: %+v", o)
			}
		})
	}

	t.Run("all at once", func(t *testing.T) {
		_, err := LoadOptions(env{"DISCOVERY_CLIENT_TIMEOUT": "x", "DISCOVERY_CLIENT_PORT": "0"}.lookup,
			func(o *Options) { o.Prefix = nil })
		for _, want := range []string{"DISCOVERY_CLIENT_TIMEOUT", "DISCOVERY_CLIENT_PORT", "response_prefix: must not be empty"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v; want it to mention %s", err, want)
			}
		}
	})
}

func TestLoadOptionsEncryption(t *testing.T) {
	const bad = "not-a-key-but-secret"
	on := "DISCOVERY_CLIENT_ENCRYPTION_ENABLED"
	t.Run("key from the fallback variable", func(t *testing.T) {
		o, err := LoadOptions(env{"DISCOVERY_ENCRYPTION_ENABLED": "yes", "DISCOVERY_SECRET_KEY": specKey}.lookup)
		if err != nil || o.Key == nil {
			t.Fatalf("key %v, err %v", o.Key, err)
		}
	})
	t.Run("the client variable wins over the fallback", func(t *testing.T) {
		_, err := LoadOptions(env{on: "1", "DISCOVERY_CLIENT_SECRET_KEY": bad, "DISCOVERY_SECRET_KEY": specKey}.lookup)
		var ee *EnvError
		if !errors.As(err, &ee) || ee.Var != "DISCOVERY_CLIENT_SECRET_KEY" || !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("err = %v; want the bad DISCOVERY_CLIENT_SECRET_KEY", err)
		}
		if strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("the key leaked or was not redacted: %v", err)
		}
	})
	t.Run("key file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(f, []byte(specKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := LoadOptions(env{on: "on", "DISCOVERY_CLIENT_SECRET_KEY_FILE": f}.lookup)
		if err != nil || o.Key == nil {
			t.Fatalf("key %v, err %v", o.Key, err)
		}
		_, err = LoadOptions(env{on: "on", "DISCOVERY_CLIENT_SECRET_KEY_FILE": f, "DISCOVERY_SECRET_KEY": specKey}.lookup)
		if err == nil || !strings.Contains(err.Error(), "set one, not both") || strings.Contains(err.Error(), specKey) {
			t.Errorf("key and key file: %v", err)
		}
	})
	t.Run("on without a key", func(t *testing.T) {
		_, err := LoadOptions(env{on: "true"}.lookup)
		if err == nil || !strings.Contains(err.Error(), "encryption_enabled (env DISCOVERY_CLIENT_ENCRYPTION_ENABLED): encryption is on but no secret key is set") {
			t.Errorf("err = %v", err)
		}
		k := mustKey(t, specKey)
		o, err := LoadOptions(env{on: "true"}.lookup, func(o *Options) { o.Key = k })
		if err != nil || o.Key != k {
			t.Errorf("an override's key: %v, %v", o.Key, err)
		}
	})
	t.Run("off ignores the key", func(t *testing.T) {
		o, err := LoadOptions(env{"DISCOVERY_SECRET_KEY": bad}.lookup)
		if err != nil || o.Key != nil {
			t.Errorf("key %v, err %v; want plaintext and no error", o.Key, err)
		}
	})
}

// TestKeyDefaultsLoadDefaultOptions: the defaults of Keys, given as
// environment values, load DefaultOptions, and every key has a variable.
func TestKeyDefaultsLoadDefaultOptions(t *testing.T) {
	defaults := env{}
	for _, k := range Keys() {
		if len(k.Env) == 0 {
			t.Errorf("%s has no environment variable", k.Name)
			continue
		}
		if k.Default != "" {
			defaults[k.Env[0]] = k.Default
		}
	}
	o, err := LoadOptions(defaults.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, DefaultOptions()) {
		t.Errorf("the keys' defaults load %+v\nwant DefaultOptions %+v", o, DefaultOptions())
	}
}

// FuzzInterfaceRulesFromEnv feeds arbitrary values to the interface-rule
// variables: LoadOptions either names the bad variable or gives Options
// that New accepts, whose rules decide every address of a node with a rule
// and a reason, and never take a /31 or /32.
func FuzzInterfaceRulesFromEnv(f *testing.F) {
	f.Add(`eth[0-9]+|ens[0-9]+`, "docker.*", "10.0.0.0/8,192.168.1.7/24", "192.168.1.1", "true")
	f.Add("a)|(b", "(", "10.0.0.0/33", "gw.lan", "sure")
	f.Add("", "", " , ,", "::ffff:10.0.0.1", "")
	f.Add(`x{1,2}`, `\`, "fd00::/8", "fd00::1", "off")
	all := []iface.Interface{
		{Name: "eth0", Index: 2, Addr: netip.MustParseAddr("192.168.1.5"), Prefix: netip.MustParsePrefix("192.168.1.0/24"), Up: true},
		{Name: "cni0", Index: 3, Addr: netip.MustParseAddr("10.244.0.1"), Prefix: netip.MustParsePrefix("10.244.0.0/24"), Up: true},
		{Name: "kube-ipvs0", Index: 4, Addr: netip.MustParseAddr("10.96.0.1"), Prefix: netip.MustParsePrefix("10.96.0.1/32"), Up: true},
		{Name: "eth1", Index: 5, Addr: netip.MustParseAddr("10.0.0.0"), Prefix: netip.MustParsePrefix("10.0.0.0/31"), Up: true},
	}
	router := iface.RouterFunc(func(dst netip.Addr) (iface.Route, error) { return iface.Route{Dst: dst, Index: 2}, nil })
	f.Fuzz(func(t *testing.T, regex, skip, cidrs, reach, container string) {
		e := env{
			"DISCOVERY_CLIENT_INTERFACES_REGEX": regex, "DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX": skip,
			"DISCOVERY_CLIENT_INTERFACES_CIDRS": cidrs, "DISCOVERY_CLIENT_INTERFACES_CAN_REACH": reach,
			"DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER": container,
		}
		o, err := LoadOptions(e.lookup)
		if err != nil {
			var ee *EnvError
			if !errors.As(err, &ee) || !strings.HasPrefix(ee.Var, "DISCOVERY_CLIENT_INTERFACES_") {
				t.Fatalf("error %v does not name an interface variable", err)
			}
			return
		}
		sel, err := o.InterfaceRules().Compile()
		if err != nil {
			t.Fatalf("LoadOptions accepted rules that do not compile: %v", err)
		}
		ds := sel.Decide(all, router)
		if len(ds) != len(all) {
			t.Fatalf("%d decisions for %d addresses", len(ds), len(all))
		}
		for _, d := range ds {
			if d.Rule == "" || d.Reason == "" {
				t.Fatalf("%s: decision without a rule or reason: %+v", d.Name, d)
			}
			if d.Taken && d.Prefix.Bits() >= 31 {
				t.Fatalf("%s %s taken", d.Name, d.Prefix)
			}
		}
	})
}
