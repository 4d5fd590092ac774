package catalog

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
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
	inBubble(t, func(t *testing.T) {
		h, _, b := twoBridges(t)
		h.fc.PutService("foreign-1", "10.0.0.3", api.AgentService{ID: "django-x", Service: "django", Address: "10.0.0.3", Port: 8000})
		h.fc.PutService("foreign-2", "10.0.0.3", api.AgentService{ID: "django-y", Service: "django", Address: "10.0.0.3", Port: 8000,
			Meta: map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: "udp-discovery-bridge/other"}})
		foreign := h.foreignLines()

		h.die(b)
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
	})
}

// catalogOps are the applied operations that are not observation keys.
func catalogOps(applied []string) []string {
	return slices.DeleteFunc(slices.Clone(applied), func(op string) bool { return strings.Contains(op, testObsPrefix) })
}

// die stops b as a crash does (its session is left to expire, with no
// clean exit) and expires the session, as Consul does after its TTL.
func (h *catHarness) die(b *catBridge) {
	h.t.Helper()
	sess := h.session(b)
	b.c.cfg.OnExit = consulclient.OnExitKeep
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.c.Close(ctx); err != nil {
		h.t.Fatalf("close %s: %v", b.id, err)
	}
	h.fc.ExpireSession(sess)
}

// TestCatalogLeaderLost: when the leader's session lapses the other bridge
// takes the lock; its first reconcile writes nothing (nothing changed) and
// it then registers new servers, including from the old leader's new
// session.
func TestCatalogLeaderLost(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a, b := h.bridge("a"), h.bridge("b")
		h.start(a)
		h.pump("a leads", 50*time.Millisecond, a.c.Leader)
		h.start(b)
		h.apply(a, snap(1)) // a observes nothing: its loss changes no server
		h.apply(b, snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))
		h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "1"})
		applied := catalogOps(h.fc.Applied())

		old := h.session(a)
		// The fake has no lock-delay: a, alive, would stand again on a new
		// session at once and could win the race for the free lock. Hold its
		// new session back until b leads, as Consul's lock-delay holds back
		// every new holder of a lapsed session's lock (b, already waiting,
		// takes it when the delay ends; here at once).
		h.fc.FailNext("CreateSession", -1, nil)
		h.fc.ExpireSession(old)
		h.pump("b leads", 200*time.Millisecond, b.c.Leader)
		h.fc.Heal("CreateSession")
		// a, alive, republishes its (empty) observation on a new session at
		// once: two observers.
		h.pump("b merges", 200*time.Millisecond, func() bool { return testutil.ToFloat64(b.c.metrics.observers) == 2 })
		h.replanned(2, time.Second)
		if got := catalogOps(h.fc.Applied()); !slices.Equal(got, applied) {
			t.Errorf("new leader wrote %v to the catalog, want nothing", got[len(applied):])
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
	})
}

// TestCatalogStaleLeaderCannotWrite: a write whose guard finds the lock
// key held by another session, or gone, is errNotLeader and changes
// nothing, even across several transactions.
func TestCatalogStaleLeaderCannotWrite(t *testing.T) {
	inBubble(t, func(t *testing.T) {
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
			p.Register = append(p.Register, c.shape().entryFor(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 8000), fleet.Observed{Bridges: 1}))
		}
		before := h.fc.Catalog()
		for _, holder := range []string{"", other} {
			if holder != "" {
				h.fc.PutKV(testLockKey, []byte("b"), holder)
			}
			txns := h.fc.Count("Txn")
			// Both batches go out before either answers (the leader sends no
			// more once a guard said it no longer leads).
			c.api = &txnBarrier{fakeCatalog: h.fc, n: 2, all: make(chan struct{})}
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
	})
}

// txnBarrier holds each transaction until n are in flight (a second at
// most, on the bubble's clock: it passes only once nothing else can
// happen), then lets them through to the fake.
type txnBarrier struct {
	*fakeCatalog
	n   int32
	in  atomic.Int32
	all chan struct{}
}

func (b *txnBarrier) Txn(ops api.TxnOps, q *api.QueryOptions) (bool, *api.TxnResponse, error) {
	if b.in.Add(1) == b.n {
		close(b.all)
	}
	select {
	case <-b.all:
	case <-time.After(time.Second):
	}
	return b.fakeCatalog.Txn(ops, q)
}

// TestCatalogRetryReapAfterFailure: when the removal of a server fails,
// the leader retries after its backoff; a blocking read with no wait time
// would wait for Consul's default of 5 minutes instead.
func TestCatalogRetryReapAfterFailure(t *testing.T) {
	inBubble(t, func(t *testing.T) {
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
	})
}

// TestCatalogRepairsItsObservation: a plain PUT over this bridge's key
// (which keeps the session binding, as Consul does), a delete, or an extra
// key under its name are found at the next Apply of an unchanged snapshot
// and undone in one transaction; each repair is counted.
func TestCatalogRepairsItsObservation(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tamper func(h *catHarness, sess string)
	}{
		{"overwritten", func(h *catHarness, sess string) { h.fc.PutKV(testObsPrefix+"a/0", []byte("garbage"), sess) }},
		{"unbound", func(h *catHarness, _ string) { h.fc.PutKV(testObsPrefix+"a/0", []byte("garbage"), "") }},
		{"deleted", func(h *catHarness, _ string) {
			_, _, _ = h.fc.Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: testObsPrefix + "a/0"}}}, &api.QueryOptions{})
		}},
		{"extra key", func(h *catHarness, sess string) { h.fc.PutKV(testObsPrefix+"a/zz", []byte("garbage"), sess) }},
	} {
		t.Run(tt.name, bubble(func(t *testing.T) {
			h, a := loneBridge(t, nil, "10.0.0.1:8000", "10.0.0.2:8000")
			sess := h.session(a)
			want, _ := h.fc.KV(testObsPrefix + "a/0")
			tt.tamper(h, sess)
			if n := h.apply(a, snap(2, "10.0.0.1:8000", "10.0.0.2:8000")); n == 0 {
				t.Fatal("the unchanged snapshot after tampering wrote nothing")
			}
			got, ok := h.fc.KV(testObsPrefix + "a/0")
			if !ok || got.Session != sess || !bytes.Equal(got.Value, want.Value) {
				t.Errorf("after the repair the key is %+v (%v), want the published value held by %s", got, ok, sess)
			}
			if keys := h.fc.Keys(testObsPrefix + "a/"); !slices.Equal(keys, []string{testObsPrefix + "a/0"}) {
				t.Errorf("keys under a/ = %v, want only a/0", keys)
			}
			if v := testutil.ToFloat64(a.c.metrics.repairs); v != 1 {
				t.Errorf("repairs = %v, want 1", v)
			}
			if n := h.apply(a, snap(3, "10.0.0.1:8000", "10.0.0.2:8000")); n != 0 {
				t.Errorf("an untouched key was rewritten (%d writes)", n)
			}
		}))
	}
}

// TestCatalogRepublishesOnANewSession: a bridge whose session Consul lost
// (an outage, a data loss) publishes its last fresh snapshot on the new
// session at once, without waiting for an Apply; a snapshot older than two
// rounds is neither republished nor published.
func TestCatalogRepublishesOnANewSession(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a", func(c *Config) { c.Round = 10 * time.Second })
		h.start(a)
		h.pump("a leads", 50*time.Millisecond, a.c.Leader)
		s := snap(1, "10.0.0.1:8000")
		s.At = h.clk.Now()
		if _, err := a.c.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		old := h.session(a)
		h.fc.ExpireSession(old)
		h.pump("the observation is back on a new session", 50*time.Millisecond, func() bool {
			kv, ok := h.fc.KV(testObsPrefix + "a/0")
			return ok && kv.Session != "" && kv.Session != old
		})

		// Twenty seconds later the last snapshot is stale: not republished.
		h.clk.Advance(21 * time.Second)
		old = h.session(a)
		h.fc.ExpireSession(old)
		h.pump("a new session", 50*time.Millisecond, func() bool { s := h.session(a); return s != "" && s != old })
		h.replanned(2, 100*time.Millisecond)
		if keys := h.fc.Keys(testObsPrefix + "a/"); len(keys) != 0 {
			t.Errorf("a stale snapshot was republished: %v", keys)
		}
		if n, err := a.c.Apply(context.Background(), s); err != nil || n.Writes != 0 {
			t.Errorf("Apply of a stale snapshot = %d writes, %v; want 0, nil", n.Writes, err)
		}
		if keys := h.fc.Keys(testObsPrefix + "a/"); len(keys) != 0 {
			t.Errorf("a stale snapshot was published: %v", keys)
		}
		s.At = h.clk.Now()
		if n, err := a.c.Apply(context.Background(), s); err != nil || n.Writes != 1 {
			t.Errorf("Apply of a fresh snapshot = %d writes, %v; want 1, nil", n.Writes, err)
		}
	})
}

// TestCatalogLeaderHoldsAfterAnOutage: while the leader cannot read
// Consul, b's session lapses and its observation goes. When Consul answers
// again the leader re-reads everything and, for a start-up grace, treats
// b's missing observation as unknown: b's server stays passing; only after
// the grace, with b still silent, does it turn critical.
func TestCatalogLeaderHoldsAfterAnOutage(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, _, b := twoBridges(t)
		h.replanned(2, time.Second) // past the first grace
		from := h.fc.Count("ListKV")
		h.fc.FailNext("ListKV", 5, nil)
		// Wake the leader's read under way (a key that is no observation), so
		// that its next reads fail; only then does b go.
		h.replannedAfter(func() { h.fc.PutKV(testObsPrefix+"wake", nil, "") })
		h.die(b)
		// Five failed reads, then one that succeeds, merged and written by the
		// time the next read starts.
		h.pump("reads fail and recover", 100*time.Millisecond, func() bool { return h.fc.Count("ListKV") >= from+7 })
		recovered := h.clk.Now()
		if !h.observed("10.0.0.3:8000", api.HealthPassing, "1") {
			t.Fatal("b's server not passing right after Consul answered again")
		}
		h.pump("b's server critical after the grace", time.Second, func() bool { return h.observed("10.0.0.3:8000", api.HealthCritical, "1") })
		if d := h.clk.Now().Sub(recovered); d < 10*time.Second {
			t.Errorf("critical %s after the recovery, want after the 10s grace", d)
		}
	})
}

// TestCatalogLeaderBridgesAnOverwrittenKey: garbage PUT over b's key (its
// session binding kept) does not cost b's servers while b repairs it; the
// leader warns once with the key and counts it. Left unrepaired past the
// grace, b's exclusive server turns critical.
func TestCatalogLeaderBridgesAnOverwrittenKey(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a, b := twoBridges(t)
		h.replanned(2, time.Second)
		key := testObsPrefix + "b/0"
		// The blocking read under way wakes at the change; the next one starts
		// once that read was merged and written.
		h.replannedAfter(func() { h.fc.PutKV(key, []byte("garbage"), h.session(b)) })
		if !h.observed("10.0.0.3:8000", api.HealthPassing, "1") {
			t.Fatalf("b's server lost its observer at the overwrite: %v", a.logs.Lines()[len(a.logs.Lines())-5:])
		}
		warns := a.logs.Grep("written by someone other than its bridge")
		if len(warns) != 1 || !strings.Contains(warns[0], `"key":"`+key+`"`) || !strings.Contains(warns[0], `"level":"warn"`) {
			t.Errorf("leader warnings = %v, want one naming %s", warns, key)
		}
		if v := testutil.ToFloat64(a.c.metrics.errors.WithLabelValues("observation")); v != 1 {
			t.Errorf("errors{observation} = %v, want 1", v)
		}
		// b repairs at its next round; nothing turned critical.
		h.replannedAfter(func() { h.apply(b, snap(2, "10.0.0.2:8000", "10.0.0.3:8000")) })
		if !h.observed("10.0.0.3:8000", api.HealthPassing, "1") {
			t.Fatal("b's server not passing after the repair")
		}
		// Overwritten again and never repaired: critical after the grace.
		h.fc.PutKV(key, []byte("garbage again"), h.session(b))
		h.pump("b's server critical", time.Second, func() bool { return h.observed("10.0.0.3:8000", api.HealthCritical, "1") })
	})
}

// TestCatalogLeaderStopsWhenItsLockGoes: the lock key is taken away from
// the leader's session (the session itself lives on). The leader's term
// ends at once: it stops, saying so, without waiting for its blocking read
// of the observations to end (the clock does not move), and writes nothing
// more; the lock is free, so the same bridge, its session intact, takes it
// again and leads a new term.
func TestCatalogLeaderStopsWhenItsLockGoes(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a := loneBridge(t, nil, "10.0.0.1:8000")
		h.eventually("leader blocked in a read", func() bool { return h.clk.Pending() > 0 })
		txns := h.fc.Count("Txn")
		h.fc.PutKV(testLockKey, []byte("someone"), "") // the key changes: the lock is lost
		h.eventually("the leader says it stopped", func() bool {
			return len(a.logs.Grep("leadership lost; stopped writing the catalog")) == 1
		})
		if got := h.fc.Count("Txn"); got != txns {
			t.Errorf("%d transactions after the lock was lost", got-txns)
		}
		h.pump("leads again", 50*time.Millisecond, func() bool { return len(a.logs.Grep("leading: merging observations")) == 2 })
		h.pump("leader", 50*time.Millisecond, a.c.Leader)
		if kv, _ := h.fc.KV(testLockKey); kv.Session != h.session(a) {
			t.Errorf("lock key held by %q, want a's session", kv.Session)
		}
	})
}

// TestCatalogApplyBeforeStart: Apply before Start says so, without naming a
// lock (catalog mode has none of its own).
func TestCatalogApplyBeforeStart(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		_, err := a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
		if !errors.Is(err, errCatalogNotStarted) || strings.Contains(err.Error(), "lock") {
			t.Errorf("Apply before Start = %v, want errCatalogNotStarted", err)
		}
	})
}

// TestCatalogLogsEveryReconcileThatWrote: a leader that turns three
// servers critical and later removes them, three writes each time, logs
// both reconciles at INFO.
func TestCatalogLogsEveryReconcileThatWrote(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a := loneBridge(t, nil, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000")
		before := len(a.logs.Grep("catalog reconciled"))
		h.apply(a, snap(2))
		h.pump("removed", time.Second, func() bool { return len(h.fc.Nodes()) == 1 }) // the fleet's own node
		var got []string
		for _, l := range a.logs.Grep("catalog reconciled")[before:] {
			if strings.Contains(l, `"level":"info"`) && strings.Contains(l, `"writes":3`) &&
				(strings.Contains(l, `"critical":3`) || strings.Contains(l, `"removed":3`)) {
				got = append(got, l)
			}
		}
		if len(got) != 2 {
			t.Errorf("reconcile lines after the servers went = %v, want one of 3 turned critical and one of 3 removed", a.logs.Grep("catalog reconciled")[before:])
		}
	})
}

// TestCatalogLoneLeaderBackAtOnce: the session of a lone leader is
// destroyed (by hand, or it expired): the loss of the lock makes it check
// its session at once, not at its next renewal, so a new session publishes
// its observation again and it leads again without the clock moving.
func TestCatalogLoneLeaderBackAtOnce(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a := loneBridge(t, func(c *Config) { c.Round = 0 }, "10.0.0.1:8000")
		old := h.session(a)
		h.fc.ExpireSession(old)
		h.eventually("a new session", func() bool { s := h.session(a); return s != "" && s != old })
		h.eventually("leading again", func() bool { return len(a.logs.Grep("leading: merging observations")) == 2 && a.c.Leader() })
		h.eventually("the observation republished", func() bool {
			kv, ok := h.fc.KV(testObsPrefix + "a/0")
			return ok && kv.Session == h.session(a)
		})
	})
}
