package catalogh

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// Passing returns the IDs of the service's instances Consul answers
// ?passing.
func Passing(c *api.Client) (map[string]bool, error) {
	entries, _, err := c.Health().Service(Service, "", true, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Service.ID] = true
	}
	return out, nil
}

// Entries reads every instance of the service: status by ID (worst
// check), and the entries themselves. Duplicate IDs fail the test.
func Entries(t testing.TB, c *api.Client) (map[string]string, map[string]*api.ServiceEntry, uint64, error) {
	entries, meta, err := c.Health().Service(Service, "", false, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	st := map[string]string{}
	byID := map[string]*api.ServiceEntry{}
	for _, e := range entries {
		if _, dup := byID[e.Service.ID]; dup {
			t.Errorf("service ID %s listed twice", e.Service.ID)
		}
		byID[e.Service.ID] = e
		st[e.Service.ID] = e.Checks.AggregatedStatus()
	}
	return st, byID, meta.LastIndex, nil
}

// WaitCatalog waits until the instances are exactly want (ID -> status).
func (l *Lab) WaitCatalog(timeout time.Duration, what string, want map[string]string) time.Duration {
	l.T.Helper()
	return harness.Wait(l.T, timeout, what, func() (bool, string) {
		st, _, _, err := Entries(l.T, l.Consul)
		if err != nil {
			return false, err.Error()
		}
		if len(st) != len(want) {
			return false, fmt.Sprintf("have %v", st)
		}
		for id, s := range want {
			if st[id] != s {
				return false, fmt.Sprintf("%s is %q; have %v", id, st[id], st)
			}
		}
		return true, ""
	})
}

// All maps ids to status.
func All(status string, ids ...[]string) map[string]string {
	out := map[string]string{}
	for _, l := range ids {
		for _, id := range l {
			out[id] = status
		}
	}
	return out
}

// MetricSum sums a metric over the named bridges.
func (l *Lab) MetricSum(prefix string, names ...string) float64 {
	l.T.Helper()
	var sum float64
	for _, n := range names {
		v, _, err := harness.Metric(l.Hosts[n].NS, prefix)
		if err != nil {
			l.T.Fatalf("metric %s of %s: %v", prefix, n, err)
		}
		sum += v
	}
	return sum
}

// Leader returns the name of the bridge whose leader gauge is 1 ("" if
// none, or several: the second is a failure).
func (l *Lab) Leader() string {
	l.T.Helper()
	var leaders []string
	for n, b := range l.Bridges {
		if b.Exited() {
			continue
		}
		if v, ok, err := harness.Metric(l.Hosts[n].NS, "udp_discovery_bridge_consul_catalog_leader"); err == nil && ok && v == 1 {
			leaders = append(leaders, n)
		}
	}
	slices.Sort(leaders)
	if len(leaders) > 1 {
		l.T.Errorf("several leaders at once: %v", leaders)
	}
	return strings.Join(leaders, ",")
}

// ObsIndexes returns the ModifyIndex of every observation key.
func (l *Lab) ObsIndexes() map[string]uint64 {
	l.T.Helper()
	pairs, _, err := l.Consul.KV().List("udp-discovery-bridge/"+Service+"/obs/", nil)
	if err != nil {
		l.T.Fatalf("list observations: %v", err)
	}
	out := map[string]uint64{}
	for _, p := range pairs {
		out[p.Key] = p.ModifyIndex
	}
	return out
}

// ServiceIndex is the X-Consul-Index of the catalog's service.
func (l *Lab) ServiceIndex() uint64 {
	l.T.Helper()
	_, idx, err := harness.Catalog(l.T, l.Consul, Service)
	if err != nil {
		l.T.Fatalf("reading the catalog: %v", err)
	}
	return idx
}

// SettledIndex waits (at most timeout) until the service's index has not
// moved for three seconds (three rounds), and returns it.
func (l *Lab) SettledIndex(timeout time.Duration) uint64 {
	l.T.Helper()
	return l.Settled(timeout, "service", l.ServiceIndex)
}

// HealthIndex is the X-Consul-Index of the service's health query (every
// instance, whatever its state): a check's write moves it.
func (l *Lab) HealthIndex() uint64 {
	l.T.Helper()
	_, _, idx, err := Entries(l.T, l.Consul)
	if err != nil {
		l.T.Fatalf("reading the service's health: %v", err)
	}
	return idx
}

// Settled waits (at most timeout) until index has not moved for three
// seconds (three rounds), and returns it.
func (l *Lab) Settled(timeout time.Duration, what string, index func() uint64) uint64 {
	l.T.Helper()
	idx, since := index(), time.Now()
	harness.Wait(l.T, timeout, "a settled "+what+" index", func() (bool, string) {
		if now := index(); now != idx {
			idx, since = now, time.Now()
		}
		return time.Since(since) >= 3*time.Second, fmt.Sprintf("index %d", idx)
	})
	return idx
}

// CountLines counts the lines of s that contain every one of subs.
func CountLines(s string, subs ...string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(line, sub)
		}
		if ok {
			n++
		}
	}
	return n
}
