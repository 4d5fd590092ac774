package kubernetes

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleettest"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// TestFleetConformance runs the fleet member conformance suite on the fake
// API server: bridges (Sinks, started, with their Leases and leader loop in
// the background) on one fake clock; on_exit keep hands the observation
// over (the ConfigMap and the Lease stay for the successor), and another
// holder taking the leader Lease ends a term.
func TestFleetConformance(t *testing.T) {
	fleettest.Run(t, func(t *testing.T) fleettest.Fleet { return newK8sFleet(t) })
}

// intruder is the holder that takes the leader Lease in EndTerm.
const intruder = "someone-else_000000000000"

type k8sFleet struct {
	t       *testing.T
	f       *fakeAPI
	clk     *clocktest.Clock
	o       kubeapi.Objects // the test's own reads of the fake
	bridges []*Sink
}

// newK8sFleet is a fake API server holding the fleet's Service, as the
// chart creates it (kubernetesService.create). Without it the leader
// creates the Service at its first write, and each bridge publishes its
// observation once more to carry the new owner reference
// (TestOwnedByTheService): a write the no-write-when-unchanged case would
// count, or not, depending on when the leader wrote.
func newK8sFleet(t *testing.T) *k8sFleet {
	f := newFakeAPI(t)
	k := &k8sFleet{t: t, f: f, clk: clocktest.New(t0), o: f.client(t).Objects("default")}
	svc := (&Sink{cfg: testConfig("x")}).service()
	if err := k.o.Create(context.Background(), kubeapi.Services, &svc, nil); err != nil {
		t.Fatal(err)
	}
	return k
}

// pump advances the clock by step every 2ms until cond holds (10s at most).
func (k *k8sFleet) pump(t *testing.T, what string, step time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		k.clk.Advance(step)
		time.Sleep(2 * time.Millisecond)
	}
}

// start builds and starts a bridge of id (on_exit withdraw unless keep),
// closed at cleanup.
func (k *k8sFleet) start(t *testing.T, id string, keep bool) *Sink {
	t.Helper()
	cfg := testConfig(id)
	cfg.Deregister = !keep
	return k.startConfig(t, cfg)
}

// startConfig builds and starts a bridge of cfg, closed at cleanup.
func (k *k8sFleet) startConfig(t *testing.T, cfg Config) *Sink {
	t.Helper()
	id := cfg.BridgeID
	s := newTestSink(t, k.f, k.clk, cfg)
	done := make(chan error, 1)
	go func() { done <- s.Start(context.Background()) }()
	var err error
	k.pump(t, "Start of "+id, 100*time.Millisecond, func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatalf("Start %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close %s: %v", id, err)
		}
	})
	k.bridges = append(k.bridges, s)
	return s
}

func (k *k8sFleet) Bridge(t *testing.T, id string) fleettest.Bridge { return k.start(t, id, false) }

// HandOverBridge is a bridge with on_exit keep: its ConfigMap and Lease
// stay on exit, and a successor of its bridge_id takes the Lease over at
// once.
func (k *k8sFleet) HandOverBridge(t *testing.T, id string) fleettest.Bridge {
	return k.start(t, id, true)
}

func (k *k8sFleet) Lead(t *testing.T, id string) fleettest.Bridge {
	s := k.start(t, id, false)
	k.pump(t, id+" leads", 100*time.Millisecond, s.Leader)
	return s
}

func (k *k8sFleet) Now() time.Time       { return k.clk.Now() }
func (k *k8sFleet) Round() time.Duration { return testConfig("x").Round }

// Settle waits, with a leader, until it read the bridges' Leases twice
// after the call: the first read found what was published before, and
// the second began after the writes of its plan. With no leader it lets
// 3s pass (three polls of a leader, had there been one).
func (k *k8sFleet) Settle(t *testing.T) {
	t.Helper()
	leads := false
	for _, s := range k.bridges {
		leads = leads || s.Leader()
	}
	if !leads {
		end := k.clk.Now().Add(3 * time.Second)
		k.pump(t, "3s", 100*time.Millisecond, func() bool { return !k.clk.Now().Before(end) })
		return
	}
	from := k.f.listCount("leases")
	k.pump(t, "the leader's reads", 100*time.Millisecond, func() bool { return k.f.listCount("leases") >= from+2 })
}

// Observed reports whether an EndpointSlice holds addr as a ready endpoint.
func (k *k8sFleet) Observed(addr string) bool {
	a := netip.MustParseAddrPort(addr)
	var items []kubeapi.EndpointSlice
	if err := k.o.List(context.Background(), kubeapi.EndpointSlices, kubeapi.Selector(LabelService, "django"), &items); err != nil {
		k.t.Errorf("list endpointslices: %v", err)
		return false
	}
	for _, es := range items {
		if len(es.Ports) != 1 || es.Ports[0].Port != int32(a.Port()) {
			continue
		}
		for _, ep := range es.Endpoints {
			if len(ep.Addresses) > 0 && ep.Addresses[0] == a.Addr().String() {
				return ep.Conditions.Ready != nil && *ep.Conditions.Ready
			}
		}
	}
	return false
}

// Refuse answers 403 to every write of the slices and the Service (the
// leader's writes), has leader publish a new server and waits until its
// write met the refusal (the standing fault).
func (k *k8sFleet) Refuse(t *testing.T, leader fleettest.Bridge) {
	t.Helper()
	k.f.setRefuse(func(method, path string) int {
		if method != http.MethodGet && (strings.Contains(path, "/endpointslices") || strings.Contains(path, "/services")) {
			return http.StatusForbidden
		}
		return 0
	})
	s := leader.(*Sink)
	if _, err := s.Apply(context.Background(), fleettest.Snap(k, 2, "10.0.0.1:8000", "10.0.0.3:8000")); err != nil {
		t.Fatal(err)
	}
	k.pump(t, "the leader refused", 100*time.Millisecond, func() bool { return s.member.Fault() != nil })
}

// EndTerm has another holder take the leader Lease (and renew it, every
// third of its duration, until the test ends), as a standby that judged
// the Lease expired would, and waits until leader's term ended.
func (k *k8sFleet) EndTerm(t *testing.T, leader fleettest.Bridge) {
	t.Helper()
	s := leader.(*Sink)
	name := s.leader.name
	took := k.f.edit("leases", name, func(o map[string]any) {
		spec, _ := o["spec"].(map[string]any)
		spec["holderIdentity"] = intruder
		spec["renewTime"] = k.clk.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	})
	if !took {
		t.Fatalf("no leader lease %s", name)
	}
	done := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for clock.Sleep(k.clk, s.cfg.LeaseDuration/3, done) {
			k.f.bump("leases", name)
		}
	}()
	t.Cleanup(func() { close(done); <-renewed })
	k.pump(t, "the end of "+s.cfg.BridgeID+"'s term", 100*time.Millisecond, func() bool { return !s.Leader() })
}

var (
	_ fleettest.TermEnder = (*k8sFleet)(nil)
	_ fleettest.HandOver  = (*k8sFleet)(nil)
)
