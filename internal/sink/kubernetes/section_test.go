package kubernetes

import (
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
)

// load loads flags with the kubernetes sink on, beside the Consul sink
// (whose bridge_id, segment and on_exit it reads).
func load(flags map[string]any) (*config.Config, error) {
	all := map[string]any{"sinks": []string{"kubernetes"}, "bridge_id": "node-1"}
	for k, v := range flags {
		all[k] = v
	}
	return sink.NewRegistry(consul.Factory(), Factory()).Schema().Load(config.Inputs{Flags: all})
}

func TestSectionDefaultsAndBounds(t *testing.T) {
	cfg, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.SinkSettings("kubernetes").(Config)
	if c.Service != "django" || c.PortName != "http" || c.ServicePort != 8000 || !c.Headless || c.MaxPerSlice != 100 ||
		c.DeregisterAfter != time.Minute || c.LeaseDuration != 15*time.Second || c.BridgeID != "node-1" || !c.Deregister {
		t.Errorf("defaults: %+v", c)
	}
	if c.StartupGrace != c.Round+c.LeaseDuration {
		t.Errorf("startup grace %s, want a round (%s) and a lease", c.StartupGrace, c.Round)
	}
	cfg, err = load(map[string]any{"k8s_service_type": "clusterip", "on_exit": "keep", "k8s_max_endpoints_per_slice": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.SinkSettings("kubernetes").(Config); c.Headless || c.Deregister || c.MaxPerSlice != 1000 {
		t.Errorf("clusterip, keep, 1000: %+v", c)
	}
	for _, bad := range []struct{ key, value, want string }{
		{"k8s_max_endpoints_per_slice", "0", "k8s_max_endpoints_per_slice"},
		{"k8s_max_endpoints_per_slice", "1001", "k8s_max_endpoints_per_slice"},
		{"k8s_service_port", "0", "k8s_service_port"},
		{"k8s_service_port", "65536", "k8s_service_port"},
		{"k8s_service_type", "nodeport", "k8s_service_type"},
		{"k8s_service", "Bad_Name", "DNS label"},
		{"k8s_port_name", "averyveryverylongname", "15 characters"},
		{"k8s_lease_duration", "1s", "k8s_lease_duration"},
	} {
		_, err := load(map[string]any{bad.key: bad.value})
		if err == nil || !strings.Contains(err.Error(), bad.want) || strings.Count(err.Error(), bad.key) != 1 {
			t.Errorf("%s=%s: %v, want one error naming %s", bad.key, bad.value, err, bad.want)
		}
	}
}

// TestNameKeysAgreeWithValidate: the keys' Pattern and MaxLen (what the
// chart's schema carries and a loaded configuration is checked by) refuse
// exactly what Config.Validate refuses in a Config built by a program.
func TestNameKeysAgreeWithValidate(t *testing.T) {
	keys := map[string]config.Key{}
	for _, k := range (&Section{}).Keys() {
		keys[k.Name] = k
	}
	for _, key := range []string{"k8s_service", "k8s_port_name"} {
		k := keys[key]
		if k.Pattern == "" || k.MaxLen == 0 {
			t.Fatalf("%s declares no pattern or length", key)
		}
		for _, v := range []string{"django", "a", "a-b", "-ab", "ab-", "Ab", "a_b", "a.b", "1abc", strings.Repeat("a", 15), strings.Repeat("a", 16),
			strings.Repeat("a", 40), strings.Repeat("a", 41), "é"} {
			keyErr := k.Check(v)
			valid := nameProblem(key, v) == ""
			if (keyErr == nil) != valid {
				t.Errorf("%s=%q: the key says %v, Validate says valid=%v", key, v, keyErr, valid)
			}
		}
	}
}
