package docker_test

// End-to-end tests of the container image (Dockerfile): what it holds, and
// `docker run --network host` registering servers in Consul. The container's
// discovery is pinned (--whitelist) to a Linux bridge the test creates in the
// root namespace, on a 10.213.x.0/24 of its own, with `bridge respond`
// servers in namespaces behind it; its Consul is a dev agent on loopback.
// Nothing probes the machine's real networks.

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// maxImageBytes bounds the image: one static binary and nothing else.
const maxImageBytes = 16 << 20

// TestImageContents: the image is the static binary alone, runs as 65532
// with no shell, stays under 16 MiB, carries the OCI labels, and its
// HEALTHCHECK command runs.
func TestImageContents(t *testing.T) {
	dockerimg.Require(t)
	img := dockerimg.Build(t)

	inspect := func(format string) string { return dockerimg.Docker(t, "image", "inspect", "-f", format, img.Tag) }
	size, _ := strconv.ParseInt(inspect("{{.Size}}"), 10, 64)
	t.Logf("image %s: %d bytes (%.1f MiB); static binary %d bytes", img.Tag, size, float64(size)/(1<<20), img.BinaryBytes)
	if size <= 0 || size > maxImageBytes {
		t.Errorf("image size %d, want 1..%d (16 MiB)", size, maxImageBytes)
	}
	for format, want := range map[string]string{
		"{{.Config.User}}":                                             "65532:65532",
		"{{json .Config.Entrypoint}}":                                  `["/bridge"]`,
		"{{json .Config.Cmd}}":                                         `["run"]`,
		"{{json .Config.Healthcheck.Test}}":                            `["CMD","/bridge","healthcheck"]`,
		"{{json .Config.ExposedPorts}}":                                `{"9108/tcp":{}}`,
		`{{index .Config.Labels "org.opencontainers.image.version"}}`:  "e2e",
		`{{index .Config.Labels "org.opencontainers.image.revision"}}`: "e2e",
		`{{index .Config.Labels "org.opencontainers.image.source"}}`:   "https://github.com/udp-discovery-bridge/bridge",
	} {
		if got := inspect(format); got != want {
			t.Errorf("%s = %s, want %s", format, got, want)
		}
	}
	if inspect(`{{index .Config.Labels "org.opencontainers.image.licenses"}}`) == "" {
		t.Errorf("no org.opencontainers.image.licenses label")
	}
	// .dockerignore: the context is bin/bridge, not the 8 MiB beside it.
	if img.ContextBytes >= 0 && img.ContextBytes > img.BinaryBytes+1<<20 {
		t.Errorf("build context %d bytes for a %d-byte binary: .dockerignore let more in", img.ContextBytes, img.BinaryBytes)
	}

	// The filesystem: /bridge, plus the empty mount points Docker adds.
	name := dockerimg.RandomName("udb-e2e-img-")
	dockerimg.Docker(t, "create", "--name", name, img.Tag)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	export, err := exec.CommandContext(t.Context(), "docker", "export", name).Output()
	if err != nil {
		t.Fatalf("docker export: %v", err)
	}
	var files []string
	tr := tar.NewReader(bytes.NewReader(export))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the export: %v", err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			files = append(files, fmt.Sprintf("%s (%d bytes, mode %o)", h.Name, h.Size, h.FileInfo().Mode().Perm()))
		}
	}
	t.Logf("non-empty files in the image: %v", files)
	if len(files) != 1 || !strings.HasPrefix(files[0], "bridge (") || !strings.HasSuffix(files[0], "mode 755)") {
		t.Errorf("non-empty files = %v, want only bridge, mode 755", files)
	}

	// No shell.
	_, stderr, err := dockerimg.Run(t.Context(), "docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", img.Tag, "-c", "true")
	if err == nil || !strings.Contains(stderr, "no such file") {
		t.Errorf("docker run --entrypoint /bin/sh: err %v, stderr %q; want it to fail for want of /bin/sh", err, stderr)
	}
	// The binary runs, as 65532, read-only, with no capabilities.
	out, stderr, err := dockerimg.Run(t.Context(), "docker", "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL", img.Tag, "version")
	if err != nil || out != "bridge e2e" {
		t.Errorf("docker run ... version: %q, %v, %s; want \"bridge e2e\"", out, err, stderr)
	}
	// The HEALTHCHECK command, with no bridge running: exit 1, one line why.
	cmd := exec.CommandContext(t.Context(), "docker", "run", "--rm", "--network", "none", img.Tag, "healthcheck")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(errb.String(), "127.0.0.1:9108") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("healthcheck with nothing listening: exit %d (%v), stderr %q; want 1 and one line naming 127.0.0.1:9108", code, err, errb.String())
	}
}

// TestDockerRunHostNetwork: `docker run --network host --read-only --cap-drop
// ALL` registers the servers behind the whitelisted bridge in Consul, turns
// healthy through the image's HEALTHCHECK, and on `docker stop` (SIGTERM to
// PID 1) deregisters them and exits 0.
func TestDockerRunHostNetwork(t *testing.T) {
	dockerimg.Require(t)
	img := dockerimg.Build(t)

	lab := netns.New(t)
	base := lab.HostSubnet().Addr().As4()
	ip := func(last byte) string { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], last}).String() }
	br := lab.HostBridge("host", ip(1)+"/24")
	servers := []struct {
		ip      string
		appPort int
	}{{ip(11), 0}, {ip(12), 8001}}
	var want []string
	for i, s := range servers {
		h := lab.Host(fmt.Sprintf("s%d", i+1), br, s.ip+"/24")
		args := []string{bridgebin.Path(t), "respond", "--ip", s.ip}
		port := 8000
		if s.appPort != 0 {
			args, port = append(args, "--app-port", strconv.Itoa(s.appPort)), s.appPort
		}
		if _, err := h.WithEnv(harness.HermeticEnv()).Start(t.Context(), args...); err != nil {
			t.Fatal(err)
		}
		if err := h.WaitUDPListeners(t.Context(), 9999, 1); err != nil {
			t.Fatal(err)
		}
		want = append(want, harness.ServerID("django", s.ip, port))
	}

	agent := consulagent.Start(t, consulagent.Options{}) // on loopback: reachable from the host network
	consul := agent.Client()
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(harness.FreePort(t)))

	name := dockerimg.RandomName("udb-e2e-run-")
	start := time.Now()
	dockerimg.Docker(t, "run", "-d", "--name", name,
		"--network", "host", "--read-only", "--cap-drop", "ALL",
		"--health-interval", "1s", "--health-start-period", "1s",
		"-e", "DISCOVERY_CLIENT_METRICS_ADDR="+metricsAddr,
		img.Tag, "run",
		"--whitelist", br.Dev,
		"--sink", "consul", "--consul-addr", agent.Addr, "--bridge-id", "e2e-docker",
		"--interval", "1s", "--timeout", "0.5")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", "--tail", "100", name).CombinedOutput()
			t.Logf("container %s logs:\n%s", name, out)
		}
		_ = exec.Command("docker", "rm", "-f", name).Run()
	})

	got := harness.WaitCatalog(t, consul, "django", 20*time.Second, want...)
	t.Logf("servers registered %s after docker run", time.Since(start).Round(time.Millisecond))
	for _, s := range got {
		if s.ServiceMeta["interface"] != br.Dev {
			t.Errorf("%s: interface meta %q, want %s", s.ServiceID, s.ServiceMeta["interface"], br.Dev)
		}
	}
	harness.WantPassing(t, consul, "django", 20*time.Second, want...)

	harness.Wait(t, 20*time.Second, "container healthy", func() (bool, string) {
		st := dockerimg.Docker(t, "inspect", "-f", "{{.State.Health.Status}}", name)
		return st == "healthy", st
	})
	// The metrics endpoint, from the host (the container shares its network).
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n, ok, err := harness.MetricIn(string(body), "udp_discovery_bridge_endpoints"); err != nil || !ok || n != float64(len(want)) {
		t.Errorf("udp_discovery_bridge_endpoints = %v (found %v, %v), want %d", n, ok, err, len(want))
	}

	// docker stop: SIGTERM to the bridge (PID 1), which deregisters and exits 0.
	dockerimg.Docker(t, "stop", "-t", "20", name)
	if code := dockerimg.Docker(t, "inspect", "-f", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("exit code after docker stop = %s, want 0", code)
	}
	harness.WaitCatalog(t, consul, "django", 5*time.Second)
}
