package perf_test

// The receive buffer of the locked-down container, with and without
// NET_ADMIN (which lets the bridge force its 8 MiB buffer past
// net.core.rmem_max with SO_RCVBUFFORCE), against a 50,000-reply burst.
// scripts/bench.sh runs it at this machine's rmem_max and again at the
// kernel default 208 KiB (it changes that global sysctl for the scenario's
// duration and restores it; the test suite never changes it).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

func TestPerfImageReceiveBuffer(t *testing.T) {
	perfRequire(t)
	dockerimg.Require(t)
	img := dockerimg.Build(t)
	const burst = 50_000
	rmem, _ := os.ReadFile("/proc/sys/net/core/rmem_max")

	lab := netns.New(t)
	base := lab.HostSubnet().Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], last}).String() }
	br := lab.HostBridge("host", ip(1)+"/24")
	h := lab.Host("s1", br, ip(11)+"/24")
	// Payload addresses far from the bridge's network (none is its
	// broadcast address, which the address policy would replace).
	if _, err := h.WithEnv(harness.HermeticEnv()).Start(t.Context(), bridgebin.Path(t), "respond", "--ip", "10.213.100.1", "--replies", strconv.Itoa(burst), "--global-rate-limit", "0"); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitUDPListeners(t.Context(), 9999, 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		caps []string
	}{
		{"cap-drop ALL", nil},
		{"cap-drop ALL, cap-add NET_ADMIN", []string{"--cap-add", "NET_ADMIN"}},
		{"cap-drop ALL, cap-add NET_ADMIN, user 0", []string{"--cap-add", "NET_ADMIN", "--user", "0:0"}},
	} {
		args := append([]string{"run", "--rm", "--network", "host", "--read-only", "--cap-drop", "ALL"}, tc.caps...)
		// One source answering as burst servers off its network: a load
		// test's responder (harness.LoadTestDiscoverFlags).
		args = append(args, img.Tag, "discover", "--json", "--whitelist", br.Dev, "--timeout", "2", "--retries", "0",
			"--log-level", "debug", "--log-format", "json")
		args = append(args, harness.LoadTestDiscoverFlags...)
		stdout, stderr, err := dockerimg.Run(t.Context(), "docker", args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, stderr)
		}
		var servers []json.RawMessage
		if err := json.Unmarshal([]byte(stdout), &servers); err != nil {
			t.Fatalf("%s: discover --json: %v: %.300s", tc.name, err, stdout)
		}
		granted := -1
		sc := bufio.NewScanner(strings.NewReader(stderr))
		for sc.Scan() {
			var line struct {
				Msg     string `json:"message"`
				Granted int    `json:"granted"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "receive buffer" {
				granted = line.Granted
			}
		}
		perfResult(t, "rmem_max %s, %s: receive buffer granted %s, replies kept %d of %d (%.1f%%)",
			strings.TrimSpace(string(rmem)), tc.name, fmtBytes(granted), len(servers), burst, 100*float64(len(servers))/burst)
	}
}

func fmtBytes(n int) string {
	if n < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d KiB", n/1024)
}
