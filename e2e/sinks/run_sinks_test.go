package sinks_test

// End-to-end tests of `bridge run` with the stdout and file sinks and of its
// configuration errors: the real binary inside namespace hosts on
// 10.213.1.0/24, `bridge respond` servers, nothing in the root namespace.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// TestRunStdoutSink: one JSON line per change (added, then removed after
// --missed-rounds), nothing on quiet rounds, exit 0 on SIGTERM.
func TestRunStdoutSink(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 2, false)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11", "--app-port", "8001")
	s2 := harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12")
	start := time.Now()
	args := append([]string{"--sink", "stdout", "--missed-rounds", "2", "--metrics-addr", ""}, harness.Fast...)
	b := harness.StartRun(t, l.Client, "stdout", args...)
	stdout := func() string { s, _ := b.Output(); return s }

	harness.Wait(t, 10*time.Second, "two added lines", func() (bool, string) {
		return strings.Count(stdout(), "\n") >= 2, stdout()
	})
	time.Sleep(2 * time.Second) // two quiet rounds: no output
	evs := harness.StdoutEvents(t, stdout())
	if len(evs) != 2 {
		t.Fatalf("%d lines after the first rounds, want 2 added:\n%s", len(evs), stdout())
	}
	dev := l.Client.Dev(l.Br)
	want := map[string]string{"10.213.1.11:8001": "10.213.1.11:9999", "10.213.1.12:8000": "10.213.1.12:9999"}
	for _, e := range evs {
		key := netip.AddrPortFrom(netip.MustParseAddr(e.IP), uint16(e.Port)).String()
		if e.Event != "added" || want[key] != e.SourceAddress || e.Interface != dev {
			t.Errorf("event %+v, want added %s from %s on %s", e, key, want[key], dev)
		}
		if e.FirstSeen.Before(start.Add(-time.Second)) || e.LastSeen.Before(e.FirstSeen) || time.Since(e.LastSeen) > time.Minute {
			t.Errorf("event %+v: first_seen/last_seen not around %s", e, start)
		}
	}

	harness.StopResponder(t, s2)
	harness.Wait(t, 10*time.Second, "a removed line", func() (bool, string) {
		return strings.Count(stdout(), "\n") >= 3, stdout()
	})
	time.Sleep(2 * time.Second)
	evs = harness.StdoutEvents(t, stdout())
	if len(evs) != 3 {
		t.Fatalf("%d lines, want 2 added and 1 removed:\n%s", len(evs), stdout())
	}
	if r := evs[2]; r.Event != "removed" || r.IP != "10.213.1.12" || r.Port != 8000 || r.SourceAddress != "10.213.1.12:9999" || r.Interface != dev {
		t.Errorf("third line %+v, want removed 10.213.1.12:8000", r)
	}
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	if n := len(harness.StdoutEvents(t, stdout())); n != 3 {
		t.Errorf("%d lines after SIGTERM, want still 3", n)
	}
}

// TestRunFileSinkChurn: with --interval 100ms and servers whose links go up
// and down all the time, a reader polling the --file-path file during at
// least 100 rounds never sees invalid JSON nor a missing file, and the
// file's existing mode is kept.
func TestRunFileSinkChurn(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 4, false)
	for _, h := range l.Servers {
		// 4 probes a round, 10 rounds a second: above respond's default
		// per-source limit.
		harness.Respond(t, h, 1, "--ip", h.IP().String(), "--rate-limit", "0")
	}
	path := filepath.Join(t.TempDir(), "servers.json")
	if err := os.WriteFile(path, []byte(`{"servers":[]}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	var (
		mu       sync.Mutex
		readErrs []string
		reads    int
		versions = map[string]bool{}
		maxSeen  int
	)
	wg.Go(func() { // the reader
		for ctx.Err() == nil {
			b, err := os.ReadFile(path)
			mu.Lock()
			reads++
			switch {
			case errors.Is(err, fs.ErrNotExist):
				readErrs = append(readErrs, "file missing")
			case err != nil:
				readErrs = append(readErrs, err.Error())
			default:
				var doc harness.FileDoc
				if err := json.Unmarshal(b, &doc); err != nil {
					readErrs = append(readErrs, "invalid JSON: "+err.Error()+": "+string(b))
				} else if doc.Servers == nil {
					readErrs = append(readErrs, "no servers array: "+string(b))
				} else {
					versions[string(bytes.TrimSpace(b))] = true
					maxSeen = max(maxSeen, len(doc.Servers))
				}
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})

	args := []string{"--sink", "file", "--file-path", path, "--interval", "100ms", "--timeout", "0.05",
		"--missed-rounds", "1", "--metrics-addr", harness.MetricsAddr}
	b := harness.StartRun(t, l.Client, "file", args...)
	rounds := func() float64 {
		v, _, err := harness.Metric(l.Client.NS, "udp_discovery_bridge_rounds_total")
		if err != nil {
			return -1
		}
		return v
	}
	harness.Wait(t, 10*time.Second, "the metrics endpoint", func() (bool, string) { return rounds() >= 0, "" })

	wg.Go(func() { // the churn: one server's link flips every 70-200ms
		down := make([]bool, len(l.Servers))
		for ctx.Err() == nil {
			i := rand.IntN(len(l.Servers))
			var err error
			if down[i] {
				err = l.Servers[i].SetLinkUp()
			} else {
				err = l.Servers[i].SetLinkDown()
			}
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				readErrs = append(readErrs, "toggle: "+err.Error())
				mu.Unlock()
			}
			down[i] = !down[i]
			time.Sleep(time.Duration(70+rand.IntN(130)) * time.Millisecond)
		}
		for i, d := range down {
			if d {
				_ = l.Servers[i].SetLinkUp()
			}
		}
	})
	r0 := rounds()
	churnStart := time.Now()
	harness.Wait(t, 60*time.Second, "100 rounds of churn", func() (bool, string) {
		r := rounds()
		return r-r0 >= 100, ""
	})
	cancel()
	wg.Wait()
	t.Logf("100 rounds in %s", time.Since(churnStart).Round(100*time.Millisecond))

	mu.Lock()
	t.Logf("reader: %d reads, %d distinct documents, up to %d servers", reads, len(versions), maxSeen)
	for i, e := range readErrs {
		if i == 10 {
			t.Errorf("... %d more", len(readErrs)-10)
			break
		}
		t.Errorf("reader: %s", e)
	}
	if len(versions) < 20 {
		t.Errorf("only %d distinct documents seen during the churn, want many (the set did not change often?)", len(versions))
	}
	mu.Unlock()

	// Every link is up again: the file converges on all four servers.
	harness.Wait(t, 10*time.Second, "all four servers in the file", func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		var doc harness.FileDoc
		if err := json.Unmarshal(b, &doc); err != nil {
			return false, err.Error()
		}
		var ips []string
		for _, s := range doc.Servers {
			ips = append(ips, s.IP)
			if s.Port != 8000 || s.SourceAddress != s.IP+":9999" || s.Interface != l.Client.Dev(l.Br) || s.FirstSeen.IsZero() {
				return false, "bad entry in " + string(b)
			}
		}
		return slices.Equal(ips, []string{"10.213.1.11", "10.213.1.12", "10.213.1.13", "10.213.1.14"}), string(b)
	})
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("file mode after the churn: %v (%v), want 0640 kept", st.Mode(), err)
	}
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}

// TestRunBadConfig: configuration errors exit 2 and name the key.
func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 0, false)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"deregister-after below Consul's floor", []string{"--sink", "consul", "--consul-deregister-after", "30s"}, "consul_deregister_after"},
		{"file sink without path", []string{"--sink", "file"}, "file_path"},
		{"hosts name with capitals", []string{"--sink", "file", "--file-path", "/tmp/hosts", "--file-format", "hosts", "--file-hosts-name", "Web-{ip_dashed}"},
			`file_hosts_name (flag --file-hosts-name): bad value "Web-{ip_dashed}": want a DNS name`},
		{"interval below the floor", []string{"--interval", "1ns", "--timeout", "1ms"}, `interval (flag --interval): bad value "1ns": at least 100ms`},
		{"removal fraction above 1", []string{"--max-removal-fraction", "1.5"}, `max_removal_fraction (flag --max-removal-fraction): bad value "1.5": want a fraction 0 < f <= 1 (1 turns the removal guard off)`},
		{"negative guard rounds", []string{"--removal-guard-rounds", "-1"}, `removal_guard_rounds (flag --removal-guard-rounds): bad value "-1": must be >= 0`},
		{"interval not above timeout", []string{"--interval", "1s", "--timeout", "2"}, "interval (flag --interval) 1s must exceed timeout (flag --timeout) 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.RunCmd(t, l.Client, append([]string{"run", "--metrics-addr", "", "--timeout", "0.2"}, tc.args...)...)
			if r.ExitCode != 2 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("bridge run %s: exit %d, stderr %q; want exit 2 naming %s\nstdout: %s",
					strings.Join(tc.args, " "), r.ExitCode, r.Stderr, tc.want, r.Stdout)
			}
			if r.Elapsed > 5*time.Second {
				t.Errorf("bridge run %s took %s to reject its configuration", strings.Join(tc.args, " "), r.Elapsed)
			}
		})
	}
}
