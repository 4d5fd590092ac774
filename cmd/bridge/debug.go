package main

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/checker"
	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/explain"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// newBoard builds explain's Board for `bridge run` with debug_endpoint
// on: what the loop feeds it, the app checks' histories (checks nil: no
// app check) and, from the first sink that keeps a fleet, the fleet's
// observers.
func newBoard(cfg *config.Config, id promsd.Identity, checks *checker.Checks, sinks []sink.Sink) *explain.Board {
	bc := explain.Config{Bridge: id.BridgeID, Segment: id.Segment, Interval: cfg.Interval,
		Plan: plan.Config{MissedRounds: cfg.MissedRounds, MaxRemovalFraction: cfg.MaxRemovalFraction, GuardRounds: cfg.RemovalGuardRounds}}
	if checks != nil {
		bc.Checks = checkSource{c: checks, o: cfg.AppCheck}
	}
	for _, s := range sinks {
		if f, ok := s.(sink.FleetExplainer); ok {
			bc.Fleet = f
			break
		}
	}
	return explain.New(bc)
}

// debugHandler serves board's reports at explain.Path beside h, behind
// token (nil: none).
func debugHandler(board *explain.Board, token promsd.Token, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle(explain.Path, board.Handler(token))
	return mux
}

// checkSource is the scheduler's history as explain reports it.
type checkSource struct {
	c *checker.Checks
	o appcheck.Options
}

func (s checkSource) ExplainCheck(addr netip.AddrPort) (explain.Check, bool) {
	h, ok := s.c.Explain(addr)
	if !ok {
		return explain.Check{}, false
	}
	out := explain.Check{Kind: string(s.o.Kind), State: h.State.String(), Since: h.Since.UTC(), Output: h.Output,
		Passes: h.Passes, Fails: h.Fails, Rise: s.o.Rise, Fall: s.o.Fall, Checking: h.Checking, History: make([]explain.Result, len(h.Last))}
	for i, r := range h.Last {
		out.History[i] = explain.Result{At: r.At.UTC(), OK: r.OK, Status: r.Status, LatencyMS: float64(r.Latency) / float64(time.Millisecond), Reason: r.Reason}
	}
	return out, true
}

// boardOf is b as the runner's Board: nil (not a typed nil) when the
// debug endpoint is off.
func boardOf(b *explain.Board) runner.Board {
	if b == nil {
		return nil
	}
	return b
}
