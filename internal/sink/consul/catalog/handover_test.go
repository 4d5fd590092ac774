package catalog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// A bridge that exits cleanly (on_exit deregister) hands its observation
// over: the leader stands it in for the grace, so that a successor of the
// same bridge_id (a DaemonSet's rolling update) takes it over with no
// server turning critical; nobody taking it over, its servers turn critical
// once the grace is over and the released keys are deleted.

// handoverFleet: a leads and sees 10.0.0.1; b sees 10.0.0.2 alone.
func handoverFleet(t *testing.T) (*catHarness, *catBridge, *catBridge) {
	h := newCatHarness(t)
	a, b := h.bridge("a"), h.bridge("b")
	h.leaderLogs = a.logs.Lines
	h.start(a)
	h.pump("a leads", 50*time.Millisecond, a.c.Leader)
	h.start(b)
	h.apply(a, snap(1, "10.0.0.1:8000"))
	h.apply(b, snap(1, "10.0.0.2:8000"))
	h.settled(map[string]string{"10.0.0.1:8000": "1", "10.0.0.2:8000": "1"})
	h.replanned(2, time.Second) // past a's start-up grace
	return h, a, b
}

func TestCatalogHandoverToSuccessor(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, _, b := handoverFleet(t)
		h.replannedAfter(func() { // the leader sees b's keys released
			if err := b.c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
		if !h.observed("10.0.0.2:8000", api.HealthPassing, "1") {
			_, _, c, _ := h.server("10.0.0.2:8000")
			t.Fatalf("b's server after b handed over: %s, want passing\n%s", c.Status, strings.Join(h.leaderLogs(), "\n"))
		}
		// b's successor: the same bridge_id, a new session.
		b2 := h.bridge("b")
		h.start(b2)
		h.apply(b2, snap(1, "10.0.0.2:8000"))
		if kv, ok := h.fc.KV(testObsPrefix + "b/0"); !ok || kv.Session != h.session(b2) {
			t.Fatalf("successor's observation = %+v (%v), want held by its session", kv, ok)
		}
		h.replanned(15, time.Second) // well past the grace
		if !h.observed("10.0.0.2:8000", api.HealthPassing, "1") {
			t.Errorf("b's server went critical during the handover (applied %v)", h.fc.Applied())
		}
		if got := h.count("check set " + sid("10.0.0.2:8000")); got != 1 {
			t.Errorf("b's server's check written %d times, want 1 (its registration)", got)
		}
	})
}

func TestCatalogHandoverNobodyTakesOver(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, _, b := handoverFleet(t)
		h.replannedAfter(func() {
			if err := b.c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
		if !h.observed("10.0.0.2:8000", api.HealthPassing, "1") {
			t.Fatal("b's server not passing during the grace")
		}
		// The grace (10 s in the harness) ends: critical, and the keys go.
		h.pump("b's server critical", time.Second, func() bool { return h.observed("10.0.0.2:8000", api.HealthCritical, "1") })
		h.eventually("b's released keys deleted", func() bool { _, ok := h.fc.KV(testObsPrefix + "b/0"); return !ok })
		if !h.observed("10.0.0.1:8000", api.HealthPassing, "1") {
			t.Error("a's server changed")
		}
	})
}

// A bridge that dies (its session expires) hands nothing over: its servers
// turn critical as soon as its session is gone.
func TestCatalogNoHandoverOnDeath(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, _, b := handoverFleet(t)
		h.fc.ExpireSession(h.session(b))
		h.eventually("b's server critical", func() bool { return h.observed("10.0.0.2:8000", api.HealthCritical, "1") })
	})
}
