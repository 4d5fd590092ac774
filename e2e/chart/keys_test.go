package chart_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// exampleKey is one key of bridge.example.yaml, which is generated from the
// bridge's key table (go test ./internal/config -run Example -update).
type exampleKey struct {
	name string
	env  []string // the first is the canonical one
	def  any      // the default, decoded as YAML
}

var (
	flagLine = regexp.MustCompile(`^# flag --\S+, env (.+)$`)
	keyLine  = regexp.MustCompile(`^# ([a-z0-9_]+): (.*)$`)
)

func exampleKeys(t testing.TB) []exampleKey {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "bridge.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []exampleKey
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := flagLine.FindStringSubmatch(line); m != nil {
			env = strings.Split(m[1], " or ")
			continue
		}
		if m := keyLine.FindStringSubmatch(line); m != nil && env != nil {
			var def any
			if err := yaml.Unmarshal([]byte(m[2]), &def); err != nil {
				t.Fatalf("bridge.example.yaml: default of %s: %v", m[1], err)
			}
			keys = append(keys, exampleKey{name: m[1], env: env, def: def})
			env = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) < 40 {
		t.Fatalf("parsed only %d keys from bridge.example.yaml: has its format changed?", len(keys))
	}
	return keys
}

// chartManaged are the keys the chart sets itself instead of taking them
// from .Values.config, with the variable it renders for each (empty: none).
var chartManaged = map[string]string{
	"bridge_id":           "DISCOVERY_CLIENT_BRIDGE_ID",       // the node name
	"metrics_addr":        "DISCOVERY_CLIENT_METRICS_ADDR",    // :<metrics.port>
	"secret_key":          "",                                 // never a value: the file below
	"secret_key_file":     "DISCOVERY_CLIENT_SECRET_KEY_FILE", // the mounted Secret
	"consul_token":        "",                                 // never a value: the file below
	"consul_token_file":   "CONSUL_HTTP_TOKEN_FILE",           // the mounted Secret
	"prometheus_sd_token": "",                                 // never a value: prometheus_sd_token_file
}

// chartDefaults are the config defaults where the chart departs from the
// bridge, on purpose.
var chartDefaults = map[string]any{
	"log_format":  "json",                          // structured logs for the cluster's log pipeline
	"sinks":       []any{"consul"},                 // a DaemonSet is for Consul
	"consul_mode": "catalog",                       // consul-k8s 1.0+ has no client agents
	"consul_addr": "consul-server.consul.svc:8500", // consul-k8s's server Service
	// A node's CNI bridges are pod networks: the chart never probes them.
	"interfaces_skip_container": true,
}

func chartValues(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	return v
}

// TestChartConfigMatchesKeyTable checks .Values.config against the
// bridge's key table: every key is either a config value or set by the
// chart, and the config defaults are the bridge's except the chart's
// deliberate ones.
func TestChartConfigMatchesKeyTable(t *testing.T) {
	cfg, _ := chartValues(t)["config"].(map[string]any)
	if cfg == nil {
		t.Fatal("values.yaml has no config map")
	}
	seen := map[string]bool{}
	for _, k := range exampleKeys(t) {
		seen[k.name] = true
		_, managed := chartManaged[k.name]
		v, inConfig := cfg[k.name]
		switch {
		case managed && inConfig:
			t.Errorf("config.%s is set by the chart; it must not be a config value", k.name)
		case !managed && !inConfig:
			t.Errorf("bridge key %s (env %s) is missing from the chart's config values", k.name, k.env[0])
		case inConfig:
			want := k.def
			if d, ok := chartDefaults[k.name]; ok {
				if reflect.DeepEqual(normalize(v), normalize(k.def)) {
					t.Errorf("config.%s is listed as a chart default but equals the bridge's", k.name)
				}
				want = d
			}
			if !reflect.DeepEqual(normalize(v), normalize(want)) {
				t.Errorf("config.%s defaults to %#v, want %#v", k.name, v, want)
			}
		}
	}
	for name := range cfg {
		if !seen[name] {
			t.Errorf("config.%s is not a key of the bridge (bridge.example.yaml)", name)
		}
	}
	for name := range chartManaged {
		if !seen[name] {
			t.Errorf("chart-managed key %s is not a key of the bridge any more", name)
		}
	}
}

// normalize maps a YAML value to its JSON form (numbers as float64, nil
// lists as empty).
func normalize(v any) any {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	if l, ok := out.([]any); ok && len(l) == 0 {
		return []any{}
	}
	return out
}

// TestChartEnvNamesMatchKeyTable renders the chart with every config value
// non-empty and checks the rendered variables are exactly the canonical
// variable of each config key plus those the chart manages: so every value
// reaches the bridge under the name the bridge reads.
func TestChartEnvNamesMatchKeyTable(t *testing.T) {
	cfg, _ := chartValues(t)["config"].(map[string]any)
	var set []string
	for k, v := range cfg {
		switch v := v.(type) {
		case string:
			if v == "" {
				set = append(set, "--set", "config."+k+"=x")
			}
		case []any:
			if len(v) == 0 {
				set = append(set, "--set", "config."+k+"={x}")
			}
		}
	}
	// Values the schema or the template check would refuse as "x".
	set = append(set, "--set", "config.interfaces_cidrs={10.0.0.0/8}", "--set", "config.interfaces_can_reach=10.0.0.1", "--set", "config.scan_cidrs={10.0.0.0/24}",
		"--set", "config.k8s_dns_name=django.lab.test")
	// consul_lock is agent mode's (catalog mode refuses it, as the bridge does).
	set = append(set, "--set", "config.consul_mode=agent")
	// The Fernet key is mounted (secret_key_file rendered) only with encryption on.
	set = append(set, "--set", "config.encryption_enabled=true")
	set = append(set, "--set", "config.consul_check=tcp", "--set", "config.sinks={consul}", "--set", "secretKey.existingSecret=k", "--set", "consulToken.existingSecret=t")
	r := render(t, set...)
	checkCommon(t, r, false)

	var want []string
	for _, k := range exampleKeys(t) {
		if env, managed := chartManaged[k.name]; managed {
			if env != "" {
				want = append(want, env)
			}
			continue
		}
		want = append(want, k.env[0])
	}
	var got []string
	for _, e := range r.container(t).Env {
		if bridgeVar(e.Name) {
			got = append(got, e.Name)
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("rendered bridge variables differ from the key table\n got: %v\nwant: %v", got, want)
	}
}
