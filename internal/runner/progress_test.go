package runner_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// progressSink reports 3 writes, then blocks until released, then returns
// Result.Writes = 5 (the 3 reported and 2 more). It is a sink.Starter.
type progressSink struct {
	midway  chan struct{}
	release chan struct{}
	starts  atomic.Int32
	applies atomic.Int32
	// startedFirst is set when Start ran before the first Apply.
	startedFirst atomic.Bool
}

func (s *progressSink) Name() string { return "slow" }

func (s *progressSink) Start(context.Context) error {
	s.starts.Add(1)
	return nil
}

func (s *progressSink) Apply(ctx context.Context, _ endpoint.Snapshot) (sink.Result, error) {
	if s.applies.Add(1) == 1 {
		s.startedFirst.Store(s.starts.Load() == 1)
	}
	sink.Wrote(ctx, 2)
	sink.Wrote(ctx, 1)
	s.midway <- struct{}{}
	<-s.release
	return sink.Result{Writes: 5}, nil
}

func (s *progressSink) Close(context.Context) error { return nil }

// TestWritesCountDuringApply checks that sink_writes_total moves while a
// long Apply runs (sink.Wrote) and ends at Result.Writes, not counting the
// reported writes twice; and that a sink.Starter is started once, before
// its first Apply.
func TestWritesCountDuringApply(t *testing.T) {
	h := newHarness(t, roundScript{servers: []string{"10.0.0.1:8000"}}, roundScript{servers: []string{"10.0.0.1:8000"}})
	s := &progressSink{midway: make(chan struct{}), release: make(chan struct{})}
	h.start(h.config(s))
	h.d.nextRound(t)
	select {
	case <-s.midway:
	case <-time.After(wait):
		t.Fatal("apply did not start")
	}
	if got := metricValue(t, h, "sink_writes_total", "slow"); got != 3 {
		t.Errorf("sink_writes_total during the apply = %v, want 3", got)
	}
	s.release <- struct{}{}
	h.clock.Advance(10 * time.Second)
	h.d.nextRound(t)
	<-s.midway
	s.release <- struct{}{}
	h.stop()
	if got := metricValue(t, h, "sink_writes_total", "slow"); got != 10 {
		t.Errorf("sink_writes_total after two applies = %v, want 10 (5 each)", got)
	}
	if s.starts.Load() != 1 || !s.startedFirst.Load() {
		t.Errorf("Start called %d times, before the first Apply: %v; want once, before", s.starts.Load(), s.startedFirst.Load())
	}
}
