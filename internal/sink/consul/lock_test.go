package consul

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

// Leader election through a fakeLocker: the sink registers servers only
// while it holds the lock.

// startWithoutLock runs Start while the lock is not granted: Start gives up
// after firstLockWait on the sink's clock.
func (h *harness) startWithoutLock() {
	h.t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.sink.Start(context.Background()) }()
	<-h.lk.waiting // the loop is waiting for the lock
	if err := h.clk.WaitForTimers(context.Background(), 1); err != nil {
		h.t.Fatal(err)
	}
	h.clk.Advance(firstLockWait)
	if err := <-done; err != nil {
		h.t.Fatalf("Start: %v", err)
	}
}

// grant gives the lock to the waiting loop and waits until the sink leads.
func (h *harness) grant() {
	h.t.Helper()
	h.lk.grant <- struct{}{}
	waitFor(h.t, "leadership", h.sink.Leader)
}

// revoke loses the lock and waits until the loop has released it and is
// waiting for it again.
func (h *harness) revoke() {
	h.t.Helper()
	n := h.lk.Unlocks()
	h.lk.Revoke()
	waitFor(h.t, "release after loss", func() bool { return h.lk.Unlocks() == n+1 })
	<-h.lk.waiting
	if h.sink.Leader() {
		h.t.Fatal("still leader after the lock was lost")
	}
}

func TestAgentLockApplyWithoutStart(t *testing.T) {
	h := newHarness(t, withLock())
	_, err := h.sink.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
	if !errors.Is(err, errNotStarted) {
		t.Fatalf("Apply before Start = %v, want errNotStarted", err)
	}
	if calls := h.fa.Calls(); len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
}

// TestAgentLockGainedAndLost follows a bridge through follower, leader,
// follower, leader and Close.
func TestAgentLockGainedAndLost(t *testing.T) {
	h := newHarness(t, withLock())
	h.fa.Put(api.AgentService{ID: "django-foreign", Service: "django", Address: "10.0.0.9", Port: 8000})
	servers := []string{sid("10.0.0.1:8000"), sid("10.0.0.2:8000")}
	s := snap(1, "10.0.0.1:8000", "10.0.0.2:8000")

	h.startWithoutLock()
	if h.sink.Leader() {
		t.Fatal("leader before the lock was granted")
	}
	// Follower: only the bridge's own service.
	res := h.apply(s)
	if got := h.fa.CallIDs(opRegister); !slices.Equal(got, []string{testBridgeSvc}) {
		t.Errorf("follower registered %v, want only %s", got, testBridgeSvc)
	}
	if res.Writes != 1 || !res.Diff.Empty() {
		t.Errorf("follower round = %+v, want 1 write, empty diff", res)
	}

	// Leader: reads back what it owns, then registers.
	h.grant()
	h.fa.Reset()
	s.Round = 2
	res = h.apply(s)
	if h.fa.Count(opList) != 1 || h.fa.Count(opTTL) != 1 || !sameStrings(slices.Sorted(slices.Values(h.fa.CallIDs(opRegister))), servers) {
		t.Errorf("new leader calls = %+v, want TTL, a read, and %v", h.fa.Calls(), servers)
	}
	if res.Writes != 3 || len(res.Diff.Added) != 2 {
		t.Errorf("new leader round = %+v, want 3 writes, 2 added", res)
	}
	s.Round = 3
	if res = h.apply(s); res.Writes != 1 {
		t.Errorf("leader quiet round = %+v, want 1 write", res)
	}

	// Lost: reads back and removes what it owns, nothing else.
	h.revoke()
	h.fa.Reset()
	s.Round = 4
	res = h.apply(s)
	if h.fa.Count(opList) != 1 || h.fa.Count(opRegister) != 0 || !sameStrings(slices.Sorted(slices.Values(h.fa.CallIDs(opDeregister))), servers) {
		t.Errorf("deposed leader calls = %+v, want TTL, a read, deregistration of %v", h.fa.Calls(), servers)
	}
	if res.Writes != 3 || len(res.Diff.Removed) != 2 {
		t.Errorf("deposed round = %+v, want 3 writes, 2 removed", res)
	}
	if got, want := h.fa.IDs(), []string{"django-foreign", testBridgeSvc}; !slices.Equal(got, want) {
		t.Errorf("agent holds %v, want %v", got, want)
	}
	s.Round = 5
	if res = h.apply(s); res.Writes != 1 {
		t.Errorf("follower quiet round = %+v, want 1 write", res)
	}

	// Leader again.
	h.grant()
	h.fa.Reset()
	s.Round = 6
	if res = h.apply(s); res.Writes != 3 || h.fa.Count(opRegister) != 2 {
		t.Errorf("leader again = %+v, calls %+v; want 2 registrations", res, h.fa.Calls())
	}

	// Close deregisters, then releases the lock.
	h.fa.Reset()
	unlocks := h.lk.Unlocks()
	if err := h.sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := h.fa.CallIDs(opDeregister), append(slices.Clone(servers), testBridgeSvc); !slices.Equal(got, want) {
		t.Errorf("Close deregistered %v, want %v", got, want)
	}
	if got := h.lk.Unlocks(); got != unlocks+1 {
		t.Errorf("Close made %d Unlock calls, want 1", got-unlocks)
	}
	if h.sink.Leader() {
		t.Error("leader after Close")
	}
	if got, want := h.fa.IDs(), []string{"django-foreign"}; !slices.Equal(got, want) {
		t.Errorf("agent holds %v after Close, want %v", got, want)
	}
}

// TestAgentLockLoneBridge checks that Start returns as soon as the lock is
// held, so a lone bridge registers in its first round.
func TestAgentLockLoneBridge(t *testing.T) {
	h := newHarness(t, withLock(), withConfig(func(c *Config) { c.OnExit = OnExitKeep }))
	go func() {
		<-h.lk.waiting
		h.lk.grant <- struct{}{}
	}()
	if err := h.sink.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !h.sink.Leader() {
		t.Fatal("Start returned without the lock, though it was granted")
	}
	res := h.apply(snap(1, "10.0.0.1:8000"))
	if res.Writes != 2 || len(res.Diff.Added) != 1 {
		t.Errorf("first round = %+v, want bridge + 1 server", res)
	}
	// OnExit keep: Close writes nothing but still releases the lock.
	h.fa.Reset()
	if err := h.sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.fa.Calls()) != 0 || h.lk.Unlocks() != 1 || h.sink.Leader() {
		t.Errorf("Close with keep: calls %+v, unlocks %d, leader %v; want no call, 1 unlock, follower",
			h.fa.Calls(), h.lk.Unlocks(), h.sink.Leader())
	}
}

// TestLockRetryBackoff checks that failures to take the lock are retried
// with doubling delays on the lock's clock, capped at the lock's retryMax
// (a round, for bridges: back within a round of Consul answering), and
// logged once.
func TestLockRetryBackoff(t *testing.T) {
	h := newHarness(t, withLock())
	refused := errors.New("failed to create session: Unexpected response code: 500 (rpc error)")
	h.lk.FailLocks(refused, refused, refused, refused)
	h.sink.lock.retryMax = 3 * time.Second
	h.sink.lock.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
		if err := h.clk.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		at, _ := h.clk.NextDeadline()
		if got := at.Sub(h.clk.Now()); got != want {
			t.Errorf("retry in %s, want %s", got, want)
		}
		h.clk.Advance(want)
	}
	<-h.lk.waiting
	if n := len(h.logs.Grep("cannot take the consul lock")); n != 1 {
		t.Errorf("%d warnings for 4 failures, want 1", n)
	}
	h.grant()
	if n := len(h.logs.Grep("consul lock acquired")); n != 1 {
		t.Errorf("%d acquisitions logged, want 1", n)
	}
}

// TestLockTerms: each acquisition begins a term that the work runs under;
// the loss of the lock ends it with fleet.ErrLeadershipLost, and the lock is
// released only once the work returned; work that returns by itself (it
// found another holder) ends its term and the lock is waited for again;
// Close ends the term with no loss.
func TestLockTerms(t *testing.T) {
	lk := newFakeLocker()
	log, logs := newTestLogger()
	l := newLock(context.Background(), lk, "fleet/leader", log, nil, nil)
	terms := make(chan context.Context)
	release := make(chan struct{})
	l.lead = func(term context.Context) {
		terms <- term
		select {
		case <-term.Done():
			<-release // the work takes a moment to stop
		case <-release: // returns by itself
		}
	}
	l.Start()
	defer func() { _ = l.Close(context.Background()) }()

	// Lost: the term ends at once, the release waits for the work.
	<-lk.waiting
	lk.grant <- struct{}{}
	term := <-terms
	if !l.Leader() {
		t.Fatal("not leader in a term")
	}
	lk.Revoke()
	<-term.Done()
	if !errors.Is(context.Cause(term), fleet.ErrLeadershipLost) {
		t.Errorf("cause of a lost term = %v, want ErrLeadershipLost", context.Cause(term))
	}
	waitFor(t, "follower", func() bool { return !l.Leader() })
	if n := lk.Unlocks(); n != 0 {
		t.Errorf("%d Unlock calls before the work returned, want 0", n)
	}
	release <- struct{}{}
	<-lk.unlocks
	if n := len(logs.Grep("consul lock lost")); n != 1 {
		t.Errorf("%d 'consul lock lost' lines, want 1", n)
	}

	// The work gives up: the term ends, the lock is released and waited for.
	<-lk.waiting
	lk.grant <- struct{}{}
	term = <-terms
	release <- struct{}{}
	<-term.Done()
	<-lk.unlocks
	if !errors.Is(context.Cause(term), fleet.ErrLeadershipLost) || l.Leader() {
		t.Errorf("work returned: cause %v, leader %v; want ErrLeadershipLost, follower", context.Cause(term), l.Leader())
	}

	// Close: the term ends without a loss, after the work returned.
	<-lk.waiting
	lk.grant <- struct{}{}
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
