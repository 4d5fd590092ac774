// Package robustness_test is the robustness harness (issue 30): a scenario
// runner that builds a catalog-mode fleet on a real three-server Consul
// cluster with ACLs on, injects faults at random moments from a seeded
// schedule, records what every responder answered, what the registry held
// (?passing read every 100 ms), every leader term and every write, and has
// e2e/internal/history judge the history offline against the documented
// invariants.
//
// CI runs the fixed seeds of ciSeeds; `make robustness SEED=… DURATION=…`
// replays one run (ROBUST_SEED, ROBUST_DURATION). Every run logs its seed.
// A run whose history breaks an invariant fails, and its history is kept
// under testdata/ with the checker's verdict (ROBUST_KEEP=1 keeps every
// history), so that the regression stays covered by
// TestRobustnessFixtures.
package robustness_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/history"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// ciSeeds run in CI, in parallel, each for ciDuration of faults (then the
// convergence bound): within the suite's 5-minute budget for this step.
// Both schedules silence segment a (6 of the 10 servers) for longer than
// the guard's hold (17 s and 23 s), and between them draw 11 of the 13
// fault kinds (seed 11: a pause, a data wipe, a rolling restart,
// duplicates on a segment, a server stopped, the silence; seed 13: a cut
// from Consul, a cut from the segment, a bridge killed, Consul's leader
// killed, two hostile writes, the silence); consul-outage and
// segment-loss come in longer runs.
var ciSeeds = []int64{11, 13}

const ciDuration = 60 * time.Second

// TestRobustness runs the CI seeds, or the one of ROBUST_SEED for
// ROBUST_DURATION, in catalog mode.
func TestRobustness(t *testing.T) {
	netns.Require(t)
	runSeeds(t, "seed", "robustness", ciSeeds, ciDuration, runScenario)
}

// runSeeds runs seeds (or the one of ROBUST_SEED) in parallel, each for
// dur of faults (or ROBUST_DURATION), judges each history and keeps it
// when it breaks an invariant (in testdata/, as <prefix>-<seed>-<time>),
// or always with ROBUST_KEEP (in testdata/kept/); make target replays one.
func runSeeds(t *testing.T, prefix, target string, seeds []int64, dur time.Duration, run func(*testing.T, int64, time.Duration) []history.Event) {
	if s := os.Getenv("ROBUST_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("ROBUST_SEED=%q: want an integer", s)
		}
		seeds = []int64{seed}
	}
	if s := os.Getenv("ROBUST_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("ROBUST_DURATION=%q: want a positive Go duration (90s, 2h)", s)
		}
		dur = d
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			t.Logf("robustness: %s %d, %s of faults (replay: make %s SEED=%d DURATION=%s)", prefix, seed, dur, target, seed, dur)
			events := run(t, seed, dur)
			v := history.Check(events)
			t.Logf("robustness: %s %d verdict:\n%s", prefix, seed, v.String())
			keep := os.Getenv("ROBUST_KEEP") != ""
			if len(v.Violations) > 0 || keep {
				name := fmt.Sprintf("%s-%d-%s", prefix, seed, time.Now().UTC().Format("20060102T150405"))
				dir := filepath.Join("testdata", "kept")
				if len(v.Violations) > 0 {
					dir = "testdata"
				}
				if err := history.SaveFixture(dir, name, events, v); err != nil {
					t.Errorf("keep the history: %v", err)
				} else {
					t.Logf("robustness: history kept as %s/%s.jsonl", dir, name)
				}
			}
			if len(v.Violations) > 0 {
				t.Errorf("%s %d: %d invariant violations (see the verdict above)", prefix, seed, len(v.Violations))
			}
		})
	}
}
