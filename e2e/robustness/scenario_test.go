package robustness_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/history"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// The lab: segments a (6 servers, bridges a1 a2) and b (4 servers, bridges
// b1 b2), rounds of 1.5 s, removal after 2 missed rounds, the guard at its
// defaults, unobserved servers removed 20 s later.
var (
	scenarioServers = map[string]int{"a": 6, "b": 4}
	scenarioBridges = map[string][]string{"a": {"a1", "a2"}, "b": {"b1", "b2"}}
)

const (
	scRound      = 1500 * time.Millisecond
	scMissed     = 2
	scGuard      = 10
	scDereg      = 20 * time.Second
	scSessionTTL = 10 * time.Second
	scSlack      = 3 * time.Second
	foreignID    = "foreign-django-1"
)

// server is one responder host.
type server struct {
	id, seg, ip string
	host        *netns.Host
	proc        *netns.Proc // nil while stopped
}

// scenario is one seeded run.
type scenario struct {
	t  *testing.T
	l  *catalogh.Lab
	cl *consulcluster.Cluster

	recorder // its mu also guards procs and reader
	servers  []*server
	procs    map[string][]*harness.BridgeProc // every process each bridge ran, for its log
	reader   int                              // the Consul server the poller reads
	clients  []*api.Client                    // one per Consul server, made once
	// policy and token are the bridges' ACL policy and token secret
	// (restored after a data wipe).
	policy, token string
	// settled is when the fleet has settled after the last fault that
	// could move its leadership (the fault loop's goroutine only).
	settled time.Time
}

// recorder is a run's history as it is recorded, safe for concurrent use;
// its mu also guards what its scenario keeps beside it.
type recorder struct {
	mu     sync.Mutex
	events []history.Event
}

// record adds e, stamped now.
func (r *recorder) record(e history.Event) {
	e.At = time.Now()
	r.add(e)
}

// add adds events stamped already (read from logs).
func (r *recorder) add(evs ...history.Event) {
	r.mu.Lock()
	r.events = append(r.events, evs...)
	r.mu.Unlock()
}

// history returns the events: the config first, the rest by time.
func (r *recorder) history() []history.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	sort.SliceStable(r.events[1:], func(i, j int) bool { return r.events[1+i].At.Before(r.events[1+j].At) })
	return slices.Clone(r.events)
}

// runScenario builds the lab, injects faults for dur from seed's schedule,
// heals everything, waits out the convergence bound and returns the
// history.
func runScenario(t *testing.T, seed int64, dur time.Duration) []history.Event {
	s := &scenario{t: t, procs: map[string][]*harness.BridgeProc{}}
	s.l = catalogh.NewLab(t)
	s.cl = s.l.StartACLCluster()
	for i := range s.cl.N() {
		s.clients = append(s.clients, s.cl.Client(i))
	}
	s.policy = harness.DocsPolicy(t, "catalog mode")
	s.token = catalogh.ACLToken(t, s.l.Consul, "bridge-catalog", s.policy)
	s.l.Args = []string{"--consul-token-file", catalogh.WriteTokenFile(t, s.token), "--missed-rounds", fmt.Sprint(scMissed),
		"--consul-deregister-after", scDereg.String(), "--consul-lock-session-ttl", scSessionTTL.String()}
	cfg := historyConfig(seed, scSessionTTL)
	for _, seg := range []string{"a", "b"} {
		sg := history.Segment{Name: seg, Bridges: scenarioBridges[seg]}
		for i := range scenarioServers[seg] {
			ip := fmt.Sprintf("10.213.%d.%d", catalogh.SegNet(seg), 41+i)
			sv := &server{id: harness.ServerID(catalogh.Service, ip, 8000), seg: seg, ip: ip,
				host: s.l.Lab.Host(fmt.Sprintf("r%s%d", seg, i), s.l.Seg[seg], ip+"/24")}
			s.servers = append(s.servers, sv)
			sg.Servers = append(sg.Servers, sv.id)
		}
		cfg.Segments = append(cfg.Segments, sg)
	}
	s.record(history.Event{Config: cfg})
	s.registerForeign()
	for _, sv := range s.servers {
		s.startServer(sv)
	}
	for _, seg := range []string{"a", "b"} {
		for _, b := range scenarioBridges[seg] {
			s.startBridge(b)
		}
	}
	stop := s.poll()
	want := map[string]string{}
	for _, sv := range s.servers {
		want[sv.id] = "passing"
	}
	want[foreignID] = "passing"
	s.l.WaitCatalog(90*time.Second, "every server passing", want)
	// Established before the first fault: seen for missed_rounds+2
	// rounds + slack + the leader's grace, so that a silence right away
	// is judged (mass-silence-held counts only established servers).
	time.Sleep((scMissed+2)*scRound + scSlack + 2*scRound + 2*time.Second)

	for n, st := range schedule(seed, dur, weightsOf(kinds)) {
		f, id := kinds[st.kind], fmt.Sprintf("f%d", n+1)
		t.Logf("robustness: %s %s %s (target %d) for %s", time.Now().Format("15:04:05.000"), id, f.kind, st.target, st.d)
		f.run(s, id, st)
		time.Sleep(st.gap)
	}
	// Heal: every server answers again, every bridge runs.
	for _, sv := range s.servers {
		if sv.proc == nil {
			s.startServer(sv)
		}
	}
	t.Logf("robustness: faults over; waiting %s for convergence", convergeWait)
	time.Sleep(convergeWait)
	stop()
	s.logEvents()
	return s.history()
}

// historyConfig is the checker's configuration of a run of seed: the
// lab's rounds, missed rounds, guard and removal, and the session TTL (or
// lease duration) of the bridges' liveness.
func historyConfig(seed int64, sessionTTL time.Duration) *history.Config {
	return &history.Config{Seed: seed, Round: history.Duration(scRound), MissedRounds: scMissed, RemovalGuardRounds: scGuard,
		MaxRemovalFraction: 0.5, RemovalGuardHeld: history.HeldReady, DeregisterAfter: history.Duration(scDereg), WindowRounds: 3,
		SessionTTL: history.Duration(sessionTTL), Slack: history.Duration(scSlack)}
}

// convergeWait is the checker's convergence bound at these settings
// (max(2 × session TTL, grace, missed_rounds+1 rounds) + grace + window +
// hold + slack) and 10 s of reads after it.
var convergeWait = max(2*scSessionTTL, (scMissed+1)*scRound) + 2*(scRound+scRound) + 3*scRound + scGuard*scRound + scSlack + 10*time.Second

// registerForeign writes an entry of another fleet under the same service,
// once: the fleet must never touch it.
func (s *scenario) registerForeign() {
	_, err := s.l.Consul.Catalog().Register(&api.CatalogRegistration{Node: "foreign-node", Address: "10.213.99.1",
		Service: &api.AgentService{ID: foreignID, Service: catalogh.Service, Address: "10.213.99.1", Port: 8000,
			Meta: map[string]string{"owner": "another-fleet"}}}, nil)
	if err != nil {
		s.t.Fatalf("register the foreign entry: %v", err)
	}
}

func (s *scenario) startServer(sv *server) { startServer(s.t, s.record, sv) }

func (s *scenario) stopServer(sv *server) { stopServer(s.t, s.record, sv) }

// startServer starts sv's responder and records that it answers.
func startServer(t *testing.T, record func(history.Event), sv *server) {
	sv.proc = harness.Respond(t, sv.host, 1, "--ip", sv.ip)
	record(history.Event{Answers: &history.Answers{Server: sv.id, Answering: true}})
}

// stopServer records that sv no longer answers and stops its responder.
func stopServer(t *testing.T, record func(history.Event), sv *server) {
	record(history.Event{Answers: &history.Answers{Server: sv.id, Answering: false}})
	harness.StopResponder(t, sv.proc)
	sv.proc = nil
}

func (s *scenario) startBridge(name string) {
	b := s.l.Bridge(name)
	s.mu.Lock()
	s.procs[name] = append(s.procs[name], b)
	s.mu.Unlock()
	s.record(history.Event{Bridge: &history.BridgeChange{Bridge: name, State: history.BridgeUp}})
}

// poll reads the service every 100 ms (from a running Consul server,
// the next one after a failure) until the returned stop is called.
func (s *scenario) poll() (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			s.record(history.Event{Read: s.read()})
		}
	}()
	return func() { close(quit); <-done }
}

func (s *scenario) read() *history.SinkRead {
	s.mu.Lock()
	i := s.reader
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	entries, meta, err := s.clients[i].Health().Service(catalogh.Service, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		s.mu.Lock()
		s.reader = (i + 1) % s.cl.N()
		s.mu.Unlock()
		return &history.SinkRead{Sink: "consul", Err: err.Error()}
	}
	r := &history.SinkRead{Sink: "consul", Servers: map[string]history.Health{}, Index: meta.LastIndex, Foreign: map[string]uint64{}}
	for _, e := range entries {
		if strings.HasPrefix(e.Service.ID, "foreign-") {
			r.Foreign[e.Service.ID] = e.Service.ModifyIndex
			continue
		}
		h := history.Critical
		if e.Checks.AggregatedStatus() == api.HealthPassing {
			h = history.Passing
		}
		r.Servers[e.Service.ID] = h
	}
	return r
}

// readerIndex is the Consul server the poller reads now (a running one,
// as far as it knows).
func (s *scenario) readerIndex() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reader
}
