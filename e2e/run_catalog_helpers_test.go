package e2e_test

// Helpers of the catalog-mode end-to-end tests: two LAN segments of
// `bridge respond` servers (10.213.31.0/24 and 10.213.32.0/24), bridges
// with one leg on their segment and one on the Consul network
// (10.213.30.0/24), and Consul servers on that network. Every bridge's
// whitelist is pinned to its segment leg. Nothing runs in the root
// namespace.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

const catService = "django"

// catLab is the two-segment lab.
type catLab struct {
	t       *testing.T
	lab     *netns.Lab
	cons    *netns.Bridge // the Consul network
	seg     map[string]*netns.Bridge
	hosts   map[string]*netns.Host // bridge hosts by name
	bridges map[string]*runBridge
	// consulAddrs is the --consul-addr value of every bridge.
	consulAddrs string
	consul      *api.Client
	args        []string // extra flags of every bridge
	// multiHomed is set once shared() started its server: segment b's
	// bridges then admit advertised addresses off their segment.
	multiHomed bool
	// started, when set, is called with every bridge right after it
	// started.
	started func(*runBridge)
}

// segNet is the /24 of segment "a" (31) or "b" (32).
func segNet(seg string) int {
	if seg == "a" {
		return 31
	}
	return 32
}

func newCatLab(t *testing.T) *catLab {
	t.Helper()
	l := &catLab{t: t, lab: netns.New(t), seg: map[string]*netns.Bridge{}, hosts: map[string]*netns.Host{}, bridges: map[string]*runBridge{}}
	l.cons = l.lab.Bridge("cons")
	l.seg["a"] = l.lab.Bridge("sega")
	l.seg["b"] = l.lab.Bridge("segb")
	bridgebin.Path(t)
	return l
}

// servers starts n responders on segment seg, at 10.213.<31|32>.<31+i>,
// and returns their service IDs.
func (l *catLab) servers(seg string, n int) []string {
	l.t.Helper()
	var ids []string
	for i := range n {
		h, ip := l.serverHost(seg, i)
		respond(l.t, h, 1, "--ip", ip)
		ids = append(ids, runServerID(catService, ip, 8000))
	}
	return ids
}

// serverHost creates the host of server i of segment seg, at
// 10.213.<31|32>.<31+i>, and returns it with that address.
func (l *catLab) serverHost(seg string, i int) (*netns.Host, string) {
	l.t.Helper()
	ip := fmt.Sprintf("10.213.%d.%d", segNet(seg), 31+i)
	return l.lab.Host(fmt.Sprintf("s%s%d", seg, i), l.seg[seg], ip+"/24"), ip
}

// shared starts a responder on a host with a leg in both segments, which
// answers with its segment-a address, and returns its service ID. It is a
// multi-homed server: segment b's bridges get its replies from
// 10.213.32.90 naming 10.213.31.90, outside their whitelisted segment,
// which advertised_addresses local refuses (foreign_address). The bridges
// of segment b started from now on run with advertised_addresses any, the
// setting for such a server (segmentArgs); segment a's keep the default,
// which admits the address: it is on their segment.
func (l *catLab) shared() string {
	l.t.Helper()
	h := l.lab.Host("sab", l.seg["a"], "10.213.31.90/24")
	h.AddLink(l.seg["b"], "10.213.32.90/24")
	respond(l.t, h, 1, "--ip", "10.213.31.90")
	l.multiHomed = true
	return runServerID(catService, "10.213.31.90", 8000)
}

// segmentArgs are the flags of every bridge (and one-shot run) on segment
// seg: advertised_addresses any on segment b once the multi-homed shared
// server answers there.
func (l *catLab) segmentArgs(seg string) []string {
	if l.multiHomed && seg == "b" {
		return []string{"--advertised-addresses", "any"}
	}
	return nil
}

// bridge starts (or restarts) catalog-mode bridge name (e.g. "a1") on its
// segment. Its host is created on first use.
func (l *catLab) bridge(name string, extra ...string) *runBridge {
	l.t.Helper()
	seg := name[:1]
	h := l.hosts[name]
	if h == nil {
		n, _ := strconv.Atoi(name[1:])
		h = l.lab.Host("b"+name, l.seg[seg], fmt.Sprintf("10.213.%d.%d/24", segNet(seg), 20+n))
		h.AddLink(l.cons, fmt.Sprintf("10.213.30.%d/24", 20+10*(segNet(seg)-31)+n))
		l.hosts[name] = h
	}
	args := []string{"--sink", "consul", "--consul-mode", "catalog", "--consul-addr", l.consulAddrs,
		"--bridge-id", name, "--whitelist", h.Dev(l.seg[seg]), "--metrics-addr", runMetricsAddr,
		"--interval", "1s", "--timeout", "0.5", "--log-format", "json"}
	args = append(append(append(args, l.segmentArgs(seg)...), l.args...), extra...)
	b := startRun(l.t, h, name, args...)
	l.bridges[name] = b
	if l.started != nil {
		l.started(b)
	}
	return b
}

// catEntries reads every instance of the service: status by ID (worst
// check), and the entries themselves. Duplicate IDs fail the test.
func catEntries(t *testing.T, c *api.Client) (map[string]string, map[string]*api.ServiceEntry, uint64, error) {
	entries, meta, err := c.Health().Service(catService, "", false, nil)
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

// waitCatalog waits until the instances are exactly want (ID -> status).
func (l *catLab) waitCatalog(timeout time.Duration, what string, want map[string]string) time.Duration {
	l.t.Helper()
	return runWait(l.t, timeout, what, func() (bool, string) {
		st, _, _, err := catEntries(l.t, l.consul)
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

// all maps ids to status.
func all(status string, ids ...[]string) map[string]string {
	out := map[string]string{}
	for _, l := range ids {
		for _, id := range l {
			out[id] = status
		}
	}
	return out
}

// metricSum sums a metric over the named bridges.
func (l *catLab) metricSum(prefix string, names ...string) float64 {
	l.t.Helper()
	var sum float64
	for _, n := range names {
		v, _, err := runMetric(l.hosts[n].NS, prefix)
		if err != nil {
			l.t.Fatalf("metric %s of %s: %v", prefix, n, err)
		}
		sum += v
	}
	return sum
}

// leader returns the name of the bridge whose leader gauge is 1 ("" if
// none, or several: the second is a failure).
func (l *catLab) leader() string {
	l.t.Helper()
	var leaders []string
	for n, b := range l.bridges {
		if b.Exited() {
			continue
		}
		if v, ok, err := runMetric(l.hosts[n].NS, "udp_discovery_bridge_consul_catalog_leader"); err == nil && ok && v == 1 {
			leaders = append(leaders, n)
		}
	}
	slices.Sort(leaders)
	if len(leaders) > 1 {
		l.t.Errorf("several leaders at once: %v", leaders)
	}
	return strings.Join(leaders, ",")
}

// obsIndexes returns the ModifyIndex of every observation key.
func (l *catLab) obsIndexes() map[string]uint64 {
	l.t.Helper()
	pairs, _, err := l.consul.KV().List("udp-discovery-bridge/"+catService+"/obs/", nil)
	if err != nil {
		l.t.Fatalf("list observations: %v", err)
	}
	out := map[string]uint64{}
	for _, p := range pairs {
		out[p.Key] = p.ModifyIndex
	}
	return out
}

// serviceIndex is the X-Consul-Index of the catalog's service.
func (l *catLab) serviceIndex() uint64 {
	l.t.Helper()
	_, idx, err := runCatalog(l.t, l.consul, catService)
	if err != nil {
		l.t.Fatalf("reading the catalog: %v", err)
	}
	return idx
}

// settledIndex waits (at most timeout) until the service's index has not
// moved for three seconds (three rounds), and returns it.
func (l *catLab) settledIndex(timeout time.Duration) uint64 {
	l.t.Helper()
	return l.settled(timeout, "service", l.serviceIndex)
}

// healthIndex is the X-Consul-Index of the service's health query (every
// instance, whatever its state): a check's write moves it.
func (l *catLab) healthIndex() uint64 {
	l.t.Helper()
	_, _, idx, err := catEntries(l.t, l.consul)
	if err != nil {
		l.t.Fatalf("reading the service's health: %v", err)
	}
	return idx
}

// settled waits (at most timeout) until index has not moved for three
// seconds (three rounds), and returns it.
func (l *catLab) settled(timeout time.Duration, what string, index func() uint64) uint64 {
	l.t.Helper()
	idx, since := index(), time.Now()
	runWait(l.t, timeout, "a settled "+what+" index", func() (bool, string) {
		if now := index(); now != idx {
			idx, since = now, time.Now()
		}
		return time.Since(since) >= 3*time.Second, fmt.Sprintf("index %d", idx)
	})
	return idx
}

// countLines counts the lines of s that contain every one of subs.
func countLines(s string, subs ...string) int {
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
