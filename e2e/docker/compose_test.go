package docker_test

// End-to-end test of the docker-compose demo (docker-compose.yml at the
// repository root), run unchanged from a temporary copy: Consul (the image
// scripts/consul-image.sh builds when it cannot be pulled), three demo
// servers on the demo network (Linux bridge udb-demo0, 172.31.213.0/24) and
// the bridge on the host network whitelisted to udb-demo0. The host ports
// are free ones chosen here (UDB_DEMO_*_PORT) and the bridge image is the
// one built for this test binary (UDB_DEMO_IMAGE).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/freeport"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

const (
	// composeProjectPrefix starts the project name of every run, so a
	// crashed run's leftovers are recognisable.
	composeProjectPrefix = "udbe2e"
	// composeBridgeDev is the demo network's fixed bridge name.
	composeBridgeDev = "udb-demo0"
	// composeInterval is the bridge's --interval in docker-compose.yml.
	composeInterval = 5 * time.Second
)

// TestComposeDemo: `docker-compose up -d` gets the three demo servers into
// Consul (HTTP and DNS through the published ports) within two intervals, the
// bridge turns healthy, and `docker-compose down -v` leaves nothing of the
// project behind.
func TestComposeDemo(t *testing.T) {
	compose := dockerimg.RequireCompose(t)
	img := dockerimg.Build(t)
	root, err := bridgebin.Root()
	if err != nil {
		t.Fatal(err)
	}

	// The demo's bridge name and subnet are fixed: one run at a time on this
	// machine, and whatever a crashed run left goes first.
	unlock := composeLock(t)
	defer unlock()
	composeRemoveLeftovers(t)
	if err := exec.Command("ip", "link", "show", composeBridgeDev).Run(); err == nil {
		t.Fatalf("%s exists and is not a leftover of this test (a demo running? docker-compose down it first)", composeBridgeDev)
	}

	consulbin.Path(t) // build (or wait for) the cached binary under its lock
	if out, err := exec.Command(filepath.Join(root, "scripts", "consul-image.sh")).CombinedOutput(); err != nil {
		t.Fatalf("scripts/consul-image.sh: %v\n%s", err, out)
	}

	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	project := dockerimg.RandomName(composeProjectPrefix)
	free, err := freeport.Take(3) // distinct, unlike three separate picks
	if err != nil {
		t.Fatal(err)
	}
	consulPort, dnsPort, metricsPort := free[0], free[1], free[2]
	env := append(os.Environ(),
		"UDB_DEMO_IMAGE="+img.Tag,
		"UDB_DEMO_CONSUL_PORT="+strconv.Itoa(consulPort),
		"UDB_DEMO_DNS_PORT="+strconv.Itoa(dnsPort),
		"UDB_DEMO_METRICS_PORT="+strconv.Itoa(metricsPort),
	)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, compose, append([]string{"-p", project, "-f", file}, args...)...)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	downed := false
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run("logs", "--no-color", "--tail", "60")
			t.Logf("docker-compose logs:\n%s", out)
		}
		if !downed {
			if out, err := run("down", "-v", "--timeout", "20"); err != nil {
				t.Errorf("docker-compose down -v: %v\n%s", err, out)
			}
		}
	})

	start := time.Now()
	if out, err := run("up", "-d"); err != nil {
		t.Fatalf("docker-compose up -d: %v\n%s", err, out)
	}
	upTook := time.Since(start)

	consul, err := api.NewClient(&api.Config{Address: "127.0.0.1:" + strconv.Itoa(consulPort)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"django-172.31.213.11-8000", "django-172.31.213.12-8000", "django-172.31.213.13-8001"}
	harness.WaitCatalog(t, consul, "django", 2*composeInterval, want...)
	t.Logf("docker-compose up -d took %s; the three servers were in Consul %s after it started",
		upTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	harness.WantPassing(t, consul, "django", 2*composeInterval, want...)

	// DNS through the published UDP port.
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", "127.0.0.1:"+strconv.Itoa(dnsPort))
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	_, srvs, err := res.LookupSRV(ctx, "", "", "django.service.consul")
	cancel()
	var got []string
	for _, s := range srvs {
		got = append(got, fmt.Sprintf("%s:%d", strings.TrimSuffix(s.Target, "."), s.Port))
	}
	slices.Sort(got)
	if err != nil || len(got) != 3 || !slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, ":8001") }) {
		t.Errorf("SRV django.service.consul = %v, %v; want three targets, one on port 8001", got, err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	addrs, err := res.LookupHost(ctx, "django.service.consul")
	cancel()
	slices.Sort(addrs)
	if err != nil || !slices.Equal(addrs, []string{"172.31.213.11", "172.31.213.12", "172.31.213.13"}) {
		t.Errorf("A django.service.consul = %v, %v; want the three demo servers", addrs, err)
	}

	// The bridge's metrics on the host's loopback, and its HEALTHCHECK.
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n, ok, err := harness.MetricIn(string(body), "udp_discovery_bridge_endpoints"); err != nil || !ok || n != 3 {
		t.Errorf("udp_discovery_bridge_endpoints = %v (found %v, %v), want 3", n, ok, err)
	}
	bridgeID, err := run("ps", "-q", "bridge")
	if err != nil {
		t.Fatalf("docker-compose ps: %v\n%s", err, bridgeID)
	}
	bridgeID = strings.TrimSpace(bridgeID)
	harness.Wait(t, 40*time.Second, "bridge container healthy", func() (bool, string) {
		st := dockerimg.Docker(t, "inspect", "-f", "{{.State.Health.Status}}", bridgeID)
		return st == "healthy", st
	})

	if out, err := run("down", "-v", "--timeout", "20"); err != nil {
		t.Fatalf("docker-compose down -v: %v\n%s", err, out)
	}
	downed = true
	label := "label=com.docker.compose.project=" + project
	for _, kind := range [][]string{{"ps", "-a", "-q"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		if left := dockerimg.Docker(t, append(kind, "--filter", label)...); left != "" {
			t.Errorf("after down -v, docker %s --filter %s: %s", strings.Join(kind, " "), label, left)
		}
	}
	if err := exec.Command("ip", "link", "show", composeBridgeDev).Run(); err == nil {
		t.Errorf("%s still exists after down -v", composeBridgeDev)
	}
}

// composeLock takes an exclusive lock shared by every test binary on this
// machine (the demo's bridge name and subnet are fixed) and returns its
// release.
func composeLock(t *testing.T) func() {
	t.Helper()
	unlock, err := toolbuild.LockFile(filepath.Join(os.TempDir(), "udp-discovery-bridge-compose-demo.lock"))
	if err != nil {
		t.Fatal(err)
	}
	return unlock
}

// composeRemoveLeftovers removes the containers, networks and volumes of
// compose projects named composeProjectPrefix... (crashed runs; live runs
// hold the lock).
func composeRemoveLeftovers(t *testing.T) {
	t.Helper()
	for _, kind := range []struct {
		what     string
		list, rm []string
	}{
		{"container", []string{"ps", "-a"}, []string{"rm", "-f", "-v"}},
		{"network", []string{"network", "ls"}, []string{"network", "rm"}},
		{"volume", []string{"volume", "ls"}, []string{"volume", "rm", "-f"}},
	} {
		idField := "{{.ID}}"
		if kind.what == "volume" {
			idField = "{{.Name}}"
		}
		out := dockerimg.Docker(t, append(kind.list, "--filter", "label=com.docker.compose.project",
			"--format", idField+` {{.Label "com.docker.compose.project"}}`)...)
		for line := range strings.Lines(out) {
			id, proj, _ := strings.Cut(strings.TrimSpace(line), " ")
			if id == "" || !strings.HasPrefix(proj, composeProjectPrefix) {
				continue
			}
			t.Logf("removing %s %s of crashed compose project %s", kind.what, id, proj)
			dockerimg.Docker(t, append(kind.rm, id)...)
		}
	}
}
