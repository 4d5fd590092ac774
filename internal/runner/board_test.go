package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/explain"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// TestBoardFollowsTheLoop: the loop feeds explain's Board the planner's
// state and each apply, so a report says what the planner holds (misses
// included) and what the sink applied.
func TestBoardFollowsTheLoop(t *testing.T) {
	const a, b = "10.0.0.1:8000", "10.0.0.2:8000"
	h := newHarness(t, roundScript{servers: []string{a, b}}, roundScript{servers: []string{a}})
	s := newSink("fake")
	cfg := h.config(s)
	board := explain.New(explain.Config{Bridge: "b1", Plan: plan.Config{MissedRounds: 2}, Clock: h.clock})
	cfg.Board = board
	h.start(cfg)
	ctx := context.Background()

	h.d.nextRound(t)
	s.nextApply(t)
	h.idle()
	// The worker tells the Board once Apply has returned.
	waitFor(t, "the Board told of the apply", func() bool {
		r, _ := board.Report(ctx, "10.0.0.2")
		return len(r.Servers) == 1 && r.Servers[0].Sinks[0].State == sink.ExplainWritten
	})
	r, err := board.Report(ctx, "10.0.0.2")
	if err != nil || len(r.Servers) != 1 || r.Round != 1 || r.Servers[0].State != "ready" {
		t.Fatalf("after round 1: %+v %v", r, err)
	}
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t)
	s.nextApply(t)
	h.idle()
	r, _ = board.Report(ctx, "10.0.0.2:8000")
	if len(r.Servers) != 1 || r.Round != 2 || r.Servers[0].State != "unobserved" || r.Servers[0].Discovery.Misses != 1 {
		t.Fatalf("after round 2: %+v", r)
	}
	h.stop()
}
