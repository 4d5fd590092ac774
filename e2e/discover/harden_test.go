package discover_test

// End-to-end tests of the bridge under hostile input, odd files and signals
// (issue 13): the real binary inside namespace hosts on 10.213.1.0/24,
// `bridge respond` servers, nothing in the root namespace.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// startBridge starts `bridge args...` on h with the hermetic environment;
// its output is logged when the test fails.
func startBridge(t *testing.T, h *netns.Host, args ...string) *netns.Proc {
	t.Helper()
	p, err := h.WithEnv(harness.HermeticEnv()).Start(t.Context(), append([]string{bridgebin.Path(t)}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			stdout, stderr := p.Output()
			t.Logf("bridge %s, exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.ExitCode(), harness.Tail(stdout, 40), harness.Tail(stderr, 80))
		}
	})
	return p
}

// signalAndWait sends sig to p and waits up to grace for it to exit; it
// returns the exit status and how long the exit took.
func signalAndWait(t *testing.T, p *netns.Proc, sig syscall.Signal, grace time.Duration) (int, time.Duration) {
	t.Helper()
	if p.Exited() {
		stdout, stderr := p.Output()
		t.Fatalf("process %d exited (%d) before %s\nstdout: %s\nstderr: %s", p.PID, p.ExitCode(), sig, stdout, stderr)
	}
	start := time.Now()
	if err := p.Signal(sig); err != nil {
		t.Fatalf("%s to %d: %v", sig, p.PID, err)
	}
	select {
	case <-p.Done():
	case <-time.After(grace):
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
		_ = p.Wait()
		t.Fatalf("process %d still running %s after %s", p.PID, grace, sig)
	}
	return p.ExitCode(), time.Since(start)
}

// readFileDoc reads the file sink's document ("" servers when absent).
func readFileDoc(path string) (harness.FileDoc, error) {
	var doc harness.FileDoc
	b, err := os.ReadFile(path)
	if err != nil {
		return doc, err
	}
	return doc, json.Unmarshal(b, &doc)
}

// TestHardenSighupAndConfigAfterSubcommand: `bridge run --config f.yaml`
// (the flag after the subcommand name) runs the file sink the file
// configures; SIGHUP stops it like SIGTERM: the sinks are flushed and
// closed, the exit status is 0.
func TestHardenSighupAndConfigAfterSubcommand(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	dir := t.TempDir()
	path := filepath.Join(dir, "servers.json")
	cfg := filepath.Join(dir, "bridge.yaml")
	yaml := "sinks: [file]\nfile_path: " + path + "\ninterval: 1s\ntimeout: 0.5\nmetrics_addr: \"\"\nlog_level: debug\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBridge(t, l.Client, "run", "--config", cfg)
	harness.Wait(t, 10*time.Second, "the server in the file", func() (bool, string) {
		doc, err := readFileDoc(path)
		if err != nil {
			return false, err.Error()
		}
		return len(doc.Servers) == 1 && doc.Servers[0].IP == "10.213.1.11", ""
	})
	code, took := signalAndWait(t, p, syscall.SIGHUP, 15*time.Second)
	_, stderr := p.Output()
	t.Logf("SIGHUP to exit %d took %s", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("exit %d after SIGHUP, want 0\nstderr: %s", code, stderr)
	}
	for _, want := range []string{"shutting down", "sink closed", "stopped"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q after SIGHUP (graceful stop):\n%s", want, harness.Tail(stderr, 20))
		}
	}
	if doc, err := readFileDoc(path); err != nil || len(doc.Servers) != 1 {
		t.Errorf("file after SIGHUP: %+v, %v; want the server kept", doc, err)
	}
}

// TestHardenInterruptedOneShot: SIGINT during `discover` with a long
// timeout, and SIGTERM while `run` loads a config file that never finishes
// (a FIFO nobody writes), end the command at once with exit 130 and a
// message saying it was interrupted.
func TestHardenInterruptedOneShot(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	dev := l.Client.Dev(l.Br)

	t.Run("SIGINT during discover", func(t *testing.T) {
		p := startBridge(t, l.Client, "discover", "--whitelist", dev, "--timeout", "60")
		time.Sleep(time.Second) // the round is under way
		code, took := signalAndWait(t, p, syscall.SIGINT, 5*time.Second)
		_, stderr := p.Output()
		t.Logf("SIGINT to exit %d took %s: %s", code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
		if code != 130 || !strings.Contains(stderr, "interrupted") {
			t.Errorf("exit %d, stderr %q; want 130 and \"interrupted\"", code, stderr)
		}
		if took > 2*time.Second {
			t.Errorf("discover took %s to exit after SIGINT", took)
		}
	})

	t.Run("100,000 unknown keys", func(t *testing.T) {
		var b strings.Builder
		for i := range 100_000 {
			fmt.Fprintf(&b, "u%d: 1\n", i)
		}
		cfg := filepath.Join(t.TempDir(), "many.yaml")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		r := harness.RunCmd(t, l.Client, "run", "--config", cfg, "--whitelist", dev, "--metrics-addr", "")
		t.Logf("100,000 unknown keys (%d bytes): exit %d in %s, stderr %d bytes: %s", b.Len(), r.ExitCode, r.Elapsed.Round(time.Millisecond), len(r.Stderr), strings.TrimSpace(r.Stderr))
		if r.ExitCode != 2 || !strings.Contains(r.Stderr, "100000 unknown keys") || len(r.Stderr) > 400 {
			t.Errorf("exit %d, stderr %.500q; want exit 2 and one short line counting the keys", r.ExitCode, r.Stderr)
		}
		if r.Elapsed > 10*time.Second { // generous for a busy machine
			t.Errorf("took %s", r.Elapsed)
		}
	})

	t.Run("SIGTERM during a config load", func(t *testing.T) {
		fifo := filepath.Join(t.TempDir(), "bridge.yaml")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		p := startBridge(t, l.Client, "run", "--config", fifo, "--whitelist", dev)
		time.Sleep(time.Second) // blocked opening the FIFO
		code, took := signalAndWait(t, p, syscall.SIGTERM, 5*time.Second)
		_, stderr := p.Output()
		t.Logf("SIGTERM during the load to exit %d took %s: %s", code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
		if code != 130 || !strings.Contains(stderr, "interrupted") {
			t.Errorf("exit %d, stderr %q; want 130 and \"interrupted\"", code, stderr)
		}
		if took > 2*time.Second {
			t.Errorf("run took %s to exit after SIGTERM during its config load", took)
		}
	})
}

// fdCount is the number of open descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("descriptors of %d: %v", pid, err)
	}
	return len(ents)
}

// TestHardenMetricsSlowClients: 100 clients each send 100 pipelined
// /metrics requests and never read. They dial the bridge's own address
// from its namespace, so they are the host's connections (remote ==
// local): the bridge holds at most the host's 16 at once and closes the
// rest as they arrive (descriptors bounded), closes each it holds within
// the write timeout (10 s, when the responses fill the socket buffers) or
// the idle timeout (15 s, when they fit), and its descriptors return to
// their baseline; /healthz answers afterwards. LAN clients' caps:
// TestHardenLivenessUnderLANFlood.
func TestHardenMetricsSlowClients(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 0, false)
	ns := l.Client.NS
	addr := harness.ClientIP + ":9108"
	p := startBridge(t, l.Client, "run", "--sink", "stdout", "--metrics-addr", addr, "--whitelist", l.Client.Dev(l.Br), "--interval", "1s", "--timeout", "0.5")
	harness.Wait(t, 10*time.Second, "/healthz", func() (bool, string) {
		code, body, err := harness.NSGet(ns, "http://"+addr+"/healthz")
		return err == nil && code == 200, body
	})
	time.Sleep(500 * time.Millisecond)
	base := fdCount(t, p.PID)

	const clients, pipelined = 100, 100
	req := strings.Repeat("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", pipelined)
	var conns []interface{ Close() error }
	for i := range clients {
		c, err := netns.Dial(t.Context(), ns, "tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns = append(conns, c)
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write([]byte(req)) // may block once the server stops reading: fine
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	start := time.Now()
	peak := 0
	var back time.Duration
	for time.Since(start) < 90*time.Second {
		n := fdCount(t, p.PID)
		peak = max(peak, n)
		if n <= base && time.Since(start) > time.Second {
			back = time.Since(start)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d clients x %d pipelined /metrics, never reading: descriptors %d at baseline, peak %d, back to baseline after %s",
		clients, pipelined, base, peak, back.Round(100*time.Millisecond))
	// Above the 16 connections: a round's sockets, and connections the
	// server has closed whose descriptor the Go runtime releases only when
	// the write blocked on it wakes (the cap's slot is free before that).
	// Measured: peak base+18 on an idle machine (with the former shared
	// cap of 64: base+67..68 idle, base+84 under the whole suite's load).
	// Without a cap all 100 would be held (base+100 and more).
	if peak > base+16+28 {
		t.Errorf("peak %d descriptors, baseline %d: more than the host's 16-connection cap", peak, base)
	}
	if back == 0 {
		t.Fatalf("descriptors %d, not back to baseline %d 90 s after the slow clients connected", fdCount(t, p.PID), base)
	}
	// The 16 held connections, each closed within the 15 s idle timeout
	// plus the 10 s write timeout (measured: 16 s; with the former
	// blocking cap of 64, two turns: 39 s).
	if back > 2*(15+10)*time.Second+10*time.Second {
		t.Errorf("descriptors back to baseline only after %s", back)
	}
	code, body, err := harness.NSGet(ns, "http://"+addr+"/healthz")
	if err != nil || code != 200 {
		t.Errorf("/healthz after the slow clients: %d %q %v", code, body, err)
	}
}

// TestHardenResponderRateLimit: a unicast flood of 15,000 probes over 3 s
// from one source against `bridge respond` (defaults: --rate-limit 5
// --burst 20) is answered at the configured rate; the responder counts and
// logs what it dropped.
func TestHardenResponderRateLimit(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	resp := harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	c, err := netns.Dial(t.Context(), l.Client.NS, "udp4", "10.213.1.11:9999")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	replies := make(chan int, 1)
	go func() {
		n, buf := 0, make([]byte, 2048)
		for {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			m, err := c.Read(buf)
			if err != nil {
				replies <- n
				return
			}
			if strings.HasPrefix(string(buf[:m]), "SERVER_IP:10.213.1.11") {
				n++
			}
		}
	}()
	const batches, perBatch = 30, 500
	probe := []byte("DISCOVER_SERVER")
	start := time.Now()
	sent := 0
	for range batches {
		for range perBatch {
			if _, err := c.Write(probe); err == nil {
				sent++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	got := <-replies // the reader stops 1 s after the last reply
	harness.StopResponder(t, resp)
	_, stderr := resp.Output()
	want := 20 + 5*elapsed.Seconds()
	t.Logf("%d probes in %s from one source: %d replies (limit: burst 20 + 5/s = %.0f); responder: %s",
		sent, elapsed.Round(time.Millisecond), got, want, harness.Tail(strings.TrimSpace(stderr), 1))
	if float64(got) > want+5 || float64(got) < want/2 {
		t.Errorf("%d replies to %d probes in %s; want about %.0f (burst 20 + 5/s)", got, sent, elapsed, want)
	}
	if !strings.Contains(stderr, "dropped=") {
		t.Errorf("responder's exit log does not count dropped probes:\n%s", stderr)
	}
}

// TestHardenFileSinkSymlink: --file-path link.json -> real/target.json: the
// bridge updates target.json and leaves the link a link. A --file-path that
// is a directory is a start-up error (exit 2) naming it.
func TestHardenFileSinkSymlink(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(real, "target.json")
	if err := os.WriteFile(target, []byte(`{"servers":[]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink("real/target.json", link); err != nil {
		t.Fatal(err)
	}
	p := startBridge(t, l.Client, "run", "--sink", "file", "--file-path", link, "--metrics-addr", "", "--interval", "1s", "--timeout", "0.5")
	harness.Wait(t, 10*time.Second, "the server in target.json", func() (bool, string) {
		doc, err := readFileDoc(target)
		if err != nil {
			return false, err.Error()
		}
		return len(doc.Servers) == 1, ""
	})
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a symbolic link: %v %v", link, st.Mode(), err)
	}
	if dest, _ := os.Readlink(link); dest != "real/target.json" {
		t.Errorf("link points at %q", dest)
	}
	if code, _ := signalAndWait(t, p, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}

	r := harness.RunCmd(t, l.Client, "run", "--once", "--sink", "file", "--file-path", real, "--metrics-addr", "", "--whitelist", l.Client.Dev(l.Br), "--timeout", "0.5")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, real) || !strings.Contains(r.Stderr, "is a directory") {
		t.Errorf("--file-path a directory: exit %d, stderr %q; want exit 2 naming it", r.ExitCode, r.Stderr)
	}
}
