package runner_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRemovalGuard: every server silent at once is held for
// RemovalGuardRounds rounds past MissedRounds: the sink keeps them, /readyz
// and the metrics say so, a WARN starts the episode and an INFO ends it.
func TestRemovalGuard(t *testing.T) {
	all := []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"}
	h := newHarness(t, roundScript{servers: all}, roundScript{})
	s := newSink("file")
	cfg := h.config(s) // MissedRounds 2
	cfg.MaxRemovalFraction, cfg.RemovalGuardRounds = 0.5, 2
	h.start(cfg)
	srv := h.health.Handler()

	const reason = "removal guard: holding 3 removals of 3 known servers since round 3 (more than max_removal_fraction 0.5 unseen for missed_rounds); they go ahead in %d more rounds (round 5) if still unseen"
	for round := uint64(1); round <= 6; round++ {
		if round > 1 {
			h.clock.Advance(10 * time.Second)
		}
		h.d.nextRound(t)
		c := s.nextApply(t)
		h.idle()
		if round == 1 {
			// The sink's first result reaches Health after Apply returns,
			// which nextApply and idle do not wait for.
			waitFor(t, "the first apply recorded", func() bool { ok, _ := h.health.Ready(); return ok })
		}
		want := all
		if round >= 5 {
			want = nil
		}
		if c.round != round || !slices.Equal(c.addrs, want) {
			t.Fatalf("round %d apply = %+v, want %v", round, c, want)
		}
		code, body := get(t, srv, "/readyz")
		var rz struct {
			Reasons []string `json:"reasons"`
		}
		if err := json.Unmarshal([]byte(body), &rz); err != nil {
			t.Fatal(err)
		}
		held := metricValue(t, h, "removals_held")
		if round == 3 || round == 4 {
			w := strings.Replace(reason, "%d more rounds", map[uint64]string{3: "2 more rounds", 4: "1 more round"}[round], 1)
			if code != http.StatusServiceUnavailable || !slices.Equal(rz.Reasons, []string{w}) {
				t.Fatalf("round %d readyz = %d %v, want 503 %q", round, code, rz.Reasons, w)
			}
			if held != 3 {
				t.Fatalf("round %d removals_held = %v, want 3", round, held)
			}
			continue
		}
		if code != http.StatusOK || held != 0 {
			t.Fatalf("round %d readyz = %d %s, removals_held %v; want 200 and 0", round, code, body, held)
		}
	}
	h.stop()

	if n := metricValue(t, h, "removal_guard_episodes_total"); n != 1 {
		t.Errorf("removal_guard_episodes_total = %v, want 1", n)
	}
	if n := metricValue(t, h, "endpoint_changes_total", "remove"); n != 3 {
		t.Errorf("endpoint_changes_total{remove} = %v, want 3", n)
	}
	warn := h.logs.lines(t, "warn", "removal guard: too many servers unseen at once (a network or firewall hiccup?); holding their removals, the sinks keep them")
	if len(warn) != 1 || warn[0]["round"] != float64(3) || warn[0]["held"] != float64(3) || warn[0]["known"] != float64(3) || warn[0]["release_round"] != float64(5) {
		t.Errorf("guard warn lines = %v, want one in round 3 holding 3 of 3 until round 5", warn)
	}
	end := h.logs.lines(t, "info", "removal guard: no removal held any more (released after the guard rounds, or the servers answered again)")
	if len(end) != 1 || end[0]["round"] != float64(5) || end[0]["released"] != float64(3) {
		t.Errorf("guard end lines = %v, want one in round 5 with released=3", end)
	}
	if n := len(h.logs.lines(t, "debug", "endpoint removed")); n != 3 {
		t.Errorf("endpoint removed lines = %d, want 3", n)
	}
	if ch := h.logs.lines(t, "info", "endpoints changed"); len(ch) != 2 || ch[1]["round"] != float64(5) || ch[1]["removed"] != float64(3) {
		t.Errorf("endpoints changed lines = %v, want the add in round 1 and 3 removals in round 5", ch)
	}
}

// TestRemovalGuardDryRun: a held removal is a noop marked held in --dry-run.
func TestRemovalGuardDryRun(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000", "10.0.0.2:8000"}}, roundScript{})
	var out syncBuffer
	cfg := h.config()
	cfg.MissedRounds, cfg.MaxRemovalFraction, cfg.RemovalGuardRounds = 1, 0.5, 10
	cfg.DryRun, cfg.DryRunOut = true, &out
	h.start(cfg)
	h.d.nextRound(t)
	h.idle()
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t)
	h.idle()
	h.stop()
	want := `{"op":"add","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","round":1}
{"op":"add","ip":"10.0.0.2","port":8000,"source_address":"10.0.0.2:9999","interface":"eth0","round":1}
{"op":"noop","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","round":2,"held":true}
{"op":"noop","ip":"10.0.0.2","port":8000,"source_address":"10.0.0.2:9999","interface":"eth0","round":2,"held":true}
`
	if got := out.buf.String(); got != want {
		t.Fatalf("dry-run output =\n%s\nwant\n%s", got, want)
	}
}
