package consul_test

// The fleet's removal guard against a real three-server Consul cluster with
// ACLs on (default_policy deny, bridges with the documented catalog-mode
// policy): ?passing is read every 100 ms throughout each mass silence. Each
// case fails on a bridge whose guard judges each bridge's round alone
// (BRIDGE_BIN pointing at such a build).

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/appserver"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Timings of these tests: rounds of 1.5 s (runFast), removal after 2
// missed rounds, the guard's defaults (fraction 0.5, 10 rounds): a held
// server is held about 15 s.
const (
	guardCatMissed = "2"
	guardCatRound  = 1500 * time.Millisecond
	// guardCatHold is how long every server must stay passing after a
	// silence: the removals are due 2-3 rounds after it and held for 10
	// rounds (15 s) from then; 12 s leaves a margin at both ends.
	guardCatHold = 12 * time.Second
)

// guardCatLab is a catalog lab on an ACL cluster whose bridges run with the
// documented policy's token and --missed-rounds 2.
func guardCatLab(t *testing.T, extra ...string) *catalogh.Lab {
	t.Helper()
	l := catalogh.NewLab(t)
	l.StartACLCluster()
	tok := catalogh.ACLToken(t, l.Consul, "bridge-catalog", harness.DocsPolicy(t, "catalog mode"))
	l.Args = append([]string{"--consul-token-file", catalogh.WriteTokenFile(t, tok), "--missed-rounds", guardCatMissed,
		"--log-level", "debug"}, extra...)
	return l
}

// roundsDone is how many rounds b completed (its debug log's "round
// complete" lines).
func roundsDone(b *harness.BridgeProc) int {
	_, stderr := b.Output()
	return strings.Count(stderr, `"message":"round complete"`)
}

// betweenRounds waits for b to complete a round: its loop is then idle for
// interval - timeout (0.5 s), so servers silenced now miss the same rounds.
func betweenRounds(t *testing.T, b *harness.BridgeProc) {
	t.Helper()
	n := roundsDone(b)
	harness.Wait(t, 10*time.Second, "a round completed", func() (bool, string) {
		return roundsDone(b) > n, fmt.Sprintf("%d rounds", roundsDone(b))
	})
}

// silence kills every responder within a millisecond (and closes the apps'
// listeners), then waits until they are gone.
func silenceAll(t *testing.T, procs []*netns.Proc, apps ...*appserver.Server) time.Time {
	t.Helper()
	at := time.Now()
	for _, p := range procs {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range apps {
		a.Set(appserver.Refused)
	}
	for _, p := range procs {
		_ = p.Wait()
	}
	return at
}

// heldThroughout polls ?passing from now for guardCatHold after at and
// fails the test if any of want was missing or not passing in any read.
func heldThroughout(l *catalogh.Lab, want map[string]string, at time.Time, what string) {
	l.T.Helper()
	p := l.Poll(want)
	time.Sleep(time.Until(at.Add(guardCatHold)))
	reads, missing, critical, errs := p.Finish()
	l.T.Logf("MEASURED: %s: %d reads of ?passing over %s after the silence: %d missing, %d not passing, %d errors",
		what, reads, guardCatHold, len(missing), len(critical), errs)
	if len(missing) > 0 || len(critical) > 0 {
		l.T.Errorf("%s: servers left ?passing during the hold:\nmissing %v\nnot passing %v", what, firstFew(missing), firstFew(critical))
	}
	if reads < int(guardCatHold/(200*time.Millisecond)) {
		l.T.Errorf("%s: only %d reads of the catalog in %s", what, reads, guardCatHold)
	}
}

// firstFew is at most the first 5 of l.
func firstFew(l []string) []string { return l[:min(len(l), 5)] }

// guardLeaderLog is the leader's log lines (stderr) holding msg.
func guardLeaderLog(l *catalogh.Lab, msg string) []string {
	var out []string
	for _, b := range l.Bridges {
		_, stderr := b.Output()
		for line := range strings.Lines(stderr) {
			if strings.Contains(line, msg) {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	return out
}

const guardFleetWarn = "fleet removal guard: too many servers unobserved at once across the fleet"

// TestRunCatalogGuardSmallSegments: four servers on two segments (3 + 1),
// one bridge each, silenced together. The bridge that knows one server
// holds nothing of its own (a single removal is never held), so a guard
// judging each bridge's round removes it; the fleet's guard counts the four
// together and keeps them all passing for the hold, then lets them go.
func TestRunCatalogGuardSmallSegments(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := guardCatLab(t)
	ida, pa := faultServers(l, "a", 3)
	idb, pb := faultServers(l, "b", 1)
	want := catalogh.All("passing", ida, idb)
	l.Bridge("a1")
	l.Bridge("b1")
	l.WaitCatalog(60*time.Second, "four servers passing", want)
	time.Sleep(4 * guardCatRound) // established: observed for missed_rounds+1 rounds
	at := silenceAll(t, append(pa, pb...))
	heldThroughout(l, want, at, "3 + 1 servers silenced together")
	// One episode: it may begin with the three of a1 and take b1's in
	// when b1's round comes (the bridges' rounds are not aligned).
	if w := guardLeaderLog(l, guardFleetWarn); len(w) != 1 {
		t.Errorf("leader's episode lines = %v, want one", w)
	}
	if leader := l.Leader(); leader != "" {
		if v, _, err := harness.Metric(l.Hosts[leader].NS, "udp_discovery_bridge_consul_catalog_removals_held"); err != nil || v != 4 {
			t.Errorf("leader %s removals_held = %v (%v), want 4", leader, v, err)
		}
	}
	took := l.WaitCatalog(30*time.Second, "released: all four unobserved", catalogh.All("critical", ida, idb))
	t.Logf("MEASURED: the four turned critical %s after the hold was checked (%s after the silence)",
		took.Round(100*time.Millisecond), time.Since(at).Round(100*time.Millisecond))
}

// TestRunCatalogGuardStraddle: a silence that begins while a round's
// replies arrive: three of six servers miss a round the other three still
// answered. Judged per round, the first three (half) would go and only the
// next three be held; the window makes it one episode, all six passing.
func TestRunCatalogGuardStraddle(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := guardCatLab(t)
	ids, procs := faultServers(l, "a", 6)
	want := catalogh.All("passing", ids)
	b := l.Bridge("a1")
	l.WaitCatalog(60*time.Second, "six servers passing", want)
	time.Sleep(4 * guardCatRound)
	// Between two rounds the first three go; the next round misses them
	// and sees the others, which go right after it.
	betweenRounds(t, b)
	at := silenceAll(t, procs[:3])
	betweenRounds(t, b)
	silenceAll(t, procs[3:])
	heldThroughout(l, want, at, "six servers silenced across a round boundary")
	if w := guardLeaderLog(l, guardFleetWarn); len(w) != 1 || !strings.Contains(w[0], `"held":6`) {
		t.Errorf("leader's episode lines = %v, want one holding all 6 (the three silenced a round later are on their way)", w)
	}
}

// TestRunCatalogGuardFailOpen: four servers whose app is checked (tcp),
// silenced together with their apps. Held, they stay passing although the
// check now fails (removal_guard_held ready, the default); with
// removal_guard_held unobserved they turn critical and are still not
// removed during the hold. The app check's fall × interval (5 s) is longer
// than missed_rounds rounds (3 s), so the guard holds them before their
// checks fail.
func TestRunCatalogGuardFailOpen(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	for _, held := range []string{"ready", "unobserved"} {
		t.Run(held, func(t *testing.T) {
			args := []string{"--app-check", "tcp", "--app-check-interval", "1s", "--app-check-rise", "1",
				"--app-check-fall", "5", "--app-check-timeout", "0.3s"}
			if held != "ready" { // ready is the default: the same test runs on a bridge without the key
				args = append(args, "--removal-guard-held", held)
			}
			l := guardCatLab(t, args...)
			var procs []*netns.Proc
			var apps []*appserver.Server
			var ids []string
			for i := range 4 {
				h, ip := l.ServerHost("a", i)
				procs = append(procs, harness.Respond(t, h, 1, "--ip", ip))
				apps = append(apps, appserver.Start(t, appserver.Options{NS: h.NS, Addr: ip + ":8000"}))
				ids = append(ids, harness.ServerID(catalogh.Service, ip, 8000))
			}
			want := catalogh.All("passing", ids)
			l.Bridge("a1")
			l.WaitCatalog(60*time.Second, "four servers passing, their apps ready", want)
			time.Sleep(4 * guardCatRound)
			at := silenceAll(t, procs, apps...)
			if held == "ready" {
				heldThroughout(l, want, at, "four servers and their apps silenced (fail open)")
				return
			}
			l.WaitCatalog(guardCatHold, "held servers critical (removal_guard_held unobserved)", catalogh.All("critical", ids))
			p := l.Poll(catalogh.All("critical", ids))
			time.Sleep(time.Until(at.Add(guardCatHold)))
			if _, missing, _, _ := p.Finish(); len(missing) > 0 {
				t.Errorf("held servers removed during the hold: %v", firstFew(missing))
			}
		})
	}
}
