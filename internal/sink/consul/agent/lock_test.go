package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
)

// Leader election through a consultest.Locker: the sink registers servers only
// while it holds the lock.

// startWithoutLock runs Start while the lock is not granted: Start gives up
// after consulclient.FirstLockWait on the sink's clock.
func (h *harness) startWithoutLock() {
	h.t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.sink.Start(context.Background()) }()
	<-h.lk.Waiting // the loop is waiting for the lock
	if err := h.clk.WaitForTimers(context.Background(), 1); err != nil {
		h.t.Fatal(err)
	}
	h.clk.Advance(consulclient.FirstLockWait)
	if err := <-done; err != nil {
		h.t.Fatalf("Start: %v", err)
	}
}

// grant gives the lock to the waiting loop and waits until the sink leads.
func (h *harness) grant() {
	h.t.Helper()
	h.lk.Grant <- struct{}{}
	consultest.WaitFor(h.t, "leadership", h.sink.Leader)
}

// revoke loses the lock and waits until the loop has released it and is
// waiting for it again.
func (h *harness) revoke() {
	h.t.Helper()
	n := h.lk.Unlocks()
	h.lk.Revoke()
	consultest.WaitFor(h.t, "release after loss", func() bool { return h.lk.Unlocks() == n+1 })
	<-h.lk.Waiting
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
	h := newHarness(t, withLock(), withConfig(func(c *Config) { c.OnExit = consulclient.OnExitKeep }))
	go func() {
		<-h.lk.Waiting
		h.lk.Grant <- struct{}{}
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

// TestAgentLockRefusedByACL: a standby whose token may not take the lock
// (no session rule) fails Apply naming the rule, so /readyz says so; once
// the lock is taken Apply succeeds.
func TestAgentLockRefusedByACL(t *testing.T) {
	h := newHarness(t, withLock())
	h.lk.FailLocks(errors.New("failed to create session: Unexpected response code: 403 (" + consultest.Denied("session:write", "node-1") + ")"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait for the lock
	if err := h.sink.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.clk.WaitForTimers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	_, err := h.sink.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
	if !consulclient.IsACL(err) || !strings.Contains(err.Error(), `session "node-1" { policy = "write" }`) {
		t.Fatalf("Apply = %v, want the lock's ACL refusal naming the session rule", err)
	}
	h.clk.Advance(consulclient.LockRetryMin)
	<-h.lk.Waiting
	h.lk.Grant <- struct{}{}
	consultest.WaitFor(t, "leadership", h.sink.Leader)
	h.apply(snap(2, "10.0.0.1:8000"))
}
