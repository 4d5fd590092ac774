package main

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// TestFoldConsulCheck: the deprecated consul_check keys keep old
// configurations working by folding into the app check keys; a conflict
// names both keys.
func TestFoldConsulCheck(t *testing.T) {
	def := appcheck.DefaultOptions()
	for _, tc := range []struct {
		name    string
		flags   map[string]any
		env     map[string]string
		folded  []string
		want    func(o *appcheck.Options)
		sources map[string]string // Source of app check keys after the fold
		err     string
	}{
		{name: "nothing set", want: func(*appcheck.Options) {}},
		{name: "the other consul keys alone change nothing", flags: map[string]any{"consul_check_interval": "30s", "consul_http_path": "/healthz"},
			want: func(*appcheck.Options) {}},
		{name: "consul_check tcp", flags: map[string]any{"consul_check": "tcp"}, folded: []string{"consul_check"},
			want:    func(o *appcheck.Options) { o.Kind = appcheck.TCP },
			sources: map[string]string{"app_check": "consul_check, flag --consul-check", "app_check_interval": "default"}},
		{name: "consul_check http with its interval and path", env: map[string]string{"DISCOVERY_CLIENT_CONSUL_CHECK": "http",
			"DISCOVERY_CLIENT_CONSUL_CHECK_INTERVAL": "30s", "DISCOVERY_CLIENT_CONSUL_HTTP_PATH": "/healthz"},
			folded: []string{"consul_check", "consul_check_interval", "consul_http_path"},
			want:   func(o *appcheck.Options) { o.Kind, o.Interval, o.Path = appcheck.HTTP, 30*time.Second, "/healthz" },
			sources: map[string]string{"app_check_interval": "consul_check_interval, env DISCOVERY_CLIENT_CONSUL_CHECK_INTERVAL",
				"app_check_path": "consul_http_path, env DISCOVERY_CLIENT_CONSUL_HTTP_PATH"}},
		{name: "app_check none written out (the chart renders every default)", flags: map[string]any{"consul_check": "http", "consul_http_path": "/up"},
			env: map[string]string{"DISCOVERY_CLIENT_APP_CHECK": "none", "DISCOVERY_CLIENT_APP_CHECK_PATH": "/"}, folded: []string{"consul_check", "consul_http_path"},
			want: func(o *appcheck.Options) { o.Kind, o.Path = appcheck.HTTP, "/up" }},
		{name: "the same kind in both: app_check's keys win", flags: map[string]any{"consul_check": "http", "app_check": "http",
			"consul_http_path": "/old", "app_check_path": "/new"}, folded: []string{"consul_check"},
			want:    func(o *appcheck.Options) { o.Kind, o.Path = appcheck.HTTP, "/new" },
			sources: map[string]string{"app_check": "flag --app-check", "app_check_path": "flag --app-check-path"}},
		{name: "different kinds", flags: map[string]any{"consul_check": "tcp", "app_check": "https"},
			err: "consul_check (flag --consul-check) is tcp but app_check (flag --app-check) is https: consul_check is deprecated and folded into app_check; set app_check only"},
		{name: "an interval below app_check_interval's floor", flags: map[string]any{"consul_check": "tcp", "consul_check_interval": "500ms"},
			err: `consul_check_interval (flag --consul-check-interval): bad value "500ms": folded into app_check_interval: at least 1s`},
		{name: "a path app_check_path refuses", flags: map[string]any{"consul_check": "http", "consul_http_path": "/a b"},
			err: `consul_http_path (flag --consul-http-path): bad value "/a b": folded into app_check_path`},
		{name: "an interval below the check's timeout", flags: map[string]any{"consul_check": "tcp", "consul_check_interval": "1s"},
			err: "app_check_timeout (default) 2s must not exceed app_check_interval (consul_check_interval, flag --consul-check-interval) 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := builtin.Registry().Schema().Load(config.Inputs{Flags: tc.flags,
				LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }})
			if err != nil {
				t.Fatal(err)
			}
			folded, err := foldConsulCheck(cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(folded, tc.folded) {
				t.Errorf("folded %v, want %v", folded, tc.folded)
			}
			want := def
			tc.want(&want)
			if !reflect.DeepEqual(cfg.AppCheck, want) {
				t.Errorf("AppCheck = %+v, want %+v", cfg.AppCheck, want)
			}
			for k, src := range tc.sources {
				if got := cfg.Source(k); got != src {
					t.Errorf("Source(%s) = %q, want %q", k, got, src)
				}
			}
		})
	}
}

// TestConfigCheckFoldsConsulCheck: `bridge config check` accepts an old
// configuration with one warning naming the old and the new keys, and
// refuses consul_check and app_check of different kinds (exit 2).
func TestConfigCheckFoldsConsulCheck(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "config", "check", "--log-format", "json", "--consul-check", "http", "--consul-http-path", "/healthz")
	if code != 0 || !strings.Contains(out, "configuration ok") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if n := strings.Count(errOut, `"level":"warn"`); n != 1 ||
		!strings.Contains(errOut, `"deprecated":["consul_check","consul_http_path"]`) || !strings.Contains(errOut, `"use":["app_check","app_check_path"]`) {
		t.Errorf("want one warning naming consul_check, consul_http_path and app_check, app_check_path; stderr:\n%s", errOut)
	}
	code, _, errOut = runCLI(t, nil, "config", "check", "--consul-check", "http", "--app-check", "tcp")
	if code != 2 || !strings.Contains(errOut, "consul_check (flag --consul-check) is http but app_check (flag --app-check) is tcp") {
		t.Errorf("conflict: exit %d, stderr:\n%s", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "config", "check"); code != 0 || strings.Contains(errOut, "deprecated") {
		t.Errorf("defaults: exit %d, stderr:\n%s", code, errOut)
	}
}

// TestConfigCheckAppCheck: config check refuses what the app check would
// refuse at start (an unreadable CA file), naming the key and its source.
func TestConfigCheckAppCheck(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ca.pem")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"http with a path", []string{"--app-check", "http", "--app-check-path", "/healthz"}, 0, "configuration ok"},
		{"an unreadable CA file", []string{"--app-check", "https", "--app-check-ca-file", missing}, 2, "app_check_ca_file (flag --app-check-ca-file) " + strconv.Quote(missing)},
		{"timeout above interval", []string{"--app-check", "tcp", "--app-check-interval", "1s"}, 2,
			"app_check_timeout (default) 2s must not exceed app_check_interval (flag --app-check-interval) 1s"},
		{"sd_targets", []string{"--sd-targets", "some"}, 2, `sd_targets (flag --sd-targets): bad value "some": want one of ready, all`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append([]string{"config", "check"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

// TestDoctorAppCheck: doctor checks each server found once and prints a
// line per server with the check's output and how many pass.
func TestDoctorAppCheck(t *testing.T) {
	serving, refused, c := tcpTargets(t)
	srv := func(ap netip.AddrPort) discover.Server { return discover.Server{IP: ap.Addr(), Port: ap.Port()} }
	for _, tc := range []struct {
		name    string
		servers []discover.Server
		passed  int
		want    []string
	}{
		{"one passes, one fails", []discover.Server{srv(serving), srv(refused)}, 1, []string{
			"== app check (tcp, timeout 2s; rise 2, fall 3, every 10s in `bridge run`)",
			serving.String() + "  pass    TCP connect: ok in",
			refused.String() + "  fail    TCP connect: connection refused",
			"1 of 2 servers pass"}},
		{"none found", nil, 0, []string{"no server to check"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			passed, err := doctorAppCheck(context.Background(), &buf, c, tc.servers)
			if err != nil || passed != tc.passed {
				t.Fatalf("passed %d, %v; want %d", passed, err, tc.passed)
			}
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
	cfg := loadTestConfig(t, "DISCOVERY_CLIENT_APP_CHECK", "http", "DISCOVERY_CLIENT_APP_CHECK_PATH", "/healthz")
	if h := appCheckHint(cfg); !strings.Contains(h, "GET /healthz answers a status in app_check_status (200-399)") || !strings.Contains(h, "default_port 8000") {
		t.Errorf("hint %q", h)
	}
}
