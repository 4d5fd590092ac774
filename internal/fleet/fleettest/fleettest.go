// Package fleettest is the conformance suite of a bridge's side of the
// fleet (package member) on a registry: Run checks, on the registry's fake,
// what every registry's sink must do whatever its store and election.
package fleettest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// Bridge is one started bridge of a sink under test.
type Bridge interface {
	Apply(ctx context.Context, s endpoint.Snapshot) (sink.Result, error)
	Leader() bool
	Close(ctx context.Context) error
}

// Fleet is a sink's fake registry with bridges on it, on a fake clock.
type Fleet interface {
	// Bridge starts a bridge of bridge_id id (an id already used: its
	// successor), with on_exit handing over or withdrawing as the sink
	// does by default.
	Bridge(t *testing.T, id string) Bridge
	// Lead starts a bridge of id and makes it the leader.
	Lead(t *testing.T, id string) Bridge
	// Now is the fake clock's time; Round the bridges' round.
	Now() time.Time
	Round() time.Duration
	// Settle lets the leader read and write what the bridges published.
	Settle(t *testing.T)
	// Observed reports whether the registry lists addr as observed
	// (passing).
	Observed(addr string) bool
	// Refuse makes the registry refuse the leader's writes for its rights
	// (a 403) and waits until leader, leading, met the refusal.
	Refuse(t *testing.T, leader Bridge)
}

// TermEnder is a Fleet that can end a leader's term and keep it from
// winning another: another holder takes the leadership.
type TermEnder interface {
	EndTerm(t *testing.T, leader Bridge)
}

// HandOver is a Fleet whose bridges hand their observation over on exit
// (Consul: on_exit deregister releases the keys; Kubernetes: on_exit keep
// leaves the ConfigMap and the Lease for the successor).
type HandOver interface {
	HandOverBridge(t *testing.T, id string) Bridge
}

// Snap is a fresh snapshot (at f.Now()) of round with addrs.
func Snap(f Fleet, round uint64, addrs ...string) endpoint.Snapshot {
	s := endpoint.Snapshot{Round: round, At: f.Now()}
	for _, a := range addrs {
		ap := netip.MustParseAddrPort(a)
		s.Endpoints = append(s.Endpoints, endpoint.Endpoint{Addr: ap, Network: netip.PrefixFrom(ap.Addr(), 24).Masked()})
	}
	return s
}

// Run runs the conformance cases, each on a new Fleet from factory.
func Run(t *testing.T, factory func(t *testing.T) Fleet) { RunEach(t, nil, factory) }

// RunEach is Run with each case run by each (nil: directly), e.g.
// synctest.Test for a fleet whose bridges and fakes live in a bubble.
func RunEach(t *testing.T, each func(t *testing.T, f func(t *testing.T)), factory func(t *testing.T) Fleet) {
	ctx := context.Background()
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			if each == nil {
				f(t)
				return
			}
			each(t, f)
		})
	}
	run("UnchangedObservationCostsNoWrite", func(t *testing.T) {
		f := factory(t)
		a := f.Bridge(t, "a")
		if res, err := a.Apply(ctx, Snap(f, 1, "10.0.0.1:8000")); err != nil || res.Writes == 0 {
			t.Fatalf("first Apply = %d writes, %v; want a publish", res.Writes, err)
		}
		for r := uint64(2); r <= 4; r++ {
			if res, err := a.Apply(ctx, Snap(f, r, "10.0.0.1:8000")); err != nil || res.Writes != 0 {
				t.Errorf("round %d, unchanged: %d writes, %v; want 0", r, res.Writes, err)
			}
		}
		if res, err := a.Apply(ctx, Snap(f, 5, "10.0.0.1:8000", "10.0.0.2:8000")); err != nil || res.Writes == 0 {
			t.Errorf("changed observation: %d writes, %v; want a publish", res.Writes, err)
		}
	})
	run("StaleSnapshotNotPublished", func(t *testing.T) {
		f := factory(t)
		a := f.Lead(t, "a")
		old := Snap(f, 1, "10.0.0.9:8000")
		old.At = f.Now().Add(-3 * f.Round())
		if res, err := a.Apply(ctx, old); err != nil || res.Writes != 0 {
			t.Fatalf("stale snapshot: %d writes, %v; want 0 and no error", res.Writes, err)
		}
		f.Settle(t)
		if f.Observed("10.0.0.9:8000") {
			t.Error("a server of a stale snapshot is observed")
		}
	})
	run("StandingFaultReported", func(t *testing.T) {
		f := factory(t)
		a := f.Lead(t, "a")
		if _, err := a.Apply(ctx, Snap(f, 1, "10.0.0.1:8000")); err != nil {
			t.Fatal(err)
		}
		f.Refuse(t, a)
		if _, err := a.Apply(ctx, Snap(f, 3, "10.0.0.1:8000")); err == nil {
			t.Error("Apply as leader with the registry refusing the leader: no error, want the standing fault")
		}
	})
	run("TermLossStopsWrites", func(t *testing.T) {
		f := factory(t)
		te, ok := f.(TermEnder)
		if !ok {
			t.Skip("the fleet cannot end a term")
		}
		a := f.Lead(t, "a")
		if _, err := a.Apply(ctx, Snap(f, 1, "10.0.0.1:8000")); err != nil {
			t.Fatal(err)
		}
		f.Settle(t)
		te.EndTerm(t, a)
		if a.Leader() {
			t.Fatal("still leader after its term ended")
		}
		if _, err := a.Apply(ctx, Snap(f, 2, "10.0.0.1:8000", "10.0.0.2:8000")); err != nil {
			t.Fatal(err)
		}
		f.Settle(t)
		if f.Observed("10.0.0.2:8000") {
			t.Error("a bridge whose term ended still wrote the registry")
		}
	})
	run("HandOverKeepsServersObserved", func(t *testing.T) {
		f := factory(t)
		ho, ok := f.(HandOver)
		if !ok {
			t.Skip("the fleet's bridges do not hand over")
		}
		a := f.Lead(t, "a")
		b := ho.HandOverBridge(t, "b")
		if _, err := a.Apply(ctx, Snap(f, 1, "10.0.0.1:8000")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Apply(ctx, Snap(f, 1, "10.0.0.2:8000")); err != nil {
			t.Fatal(err)
		}
		f.Settle(t)
		if !f.Observed("10.0.0.2:8000") {
			t.Fatal("b's server not observed before the hand-over")
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		f.Settle(t)
		if !f.Observed("10.0.0.2:8000") {
			t.Fatal("b's server not observed after b handed over")
		}
		b2 := ho.HandOverBridge(t, "b")
		if _, err := b2.Apply(ctx, Snap(f, 1, "10.0.0.2:8000")); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			f.Settle(t)
			if !f.Observed("10.0.0.2:8000") {
				t.Fatal("b's server not observed while its successor took over")
			}
		}
	})
}
