package catalogh

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// TenK is the number of servers of Start10k's responder.
const TenK = 10_000

// Count returns how many instances of service the catalog holds, how
// many distinct IDs and how many are passing.
func Count(c *api.Client, service string) (n, distinct, passing int, index uint64, err error) {
	entries, meta, err := c.Health().Service(service, "", false, &api.QueryOptions{AllowStale: false})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	ids := map[string]bool{}
	for _, e := range entries {
		ids[e.Service.ID] = true
		if e.Checks.AggregatedStatus() == api.HealthPassing {
			passing++
		}
	}
	return len(entries), len(ids), passing, meta.LastIndex, nil
}

// Start10k builds the lab, the cluster, the 10,000-reply responder and
// bridges a1 and a2; it returns when the first observation key exists and
// how long after the bridges' start that was.
func Start10k(t testing.TB, before func(*Lab, *consulcluster.Cluster)) (*Lab, *consulcluster.Cluster, time.Time) {
	t.Helper()
	l := NewLab(t)
	cl := l.StartCluster()
	if before != nil {
		before(l, cl)
	}
	h := l.Lab.Host("s10k", l.Seg["a"], "10.213.31.100/24")
	// Payload addresses 10.213.100.1 and up: none is the segment's broadcast
	// address (which the address policy would replace by the source). All
	// come from one source and lie off the segment: the bridges admit them
	// with harness.LoadTestFlags.
	harness.Respond(t, h, 1, "--ip", "10.213.100.1", "--replies", strconv.Itoa(TenK), "--global-rate-limit", "0")
	loop := append([]string{"--interval", "5s", "--timeout", "1"}, harness.LoadTestFlags...)
	l.Bridge("a1", loop...)
	// The first observation is published right after a1's first round.
	var published time.Time
	harness.Wait(t, 60*time.Second, "a1's observation", func() (bool, string) {
		pairs, _, err := l.Consul.KV().Keys("udp-discovery-bridge/"+Service+"/obs/a1/", "", nil)
		if err == nil && len(pairs) > 0 {
			published = time.Now()
			return true, ""
		}
		return false, fmt.Sprint(pairs, err)
	})
	l.Bridge("a2", loop...)
	return l, cl, published
}

// WaitLeader waits for a leader and returns its name.
func (l *Lab) WaitLeader(t testing.TB) string {
	var ld string
	harness.Wait(t, 30*time.Second, "a leader", func() (bool, string) { ld = l.Leader(); return ld != "", ld })
	return ld
}
