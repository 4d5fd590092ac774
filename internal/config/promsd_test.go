package config_test

import (
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

func TestPrometheusSDKeys(t *testing.T) {
	if c := mustLoad(t, Inputs{}); c.PrometheusSD != (config.PrometheusSD{Targets: config.SDTargetsReady}) {
		t.Errorf("default = %+v, want off with no address or token, ready targets only", c.PrometheusSD)
	}
	c := mustLoad(t, Inputs{LookupEnv: envOf(map[string]string{
		"DISCOVERY_CLIENT_PROMETHEUS_SD": "true", "DISCOVERY_CLIENT_PROMETHEUS_SD_ADDR": "127.0.0.1:9109",
		"DISCOVERY_CLIENT_PROMETHEUS_SD_TOKEN_FILE": "/run/sd-token"})})
	want := config.PrometheusSD{Enabled: true, Addr: "127.0.0.1:9109", TokenFile: "/run/sd-token", Targets: config.SDTargetsReady}
	if c.PrometheusSD != want {
		t.Errorf("from env = %+v, want %+v", c.PrometheusSD, want)
	}
	c = mustLoad(t, Inputs{Flags: map[string]any{"prometheus_sd": "true", "metrics_addr": "", "prometheus_sd_addr": ":9109", "prometheus_sd_token": "t0k", "sd_targets": "all"}})
	if want := (config.PrometheusSD{Enabled: true, Addr: ":9109", Token: "t0k", Targets: config.SDTargetsAll}); c.PrometheusSD != want {
		t.Errorf("from flags = %+v, want %+v (an own address needs no metrics_addr)", c.PrometheusSD, want)
	}

	const secret = "very-secret-sd-token"
	for _, tc := range []struct {
		name  string
		flags map[string]any
		want  string
	}{
		{"token and token file", map[string]any{"prometheus_sd_token": secret, "prometheus_sd_token_file": "/x"},
			"prometheus_sd_token (flag --prometheus-sd-token) and prometheus_sd_token_file (flag --prometheus-sd-token-file): set one, not both"},
		{"no server to serve it", map[string]any{"prometheus_sd": "true", "metrics_addr": ""},
			"prometheus_sd (flag --prometheus-sd): /sd/prometheus is served on metrics_addr, which is empty (disabled): set metrics_addr (flag --metrics-addr) or prometheus_sd_addr"},
		{"not a boolean", map[string]any{"prometheus_sd": "maybe"}, `prometheus_sd (flag --prometheus-sd): bad value "maybe"`},
		{"sd_targets neither ready nor all", map[string]any{"sd_targets": "failing"}, `sd_targets (flag --sd-targets): bad value "failing": want one of ready, all`},
		{"debug endpoint without a server", map[string]any{"debug_endpoint": "true", "metrics_addr": ""},
			"debug_endpoint (flag --debug-endpoint): /debug/explain is served on metrics_addr, which is empty (disabled): set metrics_addr (flag --metrics-addr)"},
	} {
		_, err := Load(Inputs{Flags: tc.flags})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the token leaks into the error: %v", tc.name, err)
		}
	}
}
