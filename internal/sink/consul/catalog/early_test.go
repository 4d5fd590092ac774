package catalog

import (
	"testing"

	"github.com/hashicorp/consul/api"
)

// TestCatalogEarlyAddPublishedAtOnce: a snapshot handed over while a round
// is still running (an add as it arrives: the same round number as the
// last one, one more server) is published by that Apply itself, and the
// leader's blocking read of the observations wakes on it and registers
// the server without the clock moving; the round's end, the same set
// again, writes nothing.
func TestCatalogEarlyAddPublishedAtOnce(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h, a := loneBridge(t, nil, "10.0.0.1:8000", "10.0.0.2:8000")
		var n int
		h.replannedAfter(func() { n = h.apply(a, snap(2, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000")) })
		if n != 1 {
			t.Errorf("early Apply wrote %d keys, want the observation's 1", n)
		}
		h.eventually("the early add registered", func() bool { return h.observed("10.0.0.3:8000", api.HealthPassing, "1") })
		txns := h.fc.Count("Txn")
		if n := h.apply(a, snap(2, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000")); n != 0 {
			t.Errorf("the round's end wrote %d keys, want 0 (the observation is unchanged)", n)
		}
		if got := h.fc.Count("Txn"); got != txns {
			t.Errorf("%d transactions at the round's end, want 0", got-txns)
		}
	})
}
