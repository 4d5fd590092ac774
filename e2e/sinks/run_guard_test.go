package sinks_test

// End-to-end test of the removal guard: the real bridge with the file sink
// on a namespace LAN of six `bridge respond` servers; nothing in the root
// namespace.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Log messages of the loop this test follows (internal/runner), besides
// harness.MsgRound and harness.MsgChanged.
const (
	guardMsgStart   = "removal guard: too many servers unseen at once (a network or firewall hiccup?); holding their removals, the sinks keep them"
	guardMsgEnd     = "removal guard: no removal held any more (released after the guard rounds, or the servers answered again)"
	guardMsgRemoved = "endpoint removed" // at debug; "endpoints changed" at info sums up the round
)

// guardLogLines returns the bridge's JSON log lines (stderr) with message msg.
func guardLogLines(t *testing.T, b *harness.BridgeProc, msg string) []map[string]any {
	t.Helper()
	_, stderr := b.Output()
	var out []map[string]any
	for line := range strings.Lines(stderr) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// firstOf is l's first line, nil if none.
func firstOf(l []map[string]any) map[string]any {
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

// guardLastRound is the number of the bridge's last completed round (0 before
// the first).
func guardLastRound(t *testing.T, b *harness.BridgeProc) int {
	t.Helper()
	l := guardLogLines(t, b, harness.MsgRound)
	if len(l) == 0 {
		return 0
	}
	return int(l[len(l)-1]["round"].(float64))
}

// guardBetweenRounds waits for a round to complete and returns its number: the
// loop is then idle for interval - timeout (0.5 s here), so servers stopped
// at once now all miss the same rounds.
func guardBetweenRounds(t *testing.T, b *harness.BridgeProc) int {
	t.Helper()
	r0 := guardLastRound(t, b)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r := guardLastRound(t, b); r > r0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no round completed within 10s after round %d", r0)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// guardWaitRound waits until round n has completed.
func guardWaitRound(t *testing.T, b *harness.BridgeProc, n int) {
	t.Helper()
	harness.Wait(t, time.Duration(n-guardLastRound(t, b)+10)*time.Second, fmt.Sprintf("round %d", n), func() (bool, string) {
		r := guardLastRound(t, b)
		return r >= n, fmt.Sprintf("last round %d", r)
	})
}

// guardEstablished waits until the servers the file sink just listed are
// established: seen in missed complete rounds in a row. Only established
// servers count for the removal guard (internal/plan: a flood's identities,
// or a server that came and went, must not hold it), so servers silenced
// sooner after they (re)appear are removed when due, without the guard.
// The file may list them from an early add in a round still running: that
// round and missed-1 more must complete.
func guardEstablished(t *testing.T, b *harness.BridgeProc, missed int) {
	t.Helper()
	guardWaitRound(t, b, guardLastRound(t, b)+missed)
}

// guardFileServers returns the IPs in the file sink's document.
func guardFileServers(t *testing.T, path string) ([]string, error) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc harness.FileDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s", err, raw)
	}
	ips := []string{}
	for _, s := range doc.Servers {
		ips = append(ips, s.IP)
	}
	slices.Sort(ips)
	return ips, nil
}

// guardReadyz returns /readyz's status and reasons inside ns.
func guardReadyz(t *testing.T, ns string) (int, []string) {
	t.Helper()
	code, body, err := harness.NSGet(ns, "http://"+harness.MetricsAddr+"/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	var rz struct {
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(body), &rz); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, rz.Reasons
}

func guardMetric(t *testing.T, ns, name string) float64 {
	t.Helper()
	v, ok, err := harness.Metric(ns, name)
	if err != nil || !ok {
		t.Fatalf("metric %s: found %v, %v", name, ok, err)
	}
	return v
}

// TestRunRemovalGuard: with the default guard (max_removal_fraction 0.5,
// removal_guard_rounds 10) and --missed-rounds 2, one of six established
// servers stopped is removed after 2 rounds as before; all six stopped at
// once stay in the file for 10 rounds more, /readyz says why (503) and
// udp_discovery_bridge_removals_held is 6, then all six go in one round;
// silent again and back during the hold, they simply stay. Each time the
// servers (re)appear the test waits until they are established (2 complete
// rounds in a row saw them) before silencing them: only established servers
// count for the guard.
func TestRunRemovalGuard(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 6, false)
	respondOn := func(h *netns.Host) *netns.Proc { return harness.Respond(t, h, 1, "--ip", h.IP().String()) }
	var responders []*netns.Proc
	var all []string
	for _, h := range l.Servers {
		responders = append(responders, respondOn(h))
		all = append(all, h.IP().String())
	}
	slices.Sort(all)
	path := filepath.Join(t.TempDir(), "servers.json")
	// The guard's keys stay at their defaults, so the same test runs
	// against a bridge without the guard (BRIDGE_BIN) and fails there.
	const missed = 2
	args := append([]string{"--sink", "file", "--file-path", path, "--missed-rounds", fmt.Sprint(missed),
		"--whitelist", l.Client.Dev(l.Br), "--metrics-addr", harness.MetricsAddr,
		"--log-level", "debug", "--log-format", "json"}, harness.Fast...)
	b := harness.StartRun(t, l.Client, "guard", args...)
	waitSix := func(what string) {
		t.Helper()
		harness.Wait(t, 15*time.Second, what, func() (bool, string) {
			ips, err := guardFileServers(t, path)
			if err != nil {
				return false, err.Error()
			}
			code, reasons := guardReadyz(t, l.Client.NS)
			return slices.Equal(ips, all) && code == http.StatusOK, fmt.Sprintf("file %v, readyz %d %v", ips, code, reasons)
		})
	}
	waitSix("all six servers in the file and /readyz 200")
	guardEstablished(t, b, missed)

	// One of six: an ordinary removal, after --missed-rounds rounds.
	last := guardBetweenRounds(t, b)
	harness.StopResponder(t, responders[5])
	five := all[:5]
	harness.Wait(t, 15*time.Second, "the stopped server removed", func() (bool, string) {
		ips, err := guardFileServers(t, path)
		if err != nil {
			return false, err.Error()
		}
		if code, reasons := guardReadyz(t, l.Client.NS); code != http.StatusOK {
			t.Fatalf("/readyz while one server leaves = %d %v, want 200", code, reasons)
		}
		return slices.Equal(ips, five), fmt.Sprintf("file %v", ips)
	})
	removed := guardLogLines(t, b, guardMsgRemoved)
	if len(removed) != 1 || removed[0]["ip"] != all[5] {
		t.Fatalf("removed lines %v, want one for %s", removed, all[5])
	}
	single := int(removed[0]["round"].(float64)) - last
	t.Logf("one of six stopped after round %d: removed in round %d (%d rounds)", last, last+single, single)
	if single != 2 {
		t.Errorf("one server of six removed %d rounds after it stopped, want 2 (--missed-rounds; the guard must not hold it)", single)
	}
	// (Checked without failing when absent, so that a bridge without the
	// guard fails this test where it matters, below.)
	if n, ok, err := harness.Metric(l.Client.NS, "udp_discovery_bridge_removal_guard_episodes_total"); err != nil || (ok && n != 0) {
		t.Errorf("removal_guard_episodes_total after one removal = %v (%v), want 0", n, err)
	}
	responders[5] = respondOn(l.Servers[5])
	waitSix("the sixth server back")
	guardEstablished(t, b, missed) // else the sixth would not be held below

	// All six at once: held for removal_guard_rounds rounds past
	// --missed-rounds.
	last = guardBetweenRounds(t, b)
	stopped := time.Now()
	for _, p := range responders { // all silent within a millisecond
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range responders {
		_ = p.Wait()
	}
	due := last + 2 // the round in which the six would be removed without the guard
	guardWaitRound(t, b, due+1)
	if ips, err := guardFileServers(t, path); err != nil || !slices.Equal(ips, all) {
		t.Fatalf("file one round after the removals were due (round %d) = %v (%v), want all six kept by the removal guard", due+1, ips, err)
	}
	start := guardLogLines(t, b, guardMsgStart)
	if len(start) != 1 {
		t.Fatalf("guard warnings = %v, want one", start)
	}
	since := int(start[0]["round"].(float64))
	release := int(start[0]["release_round"].(float64))
	if since != due || release != due+10 || start[0]["held"] != float64(6) || start[0]["known"] != float64(6) {
		t.Errorf("guard warning %v, want round %d holding 6 of 6 until round %d", start[0], due, due+10)
	}
	code, reasons := guardReadyz(t, l.Client.NS)
	wantReason := fmt.Sprintf("removal guard: holding 6 removals of 6 known servers since round %d (more than max_removal_fraction 0.5 unseen for missed_rounds); they go ahead in", since)
	if code != http.StatusServiceUnavailable || len(reasons) != 1 || !strings.HasPrefix(reasons[0], wantReason) || !strings.HasSuffix(reasons[0], fmt.Sprintf("(round %d) if still unseen", release)) {
		t.Errorf("/readyz during the hold = %d %v, want 503 with %q...", code, reasons, wantReason)
	}
	if n := guardMetric(t, l.Client.NS, "udp_discovery_bridge_removals_held"); n != 6 {
		t.Errorf("removals_held during the hold = %v, want 6", n)
	}
	if n := guardMetric(t, l.Client.NS, "udp_discovery_bridge_removal_guard_episodes_total"); n != 1 {
		t.Errorf("removal_guard_episodes_total during the hold = %v, want 1", n)
	}

	// Every read of the file while the metric still says 6 held (read
	// after the file: the sink writes a round after its metric is set)
	// lists all six; then they go, together.
	var reads int
	harness.Wait(t, 30*time.Second, "the held removals to go ahead", func() (bool, string) {
		ips, err := guardFileServers(t, path)
		if err != nil {
			return false, err.Error()
		}
		held := guardMetric(t, l.Client.NS, "udp_discovery_bridge_removals_held")
		if held == 6 {
			reads++
			if !slices.Equal(ips, all) {
				t.Fatalf("file during the hold (round %d) = %v, want all six", guardLastRound(t, b), ips)
			}
		}
		return len(ips) == 0, fmt.Sprintf("file %v, held %v", ips, held)
	})
	gone := time.Since(stopped)
	removed = guardLogLines(t, b, guardMsgRemoved)[1:]
	end := guardLogLines(t, b, guardMsgEnd)
	if len(removed) != 6 || len(end) != 1 || end[0]["released"] != float64(6) || int(end[0]["round"].(float64)) != release {
		t.Fatalf("after the hold: removed lines %v, guard end lines %v; want 6 removed and one end line with released=6 in round %d", removed, end, release)
	}
	for _, r := range removed {
		if int(r["round"].(float64)) != release {
			t.Errorf("removed line %v, want round %d", r, release)
		}
	}
	// At info the release is one summary line, not six.
	var summary []map[string]any
	for _, c := range guardLogLines(t, b, harness.MsgChanged) {
		if int(c["round"].(float64)) == release {
			summary = append(summary, c)
		}
	}
	if first, _ := firstOf(summary)["removed_first"].([]any); len(summary) != 1 || summary[0]["level"] != "info" || summary[0]["removed"] != float64(6) || len(first) != 5 {
		t.Errorf("endpoints changed lines of round %d = %v, want one at info with removed=6 and 5 addresses", release, summary)
	}
	if n := guardMetric(t, l.Client.NS, "udp_discovery_bridge_removals_held"); n != 0 {
		t.Errorf("removals_held after the release = %v, want 0", n)
	}
	if code, reasons := guardReadyz(t, l.Client.NS); code != http.StatusOK {
		t.Errorf("/readyz after the release = %d %v, want 200", code, reasons)
	}
	t.Logf("six of six stopped after round %d: held from round %d (removals due) to round %d, removed in round %d; "+
		"%d file reads during the hold listed all six; %s from the stop to an empty file (interval 1s)",
		last, since, release-1, release, reads, gone.Round(100*time.Millisecond))

	// Silent again, then back during the hold: nothing is removed, the
	// episode ends when they answer.
	for i, h := range l.Servers {
		responders[i] = respondOn(h)
	}
	waitSix("all six back after the release")
	guardEstablished(t, b, missed) // else they would be removed when due, without the guard
	last = guardBetweenRounds(t, b)
	for _, p := range responders {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range responders {
		_ = p.Wait()
	}
	guardWaitRound(t, b, last+3)
	if n := len(guardLogLines(t, b, guardMsgStart)); n != 2 {
		t.Fatalf("%d guard warnings after the second silence, want 2", n)
	}
	back := time.Now()
	for i, h := range l.Servers {
		responders[i] = respondOn(h)
	}
	harness.Wait(t, 15*time.Second, "the second episode to end", func() (bool, string) {
		n := len(guardLogLines(t, b, guardMsgEnd))
		return n == 2, fmt.Sprintf("%d end lines", n)
	})
	end = guardLogLines(t, b, guardMsgEnd)
	if end[1]["released"] != float64(0) {
		t.Errorf("second episode ended with %v; want released=0 (the servers answered again)", end[1])
	}
	if n := len(guardLogLines(t, b, guardMsgRemoved)); n != 7 {
		t.Errorf("%d endpoint removed lines after the servers came back, want still 7", n)
	}
	if ips, err := guardFileServers(t, path); err != nil || !slices.Equal(ips, all) {
		t.Errorf("file after the servers came back = %v (%v), want all six", ips, err)
	}
	if n := guardMetric(t, l.Client.NS, "udp_discovery_bridge_removal_guard_episodes_total"); n != 2 {
		t.Errorf("removal_guard_episodes_total = %v, want 2", n)
	}
	t.Logf("six silent again after round %d, held from round %d, back within %s: episode ended in round %v, nothing removed",
		last, last+2, time.Since(back).Round(100*time.Millisecond), end[1]["round"])
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}
