package consul

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Catalog mode through fakeCatalog: sessions that expire, leader changes
// and the guard on the leader's writes (harness in catalog_test.go).

// foreignLines are the catalog lines about nodes whose name has "foreign".
func (h *catHarness) foreignLines() []string {
	var out []string
	for _, l := range h.fc.Catalog() {
		if strings.Contains(l, "foreign") {
			out = append(out, l)
		}
	}
	return out
}

// TestCatalogSessionExpires: when b's session lapses, its observation goes
// with it; within the start-up grace nothing turns critical, after it the
// server only b observed does, the shared one stays passing, and after
// DeregisterAfter the unobserved server's node is deleted. Instances of the
// service that are not the fleet's are never touched.
func TestCatalogSessionExpires(t *testing.T) {
	h, _, b := twoBridges(t)
	h.fc.PutService("foreign-1", "10.0.0.3", api.AgentService{ID: "django-x", Service: "django", Address: "10.0.0.3", Port: 8000})
	h.fc.PutService("foreign-2", "10.0.0.3", api.AgentService{ID: "django-y", Service: "django", Address: "10.0.0.3", Port: 8000,
		Meta: map[string]string{MetaManagedBy: ManagedByValue, MetaFleet: "udp-discovery-bridge/other"}})
	foreign := h.foreignLines()

	h.fc.ExpireSession(h.session(b))
	if keys := h.fc.Keys(testObsPrefix + "b/"); len(keys) != 0 {
		t.Fatalf("keys of the expired session still there: %v", keys)
	}
	// Within the grace: the shared server loses an observer, nothing fails.
	// (one transaction: when it shows, the whole plan is written)
	h.eventually("shared server down to 1 observer", func() bool { return h.observed("10.0.0.2:8000", api.HealthPassing, "1") })
	if !h.observed("10.0.0.3:8000", api.HealthPassing, "1") {
		t.Error("server only b observed is not passing during the start-up grace")
	}
	// After the grace: critical, with the time it went unobserved.
	h.pump("unobserved server critical", time.Second, func() bool { return h.observed("10.0.0.3:8000", api.HealthCritical, "1") })
	_, _, c, _ := h.server("10.0.0.3:8000")
	since, ok := parseSince(c.Output)
	if !ok || since.After(h.clk.Now()) {
		t.Errorf("critical check output %q: want unobserved since a past time", c.Output)
	}
	// After DeregisterAfter: removed.
	h.pump("unobserved server removed", 5*time.Second, func() bool { return !slices.Contains(h.fc.Nodes(), sid("10.0.0.3:8000")) })
	if d := h.clk.Now().Sub(since); d < time.Minute || d > time.Minute+10*time.Second {
		t.Errorf("removed %s after it turned critical, want about DeregisterAfter (1m)", d)
	}
	if !h.observed("10.0.0.1:8000", api.HealthPassing, "1") || !h.observed("10.0.0.2:8000", api.HealthPassing, "1") {
		t.Error("observed servers are not registered and passing any more")
	}
	if got := h.foreignLines(); !slices.Equal(got, foreign) {
		t.Errorf("foreign entries changed:\n%v\nwant\n%v", got, foreign)
	}
	for _, op := range h.fc.Applied() {
		if strings.Contains(op, "foreign") {
			t.Errorf("applied %q", op)
		}
	}
}

// TestCatalogLeaderLost: when the leader's session lapses the other bridge
// takes the lock; its first reconcile writes nothing (nothing changed) and
// it then registers new servers, including from the old leader's new
// session.
func TestCatalogLeaderLost(t *testing.T) {
	h := newCatHarness(t)
	a, b := h.bridge("a"), h.bridge("b")
	h.start(a)
	h.pump("a leads", 50*time.Millisecond, a.c.Leader)
	h.start(b)
	h.apply(a, snap(1)) // a observes nothing: its loss changes no server
	h.apply(b, snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))
	h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "1"})
	txns, applied := h.fc.Count("Txn"), h.fc.Applied()

	old := h.session(a)
	h.fc.ExpireSession(old)
	h.pump("b leads", 200*time.Millisecond, b.c.Leader)
	h.pump("b merges", 200*time.Millisecond, func() bool { return testutil.ToFloat64(b.c.metrics.observers) == 1 })
	h.replanned(2, time.Second)
	if got := h.fc.Count("Txn"); got != txns || !slices.Equal(h.fc.Applied(), applied) {
		t.Errorf("new leader sent %d transactions (applied %v), want none", got-txns, h.fc.Applied()[len(applied):])
	}
	if a.c.Leader() {
		t.Error("a still leads after its session expired")
	}
	if kv, _ := h.fc.KV(testLockKey); kv.Session != h.session(b) {
		t.Errorf("lock key held by %q, want b's session", kv.Session)
	}

	h.apply(b, snap(2, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"))
	h.settled(map[string]string{"10.0.0.3:8000": "1"})
	// a publishes again once it has a new session.
	h.pump("a re-publishes", time.Second, func() bool {
		_, err := a.c.Apply(context.Background(), snap(2, "10.0.0.4:8000"))
		return err == nil
	})
	if s := h.session(a); s == "" || s == old {
		t.Errorf("a's session = %q, want a new one", s)
	}
	h.settled(map[string]string{"10.0.0.4:8000": "1"})
	if a.c.Leader() || !b.c.Leader() {
		t.Errorf("leaders: a %v, b %v; want b only", a.c.Leader(), b.c.Leader())
	}
}

// TestCatalogStaleLeaderCannotWrite: a write whose guard finds the lock
// key held by another session, or gone, is errNotLeader and changes
// nothing, even across several transactions.
func TestCatalogStaleLeaderCannotWrite(t *testing.T) {
	h := newCatHarness(t)
	c := h.bridge("a").c
	if err := h.fc.RegisterNode(&api.CatalogRegistration{Node: "n", Address: "127.0.0.1"}, nil); err != nil {
		t.Fatal(err)
	}
	mine, err := h.fc.CreateSession(&api.SessionEntry{Node: "n", Behavior: api.SessionBehaviorDelete}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := h.fc.CreateSession(&api.SessionEntry{Node: "n", Behavior: api.SessionBehaviorDelete}, nil)
	var p catalogPlan
	for i := range 30 { // 90 operations: two transactions
		p.register = append(p.register, c.shape().entryFor(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 8000), &observed{bridges: 1}))
	}
	before := h.fc.Catalog()
	for _, holder := range []string{"", other} {
		if holder != "" {
			h.fc.PutKV(testLockKey, []byte("b"), holder)
		}
		txns := h.fc.Count("Txn")
		n, err := c.write(context.Background(), mine, p, map[string]catalogEntry{})
		if !errors.Is(err, errNotLeader) || n != 0 {
			t.Errorf("lock held by %q: write = %d, %v; want 0, errNotLeader", holder, n, err)
		}
		if got := h.fc.Count("Txn") - txns; got != 2 {
			t.Errorf("lock held by %q: %d transactions, want 2", holder, got)
		}
		if got := h.fc.Catalog(); !slices.Equal(got, before) {
			t.Errorf("lock held by %q: the catalog changed: %v", holder, got)
		}
	}
	// The same write under the lock goes through.
	h.fc.ExpireSession(other)
	h.fc.PutKV(testLockKey, []byte("a"), mine)
	if n, err := c.write(context.Background(), mine, p, map[string]catalogEntry{}); err != nil || n != 90 {
		t.Errorf("write as leader = %d, %v; want 90 operations", n, err)
	}
}

// TestCatalogRetryReapAfterFailure: when the removal of a server fails,
// the leader retries after its backoff; a blocking read with no wait time
// would wait for Consul's default of 5 minutes instead.
func TestCatalogRetryReapAfterFailure(t *testing.T) {
	h, a := loneBridge(t, nil, "10.0.0.1:8000", "10.0.0.2:8000")
	h.apply(a, snap(2, "10.0.0.1:8000"))
	h.pump("critical", time.Second, func() bool { return h.observed("10.0.0.2:8000", api.HealthCritical, "1") })
	h.fc.FailTxnOn(func(op *api.TxnOp) bool { return op.Node != nil && op.Node.Verb == api.NodeDelete })
	txns := h.fc.Count("Txn")
	h.pump("removal attempted", time.Second, func() bool { return h.fc.Count("Txn") > txns })
	failed := h.clk.Now()
	h.pump("removal retried", 100*time.Millisecond, func() bool { return !slices.Contains(h.fc.Nodes(), sid("10.0.0.2:8000")) })
	if d := h.clk.Now().Sub(failed); d > 10*time.Second {
		t.Errorf("removal retried %s after a failure, want within the backoff (1s)", d)
	}
}
