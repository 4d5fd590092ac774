package catalog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Catalog mode through fakeCatalog: Close, Plan, untrusted observations
// and failures (harness in catalog_test.go).

// TestCatalogClose: with on_exit deregister Close hands the observation
// over (its keys released, their value kept) and destroys the session; with
// keep the session and its keys stay (until its TTL lapses). Either way the
// lock is released.
func TestCatalogClose(t *testing.T) {
	for _, onExit := range []string{consulclient.OnExitDeregister, consulclient.OnExitKeep} {
		t.Run(onExit, bubble(func(t *testing.T) {
			h, a := loneBridge(t, func(c *Config) { c.OnExit = onExit }, "10.0.0.1:8000")
			sess := h.session(a)
			if err := a.c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			keep := onExit == consulclient.OnExitKeep
			if got := h.session(a) != ""; got != keep {
				t.Errorf("session alive after Close: %v, want %v", got, keep)
			}
			kv, ok := h.fc.KV(testObsPrefix + "a/0")
			wantHolder := map[bool]string{true: sess, false: ""}[keep]
			if !ok || kv.Session != wantHolder || len(kv.Value) == 0 {
				t.Errorf("observation after Close = %+v (present %v), want present, held by %q", kv, ok, wantHolder)
			}
			if kv, ok := h.fc.KV(testLockKey); ok && kv.Session != "" {
				t.Errorf("lock key still held by %s after Close", kv.Session)
			}
			if got, want := h.fc.Count("DestroySession"), map[bool]int{false: 1, true: 0}[keep]; got != want {
				t.Errorf("%d DestroySession calls, want %d", got, want)
			}
			if a.c.Leader() {
				t.Error("leader after Close")
			}
			// The catalog itself is the next leader's business.
			if !h.observed("10.0.0.1:8000", api.HealthPassing, "1") {
				t.Error("Close changed the catalog")
			}
		}))
	}
}

// TestCatalogPlan: Plan merges this bridge's would-be observation with the
// others' and reports the diff, writing nothing.
func TestCatalogPlan(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a, b := h.bridge("a"), h.bridge("b")
		h.start(a)
		h.pump("a leads", 50*time.Millisecond, a.c.Leader)
		h.start(b)
		h.apply(a, snap(1, "10.0.0.1:8000", "10.0.0.2:8000"))
		h.apply(b, snap(1, "10.0.0.4:8000"))
		h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "1", "10.0.0.4:8000": "1"})
		txns, kvBefore, catBefore := h.fc.Count("Txn"), h.fc.Keys(testFleet), h.fc.Catalog()
		obs, _ := h.fc.KV(testObsPrefix + "a/0")

		d, err := b.c.Plan(context.Background(), snap(2, "10.0.0.4:8000", "10.0.0.3:8000"))
		if err != nil {
			t.Fatal(err)
		}
		if got := addrsOf(d.Added); !slices.Equal(got, []string{"10.0.0.3:8000"}) {
			t.Errorf("added %v, want 10.0.0.3:8000", got)
		}
		if len(d.Removed) != 0 || d.Unchanged != 3 {
			t.Errorf("plan of b = %+v, want nothing removed, 3 unchanged (a still observes 1 and 2)", d)
		}
		d, err = a.c.Plan(context.Background(), snap(2, "10.0.0.2:8000"))
		if err != nil {
			t.Fatal(err)
		}
		if got := addrsOf(d.Removed); len(d.Added) != 0 || !slices.Equal(got, []string{"10.0.0.1:8000"}) || d.Unchanged != 2 {
			t.Errorf("plan of a = added %v, removed %v, unchanged %d; want removed 10.0.0.1:8000, 2 unchanged", addrsOf(d.Added), got, d.Unchanged)
		}
		obsAfter, _ := h.fc.KV(testObsPrefix + "a/0")
		if h.fc.Count("Txn") != txns || !slices.Equal(h.fc.Keys(testFleet), kvBefore) || !slices.Equal(h.fc.Catalog(), catBefore) ||
			obsAfter.ModifyIndex != obs.ModifyIndex {
			t.Errorf("Plan wrote: %d transactions, keys %v", h.fc.Count("Txn")-txns, h.fc.Keys(testFleet))
		}
	})
}

// TestCatalogUndecodableObservation: keys under the prefix that do not
// decode, or name another bridge than their key, are logged and ignored;
// unheld keys are skipped; the valid observation is still merged.
func TestCatalogUndecodableObservation(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		h.start(a)
		h.pump("a leads", 50*time.Millisecond, a.c.Leader)
		rogue, err := h.fc.CreateSession(&api.SessionEntry{Name: "rogue", Node: bridgesNode(testFleet), Behavior: api.SessionBehaviorDelete}, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.apply(a, snap(1, "10.0.0.1:8000"))
		good, _ := h.fc.KV(testObsPrefix + "a/0")
		h.fc.PutKV(testObsPrefix+"rogue/0", []byte("not an observation"), rogue)
		h.fc.PutKV(testObsPrefix+"impostor/0", good.Value, rogue) // names bridge a
		h.fc.PutKV(testObsPrefix+"unheld/0", good.Value, "")
		h.apply(a, snap(2, "10.0.0.1:8000", "10.0.0.2:8000"))
		h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "1"})
		for _, bridge := range []string{"rogue", "impostor"} {
			if len(a.logs.Grep(`"bridge":"`+bridge+`"`)) == 0 {
				t.Errorf("no log about the observation of %s; logs:\n%v", bridge, a.logs.Grep("ignoring"))
			}
		}
		if got := testutil.ToFloat64(a.c.metrics.errors.WithLabelValues("observation")); got < 2 {
			t.Errorf("observation errors = %v, want >= 2", got)
		}
		if got := testutil.ToFloat64(a.c.metrics.observers); got != 1 {
			t.Errorf("observers merged = %v, want 1", got)
		}
	})
}

// TestCatalogTransportFailures: a session that cannot be created is
// retried with backoff; Apply says so meanwhile.
func TestCatalogTransportFailures(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		h.fc.FailNext("CreateSession", 2, nil)
		h.start(a) // gives up waiting for the session
		if _, err := a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000")); h.session(a) == "" &&
			(err == nil || !strings.Contains(err.Error(), "no consul session: consul create session on node")) {
			t.Errorf("Apply without a session = %v, want the cause: the session create's error", err)
		}
		h.pump("session after retries", time.Second, func() bool { return h.session(a) != "" })
		h.pump("publish", 100*time.Millisecond, func() bool {
			_, err := a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
			return err == nil
		})
		h.pump("a leads", 200*time.Millisecond, a.c.Leader)
		h.settled(map[string]string{"10.0.0.1:8000": "1"})
		if n := len(a.logs.Grep("cannot create a consul session")); n != 1 {
			t.Errorf("%d warnings for 2 failures, want 1", n)
		}
	})
}

// TestCatalogLockError: when the lock cannot even be prepared, Close still
// stops the bridge promptly.
func TestCatalogLockError(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		h.fc.FailNext("Lock", 1, errors.New("invalid lock options"))
		h.start(a)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := a.c.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if h.session(a) != "" {
			t.Error("session not destroyed by Close")
		}
	})
}
