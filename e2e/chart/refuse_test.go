package chart_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/internal/chartgen"
	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/duration"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
)

// A values case: config values as `--set config.<key>=<value>` writes
// them (a list in braces), plus other helm arguments.
type valuesCase struct {
	config []string // key=value
	helm   []string // further helm arguments
	// key must be named by both refusals (bad cases).
	key string
}

func (c valuesCase) String() string {
	return strings.Join(append(slices.Clone(c.config), c.helm...), " ")
}

func (c valuesCase) helmArgs() []string {
	var args []string
	for _, kv := range c.config {
		args = append(args, "--set", "config."+kv)
	}
	return append(args, c.helm...)
}

// fernetKey is a valid Fernet key (never used for anything but parsing).
const fernetKey = "cw_0nGl0FHMuZ8yb7NyyWaznM3-cDmZf1H3kpQcxuXE="

// badValues are values the bridge refuses: Helm must refuse each one
// before anything is installed, instead of a pod that crash-loops.
var badValues = []valuesCase{
	// What a new user tried (issue 18).
	{config: []string{"interval=1ns"}, key: "interval"},
	{config: []string{"interval=banana"}, key: "interval"},
	{config: []string{"interval=0"}, key: "interval"},
	{config: []string{"timeout=-1"}, key: "timeout"},
	{config: []string{"interval=1s", "timeout=2"}, key: "interval"},
	{config: []string{"consul_deregister_after=1s"}, key: "consul_deregister_after"},
	{config: []string{"max_token_age=forever"}, key: "max_token_age"},
	{config: []string{"missed_rounds=0"}, key: "missed_rounds"},
	// The DNSEndpoint (issue 33).
	{config: []string{"sinks={kubernetes}", "k8s_write={dnsendpoint}"}, key: "k8s_dns_name"},
	{config: []string{"sinks={kubernetes}", "k8s_dns_name=Django.Lab"}, key: "k8s_dns_name"},
	{config: []string{"sinks={kubernetes}", "k8s_dns_name=django"}, key: "k8s_dns_name"},
	{config: []string{"k8s_dns_ttl=1.5s"}, key: "k8s_dns_ttl"},
	{config: []string{"k8s_write={slices}"}, key: "k8s_write"},
	// Names the Kubernetes API refuses (issue 31): the keys' Pattern and
	// MaxLen reach the schema.
	{config: []string{"sinks={kubernetes}", "k8s_service=Bad_Name"}, key: "k8s_service"},
	{config: []string{"sinks={kubernetes}", "k8s_service=" + strings.Repeat("a", 41)}, key: "k8s_service"},
	{config: []string{"sinks={kubernetes}", "k8s_port_name=averyveryverylongname"}, key: "k8s_port_name"},
	{config: []string{"sinks={kubernetes}", "k8s_namespace=Team_A"}, key: "k8s_namespace"},
	// The hosts format's names (issue 33): a pattern that would not make a
	// DNS name of every address and port, a shared name that is none.
	{config: []string{"file_hosts_name=django.udb.internal"}, key: "file_hosts_name"},
	{config: []string{"file_hosts_name=Django-{ip_dashed}.lan"}, key: "file_hosts_name"},
	{config: []string{"file_hosts_name=django-{ip}.lan"}, key: "file_hosts_name"},
	{config: []string{"file_hosts_name=s-{ip_dashed}{port}.lan"}, key: "file_hosts_name"},
	{config: []string{"file_hosts_name=a-{ip_dashed}-{ip_dashed}.lan"}, key: "file_hosts_name"},
	{config: []string{"file_hosts_name=abcdefghijklmno-{ip_dashed}.lan"}, key: "file_hosts_name"},
	{config: []string{"file_hosts_name=" + strings.Repeat("a.", 120) + "{ip_dashed}"}, key: "file_hosts_name"},
	{config: []string{"file_hosts_shared_name=django_udb.lan"}, key: "file_hosts_shared_name"},
	{config: []string{"file_hosts_shared_name=-django.lan"}, key: "file_hosts_shared_name"},
	{config: []string{"file_hosts_shared_name=" + strings.Repeat("a", 64) + ".lan"}, key: "file_hosts_shared_name"},
	// Durations: syntax, floors and ceilings, as strings and numbers.
	{config: []string{"timeout=11m"}, key: "timeout"},
	{config: []string{"timeout=601"}, key: "timeout"},
	{config: []string{"interval=0.05"}, key: "interval"},
	{config: []string{"interval=99ms", "timeout=50ms"}, key: "interval"},
	{config: []string{"timeout=5m", "interval=1m"}, key: "interval"},
	{config: []string{"max_token_age=0"}, key: "max_token_age"},
	{config: []string{"clock_skew=-1"}, key: "clock_skew"},
	{config: []string{"settle=-1s"}, key: "settle"},
	{config: []string{"settle=5 s"}, key: "settle"},
	{config: []string{"consul_resync=0"}, key: "consul_resync"},
	// Numbers and ports.
	{config: []string{"retries=101"}, key: "retries"},
	{config: []string{"retries=-1"}, key: "retries"},
	{config: []string{"discovery_port=0"}, key: "discovery_port"},
	{config: []string{"default_port=70000"}, key: "default_port"},
	{config: []string{"scan_rate=0"}, key: "scan_rate"},
	{config: []string{"max_replies=0"}, key: "max_replies"},
	{config: []string{"removal_guard_rounds=-1"}, key: "removal_guard_rounds"},
	{config: []string{"max_removal_fraction=1.5"}, key: "max_removal_fraction"},
	{config: []string{"max_removal_fraction=0"}, key: "max_removal_fraction"},
	{config: []string{"consul_parallel=65"}, key: "consul_parallel"},
	{config: []string{"consul_parallel=0"}, key: "consul_parallel"},
	{config: []string{"consul_write_rate=fast"}, key: "consul_write_rate"},
	{config: []string{"consul_write_rate=-1"}, key: "consul_write_rate"},
	// Enums.
	{config: []string{"log_level=loud"}, key: "log_level"},
	{config: []string{"address_from=peer"}, key: "address_from"},
	{config: []string{"consul_mode=agentless"}, key: "consul_mode"},
	{config: []string{"on_exit=stay"}, key: "on_exit"},
	{config: []string{"consul_check=ping"}, key: "consul_check"},
	{config: []string{"sinks={kafka}"}, key: "sinks"},
	{config: []string{"sinks={consul,consul}"}, key: "sinks"},
	// Addresses, networks, patterns.
	{config: []string{"interfaces_can_reach=eleven"}, key: "interfaces_can_reach"},
	{config: []string{"interfaces_cidrs={10.0.0.1}"}, key: "interfaces_cidrs"},
	{config: []string{"interfaces_cidrs={10.0.0.0/33}"}, key: "interfaces_cidrs"},
	{config: []string{"interfaces_can_reach=192.168.1.256"}, key: "interfaces_can_reach"},
	{config: []string{"scan_cidrs={010.0.0.0/24}"}, key: "scan_cidrs"},
	{config: []string{"scan_cidrs={10.0.0.0/8}"}, key: "scan_cidrs"},
	{config: []string{"scan_cidrs={10.0.0.0/16,10.1.0.0/24}"}, key: "scan_cidrs"},
	{config: []string{"interfaces_regex=eth("}, key: "interfaces_regex"},
	{config: []string{"interfaces_skip_regex=veth[0-9"}, key: "interfaces_skip_regex"},
	// Rules across keys and modes.
	{config: []string{"consul_mode=agent", "consul_deregister_after=30s"}, key: "consul_deregister_after"},
	{config: []string{"consul_mode=agent", "consul_deregister_after=1m", "consul_ttl=5s"}, key: "consul_ttl"},
	{config: []string{"consul_mode=agent", "consul_lock=bridges/lan1", "consul_ttl=20s"}, key: "consul_ttl"},
	{config: []string{"consul_mode=agent", "consul_lock=bridges/lan1", "consul_lock_session_ttl=5s"}, key: "consul_lock_session_ttl"},
	{config: []string{"consul_lock_session_ttl=5s"}, key: "consul_lock_session_ttl"},
	{config: []string{"consul_lock=bridges/lan1"}, key: "consul_lock"},
	{config: []string{"consul_kv_prefix=/bridges"}, key: "consul_kv_prefix"},
	{config: []string{"consul_check=http", "consul_http_path=health"}, key: "consul_http_path"},
	{config: []string{"consul_check=tcp", "consul_check_interval=0"}, key: "consul_check_interval"},
	{config: []string{"consul_service=udp-discovery-bridge"}, key: "consul_service"},
	// The app check.
	{config: []string{"app_check=grpc"}, key: "app_check"},
	{config: []string{"app_check_path=healthz"}, key: "app_check_path"},
	{config: []string{"app_check_status=200-abc"}, key: "app_check_status"},
	{config: []string{"app_check_rise=0"}, key: "app_check_rise"},
	{config: []string{"app_check=tcp", "app_check_timeout=20s"}, key: "app_check_timeout"},
	{config: []string{"app_check=tcp", "app_check_tls_insecure=true"}, key: "app_check_tls_insecure"},
	{config: []string{"app_check=https", "app_check_tls_insecure=true", "app_check_ca_file=/ca.pem"}, key: "app_check_ca_file"},
	{config: []string{"consul_check=tcp", "app_check=http"}, key: "consul_check"},
	{config: []string{"sd_targets=some"}, key: "sd_targets"},
	{config: []string{"sinks={file}"}, key: "sinks"},
	{config: []string{"encryption_enabled=true"}, key: "encryption_enabled"},
}

// goodValues are values the bridge accepts: Helm must accept them too,
// and the bridge must accept the environment the chart renders from them.
var goodValues = []valuesCase{
	{},
	{config: []string{"interval=500ms", "timeout=0.2"}},
	{config: []string{"interval=100ms", "timeout=50ms"}},
	{config: []string{"interval=1m30s", "timeout=1m"}},
	{config: []string{"interval=11m", "timeout=10m"}},
	{config: []string{"timeout=0.5", "settle=0.25", "max_token_age=90", "clock_skew=0"}},
	{config: []string{"consul_deregister_after=5s"}},
	{config: []string{"consul_mode=agent", "consul_deregister_after=1m"}, helm: []string{"--set", "consulAgent.useHostIP=false"}},
	{config: []string{"consul_mode=agent", "consul_lock=bridges/lan1", "consul_ttl=60s"}, helm: []string{"--set", "consulAgent.useHostIP=false"}},
	{config: []string{"consul_ttl=20s", "consul_lock_session_ttl=15s", "consul_resync=30s"}},
	{config: []string{"max_removal_fraction=1", "removal_guard_rounds=0"}},
	{config: []string{"max_removal_fraction=0.25", "consul_write_rate=2.5", "consul_parallel=64"}},
	{config: []string{"scan_cidrs={10.0.0.0/24,10.1.0.0/24}", "scan_rate=200", "retries=100"}},
	{config: []string{"interfaces_regex=eth[0-9]+", "interfaces_cidrs={192.168.0.0/16}", "interfaces_can_reach=192.168.1.1"}},
	{config: []string{"consul_check=http", "consul_http_path=/health", "consul_check_interval=5s"}},
	{config: []string{"app_check=http", "app_check_path=/healthz", "app_check_status=200-299", "sd_targets=all"}},
	{config: []string{"consul_check=tcp", "app_check=tcp", "app_check_interval=30s", "app_check_timeout=1"}},
	{config: []string{"sinks={consul,stdout}", "log_level=debug"}},
	{config: []string{"sinks={file}", "file_path=/var/lib/bridge/servers.json"}},
	{config: []string{"sinks={kubernetes}", "k8s_write={dnsendpoint}", "k8s_dns_name=django.lab.example.com", "k8s_dns_srv=true"}},
	{config: []string{"sinks={kubernetes}", "k8s_write={endpointslices,dnsendpoint}", "k8s_dns_name=django.lab.example.com.", "k8s_dns_ttl=0"}},
	{config: []string{"sinks={file}", "file_path=/var/lib/bridge/hosts", "file_format=hosts",
		"file_hosts_name=web-{ip_dashed}-p{port}.hall-3.example", "file_hosts_shared_name=web.hall-3.example"}},
	{config: []string{"consul_kv_prefix=bridges/django"}},
	// Empty values are not rendered: the bridge's defaults apply.
	{config: []string{"consul_service=", "discovery_message=", "timeout=", "consul_tags={}"}},
	{config: []string{"encryption_enabled=true"}, helm: []string{"--set", "secretKey.value=" + fernetKey}},
}

// TestChartRefusesWhatTheBridgeRefuses runs every bad values case through
// `helm template` and through the bridge (`bridge config check`, with the
// environment the chart would render): both must refuse it and name the
// key. Every good case must pass both, the bridge getting exactly the
// environment the chart rendered.
func TestChartRefusesWhatTheBridgeRefuses(t *testing.T) {
	bin := bridgebin.Path(t)
	keys := exampleKeys(t)
	defaults, _ := chartValues(t)["config"].(map[string]any)
	for _, c := range append(slices.Clone(badValues), boundsCases(t)...) {
		t.Run("bad "+c.String(), func(t *testing.T) {
			_, errOut, err := helm(t, append([]string{"template", "r", chartDir(t)}, c.helmArgs()...)...)
			if err == nil {
				t.Errorf("helm template accepted %s; the bridge refuses it", c)
			} else if !strings.Contains(errOut, c.key) {
				t.Errorf("helm template refused %s without naming %s:\n%s", c, c.key, errOut)
			}
			code, out := configCheck(t, bin, mappedEnv(t, keys, defaults, c.config))
			if code != 2 {
				t.Errorf("bridge config check with %s: exit %d, want 2 (the test's case is not bad for the bridge?)\n%s", c, code, out)
			} else if !strings.Contains(out, c.key) {
				t.Errorf("bridge config check refused %s without naming %s:\n%s", c, c.key, out)
			}
		})
	}
	for _, c := range goodValues {
		t.Run("good "+c.String(), func(t *testing.T) {
			r := render(t, c.helmArgs()...) // fails t when helm refuses
			env := map[string]string{}
			for _, e := range r.container(t).Env {
				if bridgeVar(e.Name) && e.ValueFrom == nil {
					env[e.Name] = e.Value
				}
			}
			// The test's own mapping (used for the bad cases) is the chart's.
			want := mappedEnv(t, keys, defaults, c.config)
			for name, v := range want {
				if env[name] != v {
					t.Errorf("%s: the chart renders %q, the test maps %q", name, env[name], v)
				}
			}
			if f, ok := env["DISCOVERY_CLIENT_SECRET_KEY_FILE"]; ok {
				local := filepath.Join(t.TempDir(), filepath.Base(f))
				if err := os.WriteFile(local, []byte(fernetKey+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				env["DISCOVERY_CLIENT_SECRET_KEY_FILE"] = local
			}
			if code, out := configCheck(t, bin, env); code != 0 {
				t.Errorf("bridge config check refuses what the chart rendered from %s: exit %d\n%s", c, code, out)
			}
		})
	}
}

// mappedEnv is the environment the chart renders from its default config
// values with the case's values set: each key's first variable, lists
// comma-joined, empty values left out.
func mappedEnv(t *testing.T, keys []exampleKey, defaults map[string]any, set []string) map[string]string {
	t.Helper()
	values := maps.Clone(defaults)
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("case value %q: want key=value", kv)
		}
		if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
			values[k] = strings.Split(strings.Trim(v, "{}"), ",")
			continue
		}
		values[k] = v
	}
	env := map[string]string{}
	for _, k := range keys {
		v, ok := values[k.name]
		if !ok {
			continue
		}
		if s := envString(v); s != "" {
			env[k.env[0]] = s
		}
	}
	return env
}

// envString formats a config value as the chart's udb.envValue does.
func envString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case []string:
		return strings.Join(v, ",")
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = envString(e)
		}
		return strings.Join(s, ",")
	case float64:
		if v == math.Floor(v) {
			return fmt.Sprint(int64(v))
		}
	}
	return fmt.Sprint(v)
}

// configCheck runs `bridge config check` with only env (no variable of the
// test's own environment), returning its exit code and output. It sends
// nothing: it only loads and validates the configuration.
func configCheck(t *testing.T, bin string, env map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "config", "check")
	cmd.Env = []string{"HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("bridge config check: %v", err)
	}
	return 0, string(out)
}

// boundsCases are bad values made from every config key's declaration:
// a word for a number, duration, port or boolean, a value just outside
// each bound, a value outside OneOf. A key that gains bounds is covered
// without a new line here.
func boundsCases(t *testing.T) []valuesCase {
	t.Helper()
	var cases []valuesCase
	add := func(k config.Key, v string) {
		cases = append(cases, valuesCase{config: []string{k.Name + "=" + v}, key: k.Name})
	}
	for _, k := range builtin.Registry().Schema().Keys() {
		if _, managed := chartManaged[k.Name]; managed {
			continue
		}
		b := chartgen.BoundsOf(k)
		kind := k.Kind
		if b.Float {
			kind = config.KindFloat
		}
		switch kind {
		case config.KindInt, config.KindFloat, config.KindPort, config.KindDuration, config.KindBool:
			add(k, "banana")
		}
		if kind == config.KindPort {
			add(k, "0")
			add(k, "65536")
		}
		if len(b.OneOf) > 0 {
			if kind == config.KindList {
				add(k, "{bogus}")
			} else {
				add(k, "bogus")
			}
		}
		if b.Min != "" {
			add(k, outside(t, k, kind, b.Min, b.MinExclusive, -1))
		}
		if b.Max != "" {
			add(k, outside(t, k, kind, b.Max, false, +1))
		}
	}
	return cases
}

// outside returns a value of kind just past bound (below it for dir -1,
// above for +1); an exclusive bound is itself outside.
func outside(t *testing.T, k config.Key, kind config.Kind, bound string, exclusive bool, dir int) string {
	t.Helper()
	if exclusive {
		return bound
	}
	switch kind {
	case config.KindDuration:
		d, err := duration.Parse(bound)
		if err != nil {
			t.Fatalf("%s: bound %q: %v", k.Name, bound, err)
		}
		return (d + time.Duration(dir)*time.Millisecond).String()
	default: // whole or decimal numbers
		var f float64
		if _, err := fmt.Sscan(bound, &f); err != nil {
			t.Fatalf("%s: bound %q: %v", k.Name, bound, err)
		}
		return fmt.Sprint(f + float64(dir))
	}
}
