package sink

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Stdout prints one JSON object per change per line:
//
//	{"event":"added","ip":"10.0.0.5","port":8000,"source_address":"10.0.0.5:9999",
//	 "interface":"eth0","first_seen":"...","last_seen":"..."}
//
// With an app check (app_check) each line also carries the server's
// health, the check's output and since when ("health":"pending",
// "check":"HTTP GET /healthz: 503 in 4 ms","health_since":"..."), and each
// health transition of a held server is a line of its own whose event is
// the new state: "ready", "pending" or "failing". Lines come in the order
// added, removed, transitions, each in address order.
//
// It diffs each snapshot against the last one it printed, so a snapshot that
// arrives late still yields exactly the adds, removes and transitions since
// the last output.
type Stdout struct {
	w    io.Writer
	last []endpoint.Endpoint // the last snapshot printed (shared, read-only)
}

// StdoutFactory registers the stdout sink: no settings, writes to Deps.Out.
func StdoutFactory() Factory {
	return Factory{Name: "stdout", Build: func(_ any, d Deps) (Sink, error) { return NewStdout(d.Out), nil }}
}

// NewStdout returns a stdout sink writing to w.
func NewStdout(w io.Writer) *Stdout {
	return &Stdout{w: w}
}

// Name implements Sink.
func (s *Stdout) Name() string { return "stdout" }

// Apply implements Sink.
func (s *Stdout) Apply(ctx context.Context, snap endpoint.Snapshot) (Result, error) {
	d := endpoint.Between(s.last, snap.Endpoints)
	bw := bufio.NewWriter(s.w)
	enc := json.NewEncoder(bw)
	lines := 0
	emit := func(event string, eps []endpoint.Endpoint) error {
		for _, e := range eps {
			r := NewRecord(e, true)
			r.Event = event
			if err := enc.Encode(r); err != nil {
				return err
			}
			lines++
		}
		return nil
	}
	if err := emit("added", d.Added); err != nil {
		return Result{}, fmt.Errorf("stdout sink: encode: %w", err)
	}
	if err := emit("removed", d.Removed); err != nil {
		return Result{}, fmt.Errorf("stdout sink: encode: %w", err)
	}
	for _, e := range d.Changed {
		if err := emit(e.Check.State.String(), []endpoint.Endpoint{e}); err != nil {
			return Result{}, fmt.Errorf("stdout sink: encode: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		// Nothing is remembered, so the same changes are printed next time.
		return Result{}, fmt.Errorf("stdout sink: write: %w", err)
	}
	s.last = snap.Endpoints
	return Result{Diff: d, Writes: lines}, nil
}

// Close implements Sink. Every Apply flushes, so there is nothing left.
func (s *Stdout) Close(context.Context) error { return nil }
