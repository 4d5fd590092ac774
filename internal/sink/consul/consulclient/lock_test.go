package consulclient

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// TestLockRetryBackoff checks that failures to take the lock are retried
// with doubling delays on the lock's clock, capped at the lock's RetryMax
// (a round, for bridges: back within a round of Consul answering), and
// logged once.
func TestLockRetryBackoff(t *testing.T) {
	lk := consultest.NewLocker()
	log, logs := consultest.NewLogger()
	clk := clocktest.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	refused := errors.New("failed to create session: Unexpected response code: 500 (rpc error)")
	lk.FailLocks(refused, refused, refused, refused)
	l := NewLockOn(context.Background(), lk, "bridge/lock", LockConfig{Log: log, Clock: clk, RetryMax: 3 * time.Second})
	l.Start()
	defer func() { _ = l.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
		if err := clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		at, _ := clk.NextDeadline()
		if got := at.Sub(clk.Now()); got != want {
			t.Errorf("retry in %s, want %s", got, want)
		}
		clk.Advance(want)
	}
	<-lk.Waiting
	if n := len(logs.Grep("cannot take the consul lock")); n != 1 {
		t.Errorf("%d warnings for 4 failures, want 1", n)
	}
	lk.Grant <- struct{}{}
	consultest.WaitFor(t, "leadership", l.Leader)
	if n := len(logs.Grep("consul lock acquired")); n != 1 {
		t.Errorf("%d acquisitions logged, want 1", n)
	}
}

// TestLockTerms: each acquisition begins a term that the work runs under;
// the loss of the lock ends it with fleet.ErrLeadershipLost, and the lock is
// released only once the work returned; work that returns by itself (it
// found another holder) ends its term and the lock is waited for again;
// Close ends the term with no loss.
func TestLockTerms(t *testing.T) {
	lk := consultest.NewLocker()
	log, logs := consultest.NewLogger()
	terms := make(chan context.Context)
	release := make(chan struct{})
	l := NewLockOn(context.Background(), lk, "fleet/leader", LockConfig{Log: log, Lead: func(term context.Context) {
		terms <- term
		select {
		case <-term.Done():
			<-release // the work takes a moment to stop
		case <-release: // returns by itself
		}
	}})
	l.Start()
	defer func() { _ = l.Close(context.Background()) }()

	// Lost: the term ends at once, the release waits for the work.
	<-lk.Waiting
	lk.Grant <- struct{}{}
	term := <-terms
	if !l.Leader() {
		t.Fatal("not leader in a term")
	}
	lk.Revoke()
	<-term.Done()
	if !errors.Is(context.Cause(term), fleet.ErrLeadershipLost) {
		t.Errorf("cause of a lost term = %v, want ErrLeadershipLost", context.Cause(term))
	}
	consultest.WaitFor(t, "follower", func() bool { return !l.Leader() })
	if n := lk.Unlocks(); n != 0 {
		t.Errorf("%d Unlock calls before the work returned, want 0", n)
	}
	release <- struct{}{}
	<-lk.Released
	if n := len(logs.Grep("consul lock lost")); n != 1 {
		t.Errorf("%d 'consul lock lost' lines, want 1", n)
	}

	// The work gives up: the term ends, the lock is released and waited for.
	<-lk.Waiting
	lk.Grant <- struct{}{}
	term = <-terms
	release <- struct{}{}
	<-term.Done()
	<-lk.Released
	if !errors.Is(context.Cause(term), fleet.ErrLeadershipLost) || l.Leader() {
		t.Errorf("work returned: cause %v, leader %v; want ErrLeadershipLost, follower", context.Cause(term), l.Leader())
	}

	// Close: the term ends without a loss, after the work returned.
	<-lk.Waiting
	lk.Grant <- struct{}{}
	term = <-terms
	go func() { <-term.Done(); release <- struct{}{} }()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cause := context.Cause(term); errors.Is(cause, fleet.ErrLeadershipLost) || cause == nil {
		t.Errorf("cause at Close = %v, want a plain cancellation", cause)
	}
	if l.Leader() {
		t.Error("leader after Close")
	}
}
