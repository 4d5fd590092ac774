package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

func TestAppCheckKeys(t *testing.T) {
	if c := mustLoad(t, Inputs{}); c.AppCheck.Enabled() || c.AppCheck.Kind != appcheck.None {
		t.Errorf("default app check = %+v, want none (a bridge upgraded in place behaves as before)", c.AppCheck)
	}
	def := appcheck.DefaultOptions()
	for _, tc := range []struct {
		name string
		in   Inputs
		want func() appcheck.Options
	}{
		{"defaults", Inputs{}, func() appcheck.Options { return def }},
		{"flags", Inputs{Flags: map[string]any{"app_check": "http", "app_check_path": "/healthz", "app_check_status": "200-299,301",
			"app_check_interval": "5s", "app_check_timeout": "1s", "app_check_rise": "1", "app_check_fall": "5"}},
			func() appcheck.Options {
				o := def
				o.Kind, o.Path, o.Status = appcheck.HTTP, "/healthz", []appcheck.StatusRange{{Min: 200, Max: 299}, {Min: 301, Max: 301}}
				o.Interval, o.Timeout, o.Rise, o.Fall = 5*time.Second, time.Second, 1, 5
				return o
			}},
		{"environment", Inputs{LookupEnv: envOf(map[string]string{"DISCOVERY_CLIENT_APP_CHECK": "https",
			"DISCOVERY_CLIENT_APP_CHECK_TLS_SERVER_NAME": "app.example.com", "DISCOVERY_CLIENT_APP_CHECK_CONCURRENCY": "8", "DISCOVERY_CLIENT_APP_CHECK_JITTER": "0"})},
			func() appcheck.Options {
				o := def
				o.Kind, o.TLSServerName, o.Concurrency, o.Jitter = appcheck.HTTPS, "app.example.com", 8, 0
				return o
			}},
		{"file", Inputs{File: writeFile(t, "b.yaml", "app_check: tcp\napp_check_interval: 30s\n")},
			func() appcheck.Options { o := def; o.Kind, o.Interval = appcheck.TCP, 30*time.Second; return o }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.in)
			if got, want := c.AppCheck, tc.want(); !reflect.DeepEqual(got, want) {
				t.Errorf("AppCheck = %+v, want %+v", got, want)
			}
		})
	}
}

// TestAppCheckRefused: every bad value is refused naming the key, the value
// and its source; the rules across keys name every key with its source.
func TestAppCheckRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Inputs
		want []string
		not  string // must not be reported
	}{
		{"kind", Inputs{Flags: map[string]any{"app_check": "grpc"}},
			[]string{`app_check (flag --app-check): bad value "grpc": want one of none, tcp, http, https`}, ""},
		{"path without slash", Inputs{LookupEnv: envOf(map[string]string{"DISCOVERY_CLIENT_APP_CHECK_PATH": "healthz"})},
			[]string{`app_check_path (env DISCOVERY_CLIENT_APP_CHECK_PATH): bad value "healthz"`}, ""},
		{"status", Inputs{Flags: map[string]any{"app_check_status": "200-abc"}},
			[]string{`app_check_status (flag --app-check-status): bad value "200-abc"`}, ""},
		{"rise out of bounds", Inputs{Flags: map[string]any{"app_check_rise": "0"}},
			[]string{`app_check_rise (flag --app-check-rise): bad value "0"`}, ""},
		{"timeout above interval", Inputs{Flags: map[string]any{"app_check": "tcp", "app_check_timeout": "3s", "app_check_interval": "2s"}},
			[]string{"app_check_timeout (flag --app-check-timeout) 3s must not exceed app_check_interval (flag --app-check-interval) 2s"}, ""},
		{"timeout above the default interval", Inputs{File: writeFile(t, "b.yaml", "app_check: http\napp_check_timeout: 20s\n")},
			[]string{"app_check_timeout (file " /* the path follows */, "must not exceed app_check_interval (default) 10s"}, ""},
		{"tls keys with tcp", Inputs{Flags: map[string]any{"app_check": "tcp", "app_check_tls_insecure": "true"}},
			[]string{"app_check_tls_insecure (flag --app-check-tls-insecure) apply to app_check (flag --app-check) https only, not tcp"}, ""},
		{"insecure and a CA", Inputs{Flags: map[string]any{"app_check": "https", "app_check_tls_insecure": "true", "app_check_ca_file": "/ca.pem"}},
			[]string{"app_check_tls_insecure (flag --app-check-tls-insecure) and app_check_ca_file (flag --app-check-ca-file): set one, not both"}, ""},
		// A value that did not parse is reported once: the rules across
		// keys are not judged on the default standing in for it.
		{"unparsed interval", Inputs{Flags: map[string]any{"app_check": "tcp", "app_check_timeout": "5s", "app_check_interval": "soon"}},
			[]string{`app_check_interval (flag --app-check-interval): bad value "soon"`}, "must not exceed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.in)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to hold %q", err, w)
				}
			}
			if tc.not != "" && strings.Contains(err.Error(), tc.not) {
				t.Errorf("error %q holds %q", err, tc.not)
			}
		})
	}
}

// TestValidateAppCheck: a caller that changes AppCheck after Load gets
// the same messages.
func TestValidateAppCheck(t *testing.T) {
	c := mustLoad(t, Inputs{Flags: map[string]any{"app_check": "http", "app_check_interval": "5s"}})
	if err := c.ValidateAppCheck(); err != nil {
		t.Fatalf("loaded configuration: %v", err)
	}
	c.AppCheck.Interval = time.Second
	err := c.ValidateAppCheck()
	want := "app_check_timeout (default) 2s must not exceed app_check_interval (flag --app-check-interval) 1s"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ValidateAppCheck = %v, want %q", err, want)
	}
}
