package discover_test

// End-to-end test of the Go library face: a small program that uses only
// pkg/discover's package-level calls (internal/libdemo) runs in a client
// namespace against `bridge respond` servers, configured by the upstream
// DISCOVERY_CLIENT_* variables.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// libServer is a discover.Server as libdemo prints it.
type libServer struct {
	IP            string `json:"ip"`
	Port          int    `json:"port"`
	PayloadIP     string `json:"payload_ip"`
	PortFromReply bool   `json:"port_from_reply"`
	SourceAddress string `json:"source_address"`
	Interface     string `json:"interface"`
	Network       string `json:"network"`
	RawResponse   string `json:"raw_response"`
	AddressFrom   string `json:"address_from"`
	Received      string `json:"received"`
}

type libOutput struct {
	Interfaces []string    `json:"interfaces"`
	Servers    []libServer `json:"servers"`
	Found      *bool       `json:"found"`
	Server     *libServer  `json:"server"`
	ElapsedMS  float64     `json:"elapsed_ms"`
}

// libdemoPkg is the example program, built by import path: the test runs
// in e2e/discover, not at the module root.
const libdemoPkg = "github.com/udp-discovery-bridge/bridge/e2e/internal/libdemo"

// buildLibdemo builds internal/libdemo of this module into a temp dir.
func buildLibdemo(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "libdemo")
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, libdemoPkg)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build %s: %v\n%s", libdemoPkg, err, stderr.String())
	}
	return out
}

// libdemo runs the program on h with the hermetic environment plus env.
func libdemo(t *testing.T, h *netns.Host, bin string, env []string, args ...string) (libOutput, netns.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), harness.CommandTimeout)
	defer cancel()
	r := h.WithEnv(harness.HermeticEnv(env...)).Run(ctx, append([]string{bin}, args...)...)
	var out libOutput
	if r.ExitCode == 0 {
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("libdemo %v: stdout is not its JSON: %v\nstdout: %s\nstderr: %s", args, err, r.Stdout, r.Stderr)
		}
	}
	return out, r
}

// TestLibraryDiscover: two servers on the client's LAN, one of them
// upstream-like (it replies SERVER_IP:127.0.0.1, as the stock server does
// without a default route), and a third on another LAN the whitelist
// leaves out.
func TestLibraryDiscover(t *testing.T) {
	t.Parallel()
	l := harness.NewLAN(t, 2)
	other := l.Lab.Bridge("other")
	otherDev := l.Client.AddLink(other, "10.213.2.10/24")
	far := l.Lab.Host("far", other, "10.213.2.11/24")
	bin := buildLibdemo(t)
	bridgebin.Path(t)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11", "--app-port", "8001")
	harness.Respond(t, l.Servers[1], 1, "--ip", "127.0.0.1")
	harness.Respond(t, far, 1, "--ip", "10.213.2.11")
	dev := l.Client.Dev(l.Br)

	env := []string{
		"DISCOVERY_CLIENT_TIMEOUT=1",
		"DISCOVERY_CLIENT_INTERFACES_WHITELIST=" + dev,
		"DISCOVERY_CLIENT_DEFAULT_PORT=8080",
		"DISCOVERY_CLIENT_RETRIES=1",
	}

	t.Run("Discover finds the whitelisted LAN's servers", func(t *testing.T) {
		out, r := libdemo(t, l.Client, bin, env)
		if r.ExitCode != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		if !slices.Equal(out.Interfaces, []string{dev}) {
			t.Errorf("interfaces %v, want [%s] (whitelist; %s left out)", out.Interfaces, dev, otherDev)
		}
		want := map[string]libServer{
			"10.213.1.11:8001": {IP: "10.213.1.11", Port: 8001, PayloadIP: "10.213.1.11", PortFromReply: true,
				SourceAddress: "10.213.1.11:9999", Interface: dev, Network: "10.213.1.0/24",
				RawResponse: "SERVER_IP:10.213.1.11:8001", AddressFrom: "payload"},
			// The upstream-like reply: 127.0.0.1 is never registered; auto
			// takes the packet's source and says so; no port, so
			// DISCOVERY_CLIENT_DEFAULT_PORT.
			"10.213.1.12:8080": {IP: "10.213.1.12", Port: 8080, PayloadIP: "127.0.0.1",
				SourceAddress: "10.213.1.12:9999", Interface: dev, Network: "10.213.1.0/24",
				RawResponse: "SERVER_IP:127.0.0.1", AddressFrom: "source"},
		}
		if len(out.Servers) != len(want) {
			t.Errorf("Discover returned %d servers, want %d: %+v", len(out.Servers), len(want), out.Servers)
		}
		for _, s := range out.Servers {
			k := harness.Endpoint(s.IP, s.Port)
			w, ok := want[k]
			if !ok {
				t.Errorf("unexpected server %s: %+v", k, s)
				continue
			}
			if s.Received == "" {
				t.Errorf("%s: no received time", k)
			}
			s.Received = ""
			if s != w {
				t.Errorf("server %s:\n got %+v\nwant %+v", k, s, w)
			}
		}
		// Logs reach the program's slog handler, once per server substituted.
		if n := strings.Count(r.Stderr, `"payload_ip":"127.0.0.1"`); n != 1 || !strings.Contains(r.Stderr, `"source_ip":"10.213.1.12"`) {
			t.Errorf("want one slog record of the address substitution, got %d:\n%s", n, r.Stderr)
		}
		if out.ElapsedMS < 900 || out.ElapsedMS > 3000 {
			t.Errorf("Discover took %.0f ms, want about the 1 s timeout", out.ElapsedMS)
		}
	})

	t.Run("DiscoverOne returns at the first reply", func(t *testing.T) {
		out, r := libdemo(t, l.Client, bin, append(slices.Clone(env), "DISCOVERY_CLIENT_TIMEOUT=10"), "one")
		if r.ExitCode != 0 || out.Found == nil || !*out.Found || out.Server == nil {
			t.Fatalf("exit %d, found %v\nstdout: %s\nstderr: %s", r.ExitCode, out.Found, r.Stdout, r.Stderr)
		}
		if k := harness.Endpoint(out.Server.IP, out.Server.Port); k != "10.213.1.11:8001" && k != "10.213.1.12:8080" {
			t.Errorf("DiscoverOne returned %s: %+v", k, out.Server)
		}
		if out.Server.Interface != dev || out.Server.RawResponse == "" || out.Server.SourceAddress == "" {
			t.Errorf("DiscoverOne server lacks its extras: %+v", out.Server)
		}
		t.Logf("DiscoverOne returned %s after %.2f ms", harness.Endpoint(out.Server.IP, out.Server.Port), out.ElapsedMS)
		// Generous bound (busy machines): the reply comes within milliseconds.
		if out.ElapsedMS > 2000 {
			t.Errorf("DiscoverOne with a 10 s timeout took %.0f ms", out.ElapsedMS)
		}
	})

	t.Run("the other LAN alone, by the blacklist", func(t *testing.T) {
		out, r := libdemo(t, l.Client, bin, []string{"DISCOVERY_CLIENT_TIMEOUT=1", "DISCOVERY_CLIENT_INTERFACES_BLACKLIST=" + dev})
		if r.ExitCode != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		if len(out.Servers) != 1 || harness.Endpoint(out.Servers[0].IP, out.Servers[0].Port) != "10.213.2.11:8000" || out.Servers[0].Interface != otherDev {
			t.Errorf("servers %+v, want only 10.213.2.11:8000 on %s", out.Servers, otherDev)
		}
	})

	t.Run("a bad variable is named with its value", func(t *testing.T) {
		_, r := libdemo(t, l.Client, bin, append(slices.Clone(env), "DISCOVERY_CLIENT_DEFAULT_PORT=http", "DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN=maybe"))
		for _, want := range []string{
			`default_port (env DISCOVERY_CLIENT_DEFAULT_PORT): bad value "http": want a port number 1..65535`,
			`enable_subnet_scan (env DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN): bad value "maybe"`,
		} {
			if r.ExitCode != 2 || !strings.Contains(r.Stderr, want) {
				t.Errorf("exit %d, want 2 and %q\nstderr: %s", r.ExitCode, want, r.Stderr)
			}
		}
	})
}
