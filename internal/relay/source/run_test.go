package source_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/relay/source"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// hangGuard only stops a test that would otherwise hang.
const hangGuard = 30 * time.Second

// call is one Read as the script saw it.
type call struct {
	index uint64
	at    time.Duration // since t0
}

// answer is what one Read returns; block makes it wait for its context.
type answer struct {
	set   []netip.AddrPort
	next  uint64
	err   error
	block bool
}

// script is a Reader answering from a list, recording each call; past the
// list it blocks until its context ends.
type script struct {
	clk     *clocktest.Clock
	answers []answer
	calls   chan call
}

func newScript(clk *clocktest.Clock, answers ...answer) *script {
	return &script{clk: clk, answers: answers, calls: make(chan call, 100)}
}

func (s *script) Read(ctx context.Context, index uint64) ([]netip.AddrPort, uint64, error) {
	s.calls <- call{index, s.clk.Now().Sub(t0)}
	if len(s.answers) == 0 {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	if a.block {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	return a.set, a.next, a.err
}

// next waits for the next call.
func (s *script) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-s.calls:
		return c
	case <-time.After(hangGuard):
		t.Fatal("no Read")
	}
	return call{}
}

// tick advances clk by d once a timer waits on it.
func tick(t *testing.T, clk *clocktest.Clock, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(d)
}

// TestRun drives Run through scripted reads on a manual clock: the index
// of each successful read goes to the next, a failure reads afresh (index
// 0) after a pause that doubles up to MaxRetry, polls start Every apart,
// and a read over Timeout is cancelled and counts as failed.
func TestRun(t *testing.T) {
	boom := errors.New("connection refused")
	tests := []struct {
		name    string
		loop    source.Loop
		answers []answer
		// advance is how far the clock moves after each call but the last,
		// in steps, each once a timer waits (none: the next read must
		// start at once).
		advance [][]time.Duration
		want    []call
		errors  uint64
		size    int
	}{
		{"blocking reads back to back, the index carried",
			source.Loop{},
			[]answer{{set: addrs("10.1.0.9:8000"), next: 7}, {set: addrs("10.1.0.9:8000", "10.2.0.5:8000"), next: 9}},
			nil,
			[]call{{0, 0}, {7, 0}, {9, 0}}, 0, 2},
		{"polls start Every apart",
			source.Loop{Every: time.Second},
			[]answer{{set: addrs("10.1.0.9:8000")}, {set: addrs("10.1.0.9:8000")}},
			[][]time.Duration{{time.Second}, {time.Second}},
			[]call{{0, 0}, {0, time.Second}, {0, 2 * time.Second}}, 0, 1},
		{"failures back off 1s, 2s, 4s, 5s; a success resets",
			source.Loop{},
			[]answer{{set: addrs("10.1.0.9:8000"), next: 7}, {err: boom}, {err: boom}, {err: boom}, {err: boom}, {set: addrs(), next: 3}, {err: boom}},
			[][]time.Duration{nil, {time.Second}, {2 * time.Second}, {4 * time.Second}, {5 * time.Second}, nil, {time.Second}},
			[]call{{0, 0}, {7, 0}, {0, time.Second}, {0, 3 * time.Second}, {0, 7 * time.Second}, {0, 12 * time.Second}, {3, 12 * time.Second}, {0, 13 * time.Second}},
			5, 0},
		{"a read over Timeout is cancelled and failed",
			source.Loop{Timeout: 15 * time.Second},
			[]answer{{set: addrs("10.1.0.9:8000"), next: 7}, {block: true}},
			[][]time.Duration{nil, {15 * time.Second, time.Second}},
			[]call{{0, 0}, {7, 0}, {0, 16 * time.Second}}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(t0)
			var buf bytes.Buffer
			k := newKeeper(clk, &buf)
			s := newScript(clk, tt.answers...)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); source.Run(ctx, s, k, tt.loop) }()
			var got []call
			for i := range tt.want {
				got = append(got, s.next(t))
				if i < len(tt.advance) {
					for _, d := range tt.advance[i] {
						tick(t, clk, d)
					}
				}
			}
			cancel()
			<-done
			if !slices.Equal(got, tt.want) {
				t.Errorf("calls = %v, want %v", got, tt.want)
			}
			if st := k.State(); st.Errors != tt.errors || st.Size != tt.size {
				t.Errorf("State = %+v, want %d errors, size %d", st, tt.errors, tt.size)
			}
		})
	}
}

// TestRunTimeoutError: the error of a read cancelled for its timeout says
// so, and names the source.
func TestRunTimeoutError(t *testing.T) {
	clk := clocktest.New(t0)
	k := newKeeper(clk, &bytes.Buffer{})
	s := newScript(clk, answer{block: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go source.Run(ctx, s, k, source.Loop{Timeout: 15 * time.Second})
	s.next(t)
	tick(t, clk, 15*time.Second)
	tick(t, clk, time.Second)
	s.next(t) // the retry: the failure was recorded before it
	err := k.State().LastError
	if err == nil || err.Error() != "read the relay's source consul: no answer within 15s: context canceled" {
		t.Errorf("LastError = %v", err)
	}
}

// TestWatch: Watch notices the set turning stale with no read at all (a
// read that hangs), within a second, and logs it once.
func TestWatch(t *testing.T) {
	clk := clocktest.New(t0)
	log, logs := consultest.NewLogger()
	k := source.NewKeeper(source.Options{Name: "kubernetes", Period: time.Second, MaxStale: 3 * time.Second, Clock: clk, Log: log})
	k.Good(addrs("10.1.0.9:8000"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.Watch(ctx) }()
	for range 5 {
		tick(t, clk, time.Second)
	}
	tick(t, clk, 0) // Watch sleeps again: its fifth Check is done
	cancel()
	<-done
	if got := len(logs.Grep("relay source stale")); got != 1 || !k.State().Stale {
		t.Errorf("stale logged %d times (state %+v), want once", got, k.State())
	}
}
