package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/fleetmetrics"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/member"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Limits of one observation ConfigMap (Kubernetes takes at most 1 MiB of
// data in one).
const (
	maxChunk    = 256 << 10
	maxObsBytes = 768 << 10
)

// Sink is the kubernetes sink. Apply publishes this bridge's observation
// (a ConfigMap write only when its set changed); in the background from
// Start to Close it renews this bridge's Lease and stands for the leader
// Lease, and as leader merges the live observations into the slices.
type Sink struct {
	cfg    Config
	log    zerolog.Logger
	clk    clock.Clock
	o      kubeapi.Objects
	ns     string
	holder string // this process's identity in the Leases: bridge ID and incarnation

	own, leader *elector
	metrics     *metrics
	leading     atomic.Bool
	// guards is what the fleet's removal guard did in the leader's last
	// plan (empty when this bridge does not lead).
	guards fleet.GuardRecord
	// member is this bridge's side of the fleet: publishing its
	// observation (publisher) and standing for the leader Lease
	// (leases); it keeps the leader's standing refusal (403).
	member *member.Member

	ownerMu sync.Mutex
	owner   *kubeapi.OwnerReference // the fleet's Service, once read

	stop    context.CancelFunc
	done    chan struct{}
	started chan struct{} // closed after the first renewal of the own Lease
	once    sync.Once
}

// New builds the sink on client c, registering its metrics with reg (nil:
// none). It makes no API call; Start must come before Apply.
func New(cfg Config, c *kubeapi.Client, log zerolog.Logger, reg prometheus.Registerer) *Sink {
	ns := namespaceOf(cfg, c)
	inc := make([]byte, 6)
	_, _ = rand.Read(inc) // never fails (crypto/rand)
	s := &Sink{cfg: cfg, log: log, clk: clock.OrReal(cfg.Clock), o: c.Objects(ns), ns: ns,
		holder: cfg.BridgeID + "_" + hex.EncodeToString(inc), started: make(chan struct{})}
	s.metrics = newMetrics(reg, s.leading.Load)
	// A Lease created anew (after the leader deleted a Lease and ConfigMap
	// it took for dead: this process was paused for long) means the
	// observation may be gone too: the next Apply publishes it again.
	republish := func() {
		s.member.Forget()
		s.ownerMu.Lock()
		s.owner = nil // the Service may be a new one too
		s.ownerMu.Unlock()
	}
	s.own = &elector{o: s.o, clk: s.clk, log: log, name: objectName(cfg.Service+"-bridge-", cfg.BridgeID), holder: s.holder,
		dur: cfg.LeaseDuration, own: true, writes: func() { s.countWrite("lease") }, annots: map[string]string{AnnotBridge: cfg.BridgeID},
		created: republish, owners: s.owners,
		labels: map[string]string{LabelFleet: cfg.Service, LabelRole: roleBridge}}
	s.leader = &elector{o: s.o, clk: s.clk, log: log, name: cfg.Service + "-leader", holder: s.holder, owners: s.owners,
		dur: cfg.LeaseDuration, writes: func() { s.countWrite("lease") },
		labels: map[string]string{LabelFleet: cfg.Service, LabelRole: roleLeader}}
	opts := member.Options{Registry: "kubernetes", BridgeID: cfg.BridgeID, Segment: cfg.Segment, Round: cfg.Round, Clock: s.clk, Log: log,
		MaxChunk: maxChunk, MaxBytes: maxObsBytes, Container: "ConfigMap", ReadyWait: cfg.LeaseDuration,
		Fault: func(err error) error {
			return fmt.Errorf("kubernetes leader: %w (check the Role bound to this bridge's service account)", err)
		}}
	if cfg.Once {
		// run --once writes the slices only as leader: give a lone
		// bridge's campaign the moment it needs to take a free Lease.
		opts.FirstTermWait, opts.FirstTermUnready = 2*time.Second, true
		opts.Once = s.reconcileOnce
	}
	s.member = member.New(opts, &publisher{s: s}, leaseElector{s})
	return s
}

// namespaceOf is the namespace of the sink's objects: k8s_namespace, else
// the kubeconfig context's or the service account's, else default.
func namespaceOf(cfg Config, c *kubeapi.Client) string {
	switch {
	case cfg.Namespace != "":
		return cfg.Namespace
	case c.Namespace != "":
		return c.Namespace
	}
	return "default"
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return "kubernetes" }

// Leader reports whether this bridge writes the slices now.
func (s *Sink) Leader() bool { return s.leading.Load() }

// Start implements sink.Starter: it starts renewing this bridge's Lease and
// campaigning for the leader Lease, and waits (bounded by ctx and a Lease
// duration) for the first renewal so that the first Apply's observation
// counts at once.
func (s *Sink) Start(ctx context.Context) error {
	if s.stop != nil {
		return nil
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	go func() {
		defer close(s.done)
		s.member.Run(bg, s.lead)
	}()
	s.member.WaitStart(ctx)
	return nil
}

// lead runs the fleet's leader loop for one term.
func (s *Sink) lead(term context.Context) {
	log := s.log.With().Str("holder", s.holder).Logger()
	s.event(term, "LeaderElected", "bridge "+s.cfg.BridgeID+" leads the fleet: it merges the observations and writes the EndpointSlices")
	io := newLeaderIO(s, log)
	l := fleet.Leader[spec]{Store: io, Registry: io, Shape: shape{}, Report: io,
		Timing: fleet.Timing{StartupGrace: s.cfg.StartupGrace, DeregisterAfter: s.cfg.DeregisterAfter, Resync: s.cfg.Resync,
			MaxWait: 30 * time.Second, RetryMin: time.Second, RetryMax: max(s.cfg.Round, 2*time.Second)},
		Clock: s.clk, Log: log, Backend: "Kubernetes", Target: "endpointslices", Guard: s.cfg.Guard, OnGuard: s.metrics.guard,
		Record: &s.guards}
	l.Run(term)
}

// errNotStarted is returned by Apply before Start.
var errNotStarted = errors.New("kubernetes sink: Start must be called before Apply")

// Apply implements sink.Sink: it publishes this bridge's observation of s
// in its ConfigMap when it changed (0 writes otherwise). With --once and the
// leader Lease held it also writes the slices (no removals).
func (s *Sink) Apply(ctx context.Context, snap endpoint.Snapshot) (sink.Result, error) {
	if s.stop == nil {
		return sink.Result{}, errNotStarted
	}
	return s.member.Apply(ctx, snap)
}

// owners is the owner reference of the fleet's Leases and ConfigMaps: the
// fleet's Service, read once it exists (none before: the leader creates it),
// so that deleting the Service (helm uninstall) has the garbage collector
// delete them too, even when the bridges' own cleanup is refused (their
// Role deleted first).
func (s *Sink) owners(ctx context.Context) []kubeapi.OwnerReference {
	s.ownerMu.Lock()
	defer s.ownerMu.Unlock()
	if s.owner == nil {
		var svc kubeapi.Service
		if err := s.o.Get(ctx, kubeapi.Services, s.cfg.Service, &svc); err != nil || svc.Metadata.Labels[LabelFleet] != s.cfg.Service {
			return nil
		}
		s.owner = &kubeapi.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Metadata.Name, UID: svc.Metadata.UID}
	}
	return []kubeapi.OwnerReference{*s.owner}
}

// event records a Normal Event on the fleet's Service (kubectl describe
// shows who leads), best effort: a failure is logged at debug and changes
// nothing. No Service yet: no event.
func (s *Sink) event(ctx context.Context, reason, msg string) {
	owners := s.owners(ctx)
	if owners == nil {
		return
	}
	now := s.clk.Now().UTC().Format(time.RFC3339)
	ev := map[string]any{"apiVersion": "v1", "kind": "Event",
		"metadata":       map[string]any{"generateName": s.cfg.Service + ".", "namespace": s.ns},
		"involvedObject": map[string]any{"apiVersion": "v1", "kind": "Service", "name": s.cfg.Service, "namespace": s.ns, "uid": owners[0].UID},
		"reason":         reason, "message": msg, "type": "Normal", "count": 1,
		"firstTimestamp": now, "lastTimestamp": now,
		"source":             map[string]any{"component": "udp-discovery-bridge"},
		"reportingComponent": ManagedBy, "reportingInstance": s.holder}
	if err := s.o.Create(ctx, kubeapi.Events, ev, nil); err != nil {
		s.log.Debug().Err(err).Str("reason", reason).Msg("cannot record an event on the service")
		return
	}
	s.countWrite("event")
}

func (s *Sink) obsName() string { return objectName(s.cfg.Service+"-obs-", s.cfg.BridgeID) }

// reconcileOnce is one merge and write for `run --once` as leader; it never
// turns anything unobserved or removes it (a server's readiness follows
// the merged health).
func (s *Sink) reconcileOnce(ctx context.Context) (int, error) {
	io := newLeaderIO(s, s.log)
	obs, _, err := io.read(ctx)
	if err != nil {
		return 0, err
	}
	current, err := io.Entries(ctx)
	if err != nil {
		return 0, err
	}
	p := io.Skip(fleet.Reconcile[spec](shape{}, fleet.Merge(obs.List()), current, s.clk.Now(), s.cfg.DeregisterAfter, true))
	return io.Write(ctx, p, current)
}

// Close implements sink.Sink: it stops the background work, gives the
// leader Lease up if held (a standby takes over at once) and, unless
// on_exit is keep, deletes this bridge's ConfigMap and Lease so its
// observation stops counting at once.
func (s *Sink) Close(ctx context.Context) error {
	if s.stop == nil {
		return nil
	}
	s.stop()
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("kubernetes close: background work did not stop: %w", ctx.Err())
	}
	return s.member.Leave(ctx)
}

// Leave implements member.Publisher: on exit it gives the leader Lease up
// if held (a standby takes over at once) and, unless on_exit is keep,
// withdraws this bridge's observation: it deletes its ConfigMap and Lease
// so the observation stops counting at once. With keep the Lease expires
// by itself and a successor of the same bridge_id takes it over at once.
func (p *publisher) Leave(ctx context.Context, _ string, _ [][]byte) error {
	s := p.s
	var errs []error
	if err := s.leader.release(ctx); err != nil && !kubeapi.IsNotFound(err) {
		errs = append(errs, err)
	}
	if s.cfg.Deregister {
		if err := s.o.Remove(ctx, kubeapi.ConfigMaps, s.obsName(), ""); err != nil && !kubeapi.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete configmap %s: %w", s.obsName(), err))
		} else if err == nil {
			s.countWrite("configmap")
		}
		if err := s.o.Remove(ctx, kubeapi.Leases, s.own.name, ""); err != nil && !kubeapi.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete lease %s: %w", s.own.name, err))
		} else if err == nil {
			s.countWrite("lease")
		}
		s.log.Info().Msg("kubernetes: this bridge's lease and observation deleted on exit")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubernetes close: %w", err)
	}
	return nil
}

func (s *Sink) countWrite(object string) { s.metrics.writes.WithLabelValues(object).Inc() }

var _ interface {
	sink.Sink
	sink.Starter
} = (*Sink)(nil)

// metrics are the sink's Prometheus metrics.
type metrics struct {
	writes    *prometheus.CounterVec
	errors    *prometheus.CounterVec
	observers prometheus.Gauge
	repairs   prometheus.Counter
	guard     func(fleet.GuardState)
}

func newMetrics(reg prometheus.Registerer, leading func() bool) *metrics {
	const ns, sub = "udp_discovery_bridge", "kubernetes"
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "writes_total",
			Help: "API writes by this bridge, by object: endpointslice, service, configmap (its observation), lease, event."}, []string{"object"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Leader failures by stage: observations_read, slices_read, slices_write, observation (undecodable)."}, []string{"stage"}),
		observers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "observers",
			Help: "Bridges whose observations the leader merged last (leader only)."}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "observation_repairs_total",
			Help: "Times this bridge found its observation ConfigMap changed or deleted by someone else on a quiet round and wrote it again."}),
	}
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "leader",
		Help: "1 while this bridge holds the leader Lease and writes the EndpointSlices, else 0."}, func() float64 {
		if leading() {
			return 1
		}
		return 0
	})
	if reg != nil {
		reg.MustRegister(m.writes, m.errors, m.observers, m.repairs, leader)
	}
	m.guard = fleetmetrics.Guard(reg, sub)
	return m
}
