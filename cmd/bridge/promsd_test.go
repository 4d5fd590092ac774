package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/promsd"
)

// freeAddr returns a loopback address nobody listens on (listen, close).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRun runs `bridge run` in-process until the test ends. Its interface
// whitelist names no interface, so no packet leaves: every round fails.
func startRun(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"bridge", "run", "--whitelist", "no-such-if0", "--interval", "200ms", "--timeout", "100ms", "--log-format", "json"}, args...), &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("bridge run did not stop")
		}
	})
}

// getURL polls url until it answers (the server starts asynchronously;
// the deadline is a safety net) and returns the status and body.
func getURL(t *testing.T, url, token string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunServesPrometheusSD(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("sd-token-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("on the metrics server", func(t *testing.T) {
		addr := freeAddr(t)
		startRun(t, "--metrics-addr", addr, "--prometheus-sd", "--prometheus-sd-token-file", tokenFile)
		base := "http://" + addr
		if code, _ := getURL(t, base+"/sd/prometheus", ""); code != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", code)
		}
		if code, _ := getURL(t, base+"/sd/prometheus", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("wrong token: %d, want 401", code)
		}
		// Rounds fail (no interface): 503, so Prometheus keeps its targets.
		if code, body := getURL(t, base+"/sd/prometheus", "sd-token-123"); code != http.StatusServiceUnavailable ||
			!(strings.Contains(body, "no discovery round completed yet") || strings.Contains(body, "no usable IPv4 interface")) {
			t.Errorf("failing rounds: %d %q, want 503 with the reason", code, body)
		}
		if code, body := getURL(t, base+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "udp_discovery_bridge_build_info{goversion=") ||
			!strings.Contains(body, `version="`+bridgeVersion()+`"} 1`) {
			t.Errorf("/metrics: %d, want 200 without a token, with build_info", code)
		}
	})
	t.Run("on its own address", func(t *testing.T) {
		metrics, sd := freeAddr(t), freeAddr(t)
		startRun(t, "--metrics-addr", metrics, "--prometheus-sd", "--prometheus-sd-addr", sd)
		if code, _ := getURL(t, "http://"+sd+"/sd/prometheus", ""); code != http.StatusServiceUnavailable {
			t.Errorf("own address: %d, want 503 (rounds fail)", code)
		}
		if code, _ := getURL(t, "http://"+sd+"/metrics", ""); code != http.StatusNotFound {
			t.Errorf("/metrics on the sd address: %d, want 404", code)
		}
		if code, _ := getURL(t, "http://"+metrics+"/sd/prometheus", ""); code != http.StatusNotFound {
			t.Errorf("/sd/prometheus on metrics_addr: %d, want 404 when it has its own address", code)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		addr := freeAddr(t)
		startRun(t, "--metrics-addr", addr)
		if code, _ := getURL(t, "http://"+addr+"/sd/prometheus", ""); code != http.StatusNotFound {
			t.Errorf("default: %d, want 404", code)
		}
	})
	t.Run("a missing token file stops start-up", func(t *testing.T) {
		code, _, stderr := runCLI(t, nil, "run", "--whitelist", "no-such-if0", "--metrics-addr", freeAddr(t), "--prometheus-sd", "--prometheus-sd-token-file", filepath.Join(t.TempDir(), "nope"))
		if code != exitUsage || !strings.Contains(stderr, "prometheus_sd_token_file (flag --prometheus-sd-token-file)") {
			t.Errorf("exit %d %q, want %d naming the key", code, stderr, exitUsage)
		}
	})
}

// TestBridgeIdentity: the labels' bridge id and segment are the bridge_id
// and segment keys (bridge_id defaulting to the host name; segment read in
// catalog mode only).
func TestBridgeIdentity(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		env  []string
		want promsd.Identity
	}{
		{nil, promsd.Identity{BridgeID: host}},
		{[]string{"DISCOVERY_CLIENT_BRIDGE_ID", "b-1", "DISCOVERY_CLIENT_SEGMENT", "hall-3"}, promsd.Identity{BridgeID: "b-1"}},
		{[]string{"DISCOVERY_CLIENT_BRIDGE_ID", "b-1", "DISCOVERY_CLIENT_SEGMENT", "hall-3", "DISCOVERY_CLIENT_CONSUL_MODE", "catalog"}, promsd.Identity{BridgeID: "b-1", Segment: "hall-3"}},
	} {
		if got := bridgeIdentity(loadTestConfig(t, tc.env...)); got != tc.want {
			t.Errorf("env %v: identity %+v, want %+v", tc.env, got, tc.want)
		}
	}
}
