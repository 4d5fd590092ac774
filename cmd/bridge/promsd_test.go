package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
)

// serveGet serves one GET of path through h, without sockets.
func serveGet(h http.Handler, path, token string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestPromSDServing: where `bridge run` serves /sd/prometheus (beside
// /metrics, or alone on its own address), its token, and the start-up
// errors of a token file. The endpoint's own states are internal/promsd's
// tests; a real bridge serving it is e2e/sinks/prometheus_test.go's.
func TestPromSDServing(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	for file, content := range map[string]string{tokenFile: "sd-token-123\n", empty: "\n"} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	metrics := http.NewServeMux()
	metrics.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") })
	id := promsd.Identity{BridgeID: "b"}

	t.Run("off by default", func(t *testing.T) {
		sd, err := newPromSD(loadTestConfig(t), id, metrics, zerolog.Nop())
		if err != nil || sd.targets != nil || sd.own != nil {
			t.Fatalf("default: %+v, %v; want no endpoint", sd, err)
		}
		if code, _ := serveGet(sd.metrics, "/sd/prometheus", ""); code != http.StatusNotFound {
			t.Errorf("default /sd/prometheus: %d, want 404", code)
		}
	})
	t.Run("beside /metrics, with a token", func(t *testing.T) {
		sd, err := newPromSD(loadTestConfig(t, "DISCOVERY_CLIENT_PROMETHEUS_SD", "true", "DISCOVERY_CLIENT_PROMETHEUS_SD_TOKEN_FILE", tokenFile), id, metrics, zerolog.Nop())
		if err != nil || sd.targets == nil || sd.own != nil {
			t.Fatalf("%+v, %v", sd, err)
		}
		for _, tc := range []struct {
			path, token string
			code        int
		}{
			{"/sd/prometheus", "", http.StatusUnauthorized},
			{"/sd/prometheus", "wrong", http.StatusUnauthorized},
			{"/sd/prometheus", "sd-token-123", http.StatusServiceUnavailable}, // no round yet
			{"/metrics", "", http.StatusOK},                                   // no token needed
		} {
			if code, body := serveGet(sd.metrics, tc.path, tc.token); code != tc.code {
				t.Errorf("GET %s (token %q): %d %q, want %d", tc.path, tc.token, code, body, tc.code)
			}
		}
		sd.targets.Round(endpoint.Snapshot{Round: 1})
		if code, body := serveGet(sd.metrics, "/sd/prometheus", "sd-token-123"); code != http.StatusOK || body != "[]\n" {
			t.Errorf("after a round: %d %q, want 200 []", code, body)
		}
	})
	t.Run("on its own address", func(t *testing.T) {
		sd, err := newPromSD(loadTestConfig(t, "DISCOVERY_CLIENT_PROMETHEUS_SD", "true", "DISCOVERY_CLIENT_PROMETHEUS_SD_ADDR", "127.0.0.1:9109"), id, metrics, zerolog.Nop())
		if err != nil || sd.own == nil {
			t.Fatalf("%+v, %v", sd, err)
		}
		if code, _ := serveGet(sd.own, "/sd/prometheus", ""); code != http.StatusServiceUnavailable {
			t.Errorf("own address /sd/prometheus: %d, want 503 (no round yet)", code)
		}
		if code, _ := serveGet(sd.own, "/metrics", ""); code != http.StatusNotFound {
			t.Errorf("own address /metrics: %d, want 404", code)
		}
		if code, _ := serveGet(sd.metrics, "/sd/prometheus", ""); code != http.StatusNotFound {
			t.Errorf("metrics_addr /sd/prometheus: %d, want 404 when it has its own address", code)
		}
	})
	for name, file := range map[string]string{"a missing token file": filepath.Join(dir, "nope"), "an empty token file": empty} {
		t.Run(name+" stops start-up", func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, "run", "--prometheus-sd", "--prometheus-sd-token-file", file)
			if code != exitUsage || !strings.Contains(stderr, "prometheus_sd_token_file (flag --prometheus-sd-token-file) "+file) {
				t.Errorf("exit %d %q, want %d naming the key and the file", code, stderr, exitUsage)
			}
		})
	}
}

// TestBridgeIdentity: the labels' bridge id and segment are the core keys
// bridge_id (defaulting to the host name) and segment, whatever the sinks.
func TestBridgeIdentity(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		env  []string
		want promsd.Identity
	}{
		{nil, promsd.Identity{BridgeID: host}},
		{[]string{"DISCOVERY_CLIENT_BRIDGE_ID", "b-1", "DISCOVERY_CLIENT_SEGMENT", "hall-3"}, promsd.Identity{BridgeID: "b-1", Segment: "hall-3"}},
		{[]string{"DISCOVERY_CLIENT_BRIDGE_ID", "b-1", "DISCOVERY_CLIENT_SEGMENT", "hall-3", "DISCOVERY_CLIENT_CONSUL_MODE", "catalog"}, promsd.Identity{BridgeID: "b-1", Segment: "hall-3"}},
	} {
		if got := bridgeIdentity(loadTestConfig(t, tc.env...)); got != tc.want {
			t.Errorf("env %v: identity %+v, want %+v", tc.env, got, tc.want)
		}
	}
}
