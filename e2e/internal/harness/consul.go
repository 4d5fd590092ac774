package harness

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// ConsulRunArgs are the flags of a long-running Consul-sink bridge with id.
func ConsulRunArgs(id string, extra ...string) []string {
	args := []string{"--sink", "consul", "--consul-addr", ConsulAddr, "--bridge-id", id}
	args = append(args, Fast...)
	return append(args, extra...)
}

// WantPassing waits until every instance of service named in ids is passing
// (its worst check), and returns how long that took.
func WantPassing(t testing.TB, c *api.Client, service string, timeout time.Duration, ids ...string) time.Duration {
	t.Helper()
	return Wait(t, timeout, fmt.Sprintf("%v passing", ids), func() (bool, string) {
		st, err := Health(c, service)
		if err != nil {
			return false, err.Error()
		}
		for _, id := range ids {
			if st[id] != api.HealthPassing {
				return false, fmt.Sprintf("%s is %q (all: %v)", id, st[id], st)
			}
		}
		return true, ""
	})
}

// Catalog returns the catalog's instances of service keyed by ID,
// and the X-Consul-Index of the query. Duplicate IDs fail the test.
func Catalog(t testing.TB, c *api.Client, service string) (map[string]*api.CatalogService, uint64, error) {
	t.Helper()
	svcs, meta, err := c.Catalog().Service(service, "", nil)
	if err != nil {
		return nil, 0, err
	}
	out := make(map[string]*api.CatalogService, len(svcs))
	for _, s := range svcs {
		if _, dup := out[s.ServiceID]; dup {
			t.Errorf("catalog lists service ID %s twice", s.ServiceID)
		}
		out[s.ServiceID] = s
	}
	return out, meta.LastIndex, nil
}

// WaitCatalog waits until the catalog's instances of service are exactly
// ids, and returns them.
func WaitCatalog(t testing.TB, c *api.Client, service string, timeout time.Duration, ids ...string) map[string]*api.CatalogService {
	t.Helper()
	slices.Sort(ids)
	var got map[string]*api.CatalogService
	Wait(t, timeout, fmt.Sprintf("catalog %s = %v", service, ids), func() (bool, string) {
		m, _, err := Catalog(t, c, service)
		if err != nil {
			return false, err.Error()
		}
		got = m
		have := Keys(m)
		return slices.Equal(have, ids), fmt.Sprintf("have %v", have)
	})
	return got
}

// Health returns the aggregated status of every instance of service
// keyed by service ID (an instance's worst check).
func Health(c *api.Client, service string) (map[string]string, error) {
	entries, _, err := c.Health().Service(service, "", false, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		out[e.Service.ID] = e.Checks.AggregatedStatus()
	}
	return out, nil
}

// ServerID is the bridge's deterministic service ID for ip:port.
func ServerID(service, ip string, port int) string {
	return service + "-" + ip + "-" + strconv.Itoa(port)
}
