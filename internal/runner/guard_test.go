package runner_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// TestRemovalGuard: every server silent at once is held for
// RemovalGuardRounds rounds past MissedRounds: the sink keeps them, /readyz
// and the metrics say so, a WARN starts the episode and an INFO ends it.
// The servers answer two rounds first: only servers established by
// MissedRounds rounds in a row are guarded.
func TestRemovalGuard(t *testing.T) {
	all := []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"}
	h := newHarness(t, roundScript{servers: all}, roundScript{servers: all}, roundScript{})
	s := newSink("file")
	cfg := h.config(s) // MissedRounds 2
	cfg.MaxRemovalFraction, cfg.RemovalGuardRounds = 0.5, 2
	h.start(cfg)
	srv := h.health.Handler()

	const reason = "removal guard: holding 3 removals of 3 known servers since round 4 (more than max_removal_fraction 0.5 unseen for missed_rounds); they go ahead in %d more rounds (round 6) if still unseen"
	for round := uint64(1); round <= 7; round++ {
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
		if round >= 6 {
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
		if round == 4 || round == 5 {
			w := strings.Replace(reason, "%d more rounds", map[uint64]string{4: "2 more rounds", 5: "1 more round"}[round], 1)
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
	if len(warn) != 1 || warn[0]["round"] != float64(4) || warn[0]["held"] != float64(3) || warn[0]["known"] != float64(3) || warn[0]["release_round"] != float64(6) {
		t.Errorf("guard warn lines = %v, want one in round 4 holding 3 of 3 until round 6", warn)
	}
	end := h.logs.lines(t, "info", "removal guard: no removal held any more (released after the guard rounds, or the servers answered again)")
	if len(end) != 1 || end[0]["round"] != float64(6) || end[0]["released"] != float64(3) {
		t.Errorf("guard end lines = %v, want one in round 6 with released=3", end)
	}
	if n := len(h.logs.lines(t, "debug", "endpoint removed")); n != 3 {
		t.Errorf("endpoint removed lines = %d, want 3", n)
	}
	if ch := h.logs.lines(t, "info", "endpoints changed"); len(ch) != 2 || ch[1]["round"] != float64(6) || ch[1]["removed"] != float64(3) {
		t.Errorf("endpoints changed lines = %v, want the add in round 1 and 3 removals in round 6", ch)
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

// TestLimits: new servers beyond max_servers_per_source or max_servers are
// refused and counted, the held ones stay, /readyz says so while a round
// refuses any, one WARN starts the episode and an INFO ends it; the
// round's admission refusals and kernel drops reach the metrics.
func TestLimits(t *testing.T) {
	var st discover.Stats
	st.Refused[discover.RefusedOffLink], st.KernelDrops = 5, 7
	flood := []string{"10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.1:8002", "10.0.0.2:8000", "10.0.0.3:8000"}
	held := []string{"10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.2:8000"}
	h := newHarness(t, roundScript{servers: flood, stats: st}, roundScript{servers: flood}, roundScript{servers: held})
	s := newSink("file")
	cfg := h.config(s)
	cfg.Limits = plan.Limits{MaxServers: 3, MaxPerSource: 2}
	h.start(cfg)
	srv := h.health.Handler()
	for round := uint64(1); round <= 3; round++ {
		if round > 1 {
			h.clock.Advance(10 * time.Second)
		}
		h.d.nextRound(t)
		c := s.nextApply(t)
		h.idle()
		if !slices.Equal(c.addrs, held) {
			t.Fatalf("round %d apply = %v, want %v", round, c.addrs, held)
		}
		if round == 1 {
			waitFor(t, "the first apply recorded", func() bool { _, r := h.health.Ready(); return len(r) == 1 })
		}
		code, body := get(t, srv, "/readyz")
		switch {
		case round < 3 && (code != http.StatusServiceUnavailable || !strings.Contains(body, "limits: 2 new servers refused in round") || !strings.Contains(body, "3 held, which stay")):
			t.Fatalf("round %d readyz = %d %s, want 503 naming the limits", round, code, body)
		case round == 3 && code != http.StatusOK:
			t.Fatalf("round 3 readyz = %d %s, want 200", code, body)
		}
	}
	h.stop()
	for _, m := range []struct {
		name, label string
		want        float64
	}{
		// Round 1 refuses 10.0.0.1:8002 at its source's limit and
		// 10.0.0.3 at max_servers; round 2, at max_servers, refuses both
		// there (the total is checked first).
		{"servers_refused_total", "max_servers_per_source", 1},
		{"servers_refused_total", "max_servers", 3},
		{"replies_refused_total", "off_link_source", 5},
		{"replies_refused_total", "source_port", 0},
		{"receive_drops_total", "", 7},
	} {
		var labels []string
		if m.label != "" {
			labels = []string{m.label}
		}
		if got := metricValue(t, h, m.name, labels...); got != m.want {
			t.Errorf("%s{%s} = %v, want %v", m.name, m.label, got, m.want)
		}
	}
	warn := h.logs.lines(t, "warn", "limits: new servers refused (a reply flood, or more servers than max_servers?); the servers held stay, /readyz says so until a round refuses none")
	if len(warn) != 1 || warn[0]["round"] != float64(1) {
		t.Errorf("limit warn lines = %v, want one, in round 1", warn)
	}
	if end := h.logs.lines(t, "info", "limits: no new server refused any more"); len(end) != 1 || end[0]["round"] != float64(3) {
		t.Errorf("limit end lines = %v, want one, in round 3", end)
	}
}
