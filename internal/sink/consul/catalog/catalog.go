package catalog

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/member"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Catalog is the Consul sink in catalog mode, for clusters without local
// agents (Consul on Kubernetes since consul-k8s 1.0). Every bridge publishes
// what it observes to the KV store, under <prefix>/obs/<bridge-id>/<chunk>,
// held by its own session; the bridges elect a leader with a lock on
// <prefix>/leader held by the same session, and the leader merges every
// observation and writes the catalog: each server once, on a node of its
// own, with a check that is passing while a live bridge observes it and,
// when the bridges run app checks (app_check), a check that carries the
// fleet's verdict on its app (AppCheckID; fleet.Merge): passing while it is
// ready, critical while it is pending or failing, written on a transition
// of the verdict only. Consul's ?passing ANDs a service's checks, so it
// leaves a server out while its app is not ready; DNS, which by default
// leaves out only critical instances, does too. The consul-esm check that
// --consul-check used to add (ProbeCheckID) is no longer written: the
// bridges run the check themselves (consul_check configures it), and the
// leader deletes the old definition where it finds it.
//
// Apply publishes (a KV write only when this bridge's set changed); the
// leader works in the background from Start to Close.
type Catalog struct {
	cfg    Config
	log    zerolog.Logger
	api    catalogAPI
	redact func(error) error
	sess   sessionManager
	// lock is the lock of the current session (nil between sessions): its
	// term is the one truth of whether this bridge leads.
	lock atomic.Pointer[consulclient.Lock]
	// member is this bridge's side of the fleet: publishing its
	// observation (catalogPublisher) and standing for the lock
	// (catalogElector).
	member  *member.Member
	pub     *catalogPublisher
	metrics *catalogMetrics
	foreign foreignNodes // leader only: nodes in the way
	// guards is what the fleet's removal guard did in the leader's last
	// plan (empty when this bridge does not lead).
	guards fleet.GuardRecord
	// sharedChecked is set once the leader found the fleet's shared node
	// as it should be (LayoutSharedNode), and cleared at every read of the
	// catalog and after a failed write, so that the node is read again.
	sharedChecked atomic.Bool
	// entries is how many entries the last read of the catalog found: the
	// next read sizes its map by it (a map grown entry by entry to 10,000
	// leaves several times its size of garbage).
	entries atomic.Int64
	// pace paces the leader's transactions under Consul's rate limit;
	// rlLog logs rate limiting once per episode; renewLimited is set while
	// a renewal of this bridge's session is refused for it.
	pace         *writePacer
	rlLog        *consulclient.RateLimitLog
	renewLimited atomic.Bool

	obsPrefix string // <prefix>/obs/
	lockKey   string // <prefix>/leader

	mu  sync.Mutex // guards cur
	cur *session

	stop context.CancelFunc
	done chan struct{}
	// ready is closed once the first session exists (Start waits for it).
	ready     chan struct{}
	readyOnce sync.Once

	faults faults
}

// faults are the standing errors of the session loop, which Apply
// returns so that they count as sink errors and fail /readyz (the leader's
// standing ACL refusal is the Member's: member.SetFault).
type faults struct {
	mu sync.Mutex
	// session is why the last session could not be created (nil once one
	// exists): an ACL refusal, a TLS error, Consul unreachable.
	session error
}

func (f *faults) set(dst *error, err error) {
	f.mu.Lock()
	*dst = err
	f.mu.Unlock()
}

func (f *faults) get() (session error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.session
}

// New validates cfg (after applying defaults) and builds the sink,
// registering its metrics with reg (nil: none). It makes no network call;
// Start must be called before Apply (errCatalogNotStarted).
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Catalog, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	client, err := cfg.Client.NewClient()
	if err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	return newCatalog(cfg, log, apiCatalog{c: client.API}, client.Redact, newCatalogMetrics(reg)), nil
}

func newCatalog(cfg Config, log zerolog.Logger, a catalogAPI, redact func(error) error, m *catalogMetrics) *Catalog {
	if redact == nil {
		redact = func(err error) error { return err }
	}
	if m == nil {
		m = newCatalogMetrics(nil)
	}
	c := &Catalog{
		cfg: cfg, log: log, api: a, redact: redact, metrics: m,
		obsPrefix: path.Join(cfg.Catalog.KVPrefix, "obs") + "/",
		lockKey:   path.Join(cfg.Catalog.KVPrefix, "leader"),
		ready:     make(chan struct{}),
	}
	c.pub = &catalogPublisher{c: c}
	c.member = member.New(member.Options{Registry: "consul", BridgeID: cfg.BridgeID, Segment: cfg.Catalog.Segment,
		Round: cfg.Round, Clock: cfg.Clock, Log: log, MaxChunk: maxChunk,
		// Let a lone bridge lead from its first round.
		ReadyWait: consulclient.FirstLockWait + cfg.Catalog.LockWait, FirstTermWait: consulclient.FirstLockWait,
		Fault: func(err error) error { return fmt.Errorf("consul catalog leader: %w", err) },
		Once:  c.onceAsLeader(),
	}, c.pub, catalogElector{c})
	m.leading.Store(c)
	c.sess = sessionManager{
		api: a, node: bridgesNode(cfg.Catalog.KVPrefix), fleet: cfg.Catalog.KVPrefix, bridgeID: cfg.BridgeID,
		ttl: cfg.Catalog.SessionTTL, clock: cfg.Clock, log: log, redact: redact,
		renewals: func() { m.sessionRenewals.Inc() },
		rateLimited: func(err error) {
			c.renewLimited.Store(err != nil)
			c.countRateLimit("renew", err)
		},
	}
	c.sess.rules = c.catalogRules
	c.rlLog = consulclient.NewRateLimitLog(cfg.Clock, log)
	c.pace = newWritePacer(cfg.Clock, cfg.Catalog.InFlight, cfg.Catalog.WriteRate, c.renewLimited.Load)
	return c
}

// Name implements sink.Sink.
func (c *Catalog) Name() string { return "consul" }

// Start implements sink.Starter: it starts the session, lock and leader
// loop in the background and waits up to a few seconds for the first
// session, so the first Apply can publish.
func (c *Catalog) Start(ctx context.Context) error {
	if c.stop != nil {
		return nil
	}
	bg, stop := context.WithCancel(context.Background())
	c.stop, c.done = stop, make(chan struct{})
	go func() {
		defer close(c.done)
		c.member.Run(bg, func(term context.Context) { c.lead(term, termSession(term)) })
	}()
	c.member.WaitStart(ctx)
	return nil
}

// Leader reports whether this bridge writes the catalog now: whether the
// lock of its session is in a term. The leader gauge reads it.
func (c *Catalog) Leader() bool { return c.locked() }

// locked reports whether the lock of the current session is in a term
// (catalogElector.Leader).
func (c *Catalog) locked() bool {
	l := c.lock.Load()
	return l != nil && l.Leader()
}

// run keeps a session, the lock on it and the leader loop going until ctx
// ends. A lost session (Consul unreachable for longer than its TTL, or the
// servers invalidated it) is replaced; the next Apply re-publishes on it.
func (c *Catalog) run(ctx context.Context, lead func(term context.Context)) {
	retry := consulclient.LockRetryMin
	retryMax := c.cfg.RetryCap()
	failing := false
	for ctx.Err() == nil {
		s, err := c.sess.create(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.faults.set(&c.faults.session, err)
			if !failing {
				consulclient.WithRule(c.log.Error(), err).Err(err).Msg("cannot create a consul session; retrying with backoff")
				failing = true
			}
			c.metrics.errors.WithLabelValues("session").Inc()
			c.countRateLimit("session", err)
			_ = clock.Sleep(c.cfg.Clock, retry, ctx.Done())
			retry = min(retry*2, retryMax)
			continue
		}
		failing, retry = false, consulclient.LockRetryMin
		c.faults.set(&c.faults.session, nil)
		c.mu.Lock()
		c.cur = s
		c.mu.Unlock()
		c.readyOnce.Do(func() { close(c.ready) })
		c.republish(ctx)
		c.campaign(ctx, s, lead)
		c.mu.Lock()
		if ctx.Err() == nil {
			c.cur = nil
		}
		c.mu.Unlock()
		if ctx.Err() == nil {
			_ = c.sess.close(context.Background(), s, false)
		}
	}
}

// errNoSession is returned by Apply before the first session exists or
// while a lost one is replaced; the runner retries with backoff.
var errNoSession = errors.New("no consul session yet (Consul unreachable?); the observation will be published once there is one")

// errCatalogNotStarted is returned by Apply before Start.
var errCatalogNotStarted = errors.New("consul sink in catalog mode: Start must be called before Apply")

// Apply implements sink.Sink: it publishes this bridge's observation (the
// planner's set) under its session, writing only when the set or the
// session changed; otherwise it reads its own keys back and rewrites them
// if someone else changed them. A snapshot older than two rounds (the
// process was paused) is not published: the next round's will be. With Once
// and the lock held it also reconciles the catalog before returning.
func (c *Catalog) Apply(ctx context.Context, s endpoint.Snapshot) (sink.Result, error) {
	var res sink.Result
	if c.stop == nil {
		return res, errCatalogNotStarted
	}
	return c.member.Apply(ctx, s)
}

// countRateLimit counts and logs (once per episode) a request of op that
// Consul refused for its rate limit; it reports whether err was one. A nil
// err is a write that went through, which may end the episode.
func (c *Catalog) countRateLimit(op string, err error) bool {
	if err == nil {
		c.rlLog.Succeeded()
		return false
	}
	if _, ok := consulclient.RateLimited(err); !ok {
		return false
	}
	c.metrics.rateLimited.WithLabelValues(op).Inc()
	c.rlLog.Reject(op, c.redact(err))
	return true
}

// Plan implements sink.Planner: what the leader would change in the catalog
// if this bridge's observation were s (no write).
func (c *Catalog) Plan(ctx context.Context, s endpoint.Snapshot) (endpoint.Diff, error) {
	obs, rel, err := c.readObservationsReleased(ctx, 0, 0)
	if err != nil {
		return endpoint.Diff{}, err
	}
	c.logBad(obs)
	for b, r := range rel { // handed over on exit: the leader stands them in for a while
		obs.ByBridge[b] = r.obs
	}
	obs.ByBridge[c.cfg.BridgeID] = c.member.Observation(s)
	current, err := c.readCatalog(ctx)
	if err != nil {
		return endpoint.Diff{}, err
	}
	p := fleet.Reconcile(c.shape(), fleet.Merge(obs.List()), current, c.cfg.Clock.Now(), c.cfg.DeregisterAfter, false)
	d := endpoint.Diff{Unchanged: p.Unchanged}
	for _, e := range p.Register {
		d.Added = append(d.Added, e.Spec.endpoint())
	}
	for _, e := range p.Update {
		// A server whose app check alone changes is a transition of the
		// fleet's verdict (or a new output of the same state); any other
		// update rewrites it.
		held, want := current[e.Key].Spec, e.Spec
		if held.svcID != want.svcID || !held.svc.Equal(want.svc) {
			d.Added = append(d.Added, want.endpoint())
			continue
		}
		d.Unchanged++
		if healthOf(held.app) != healthOf(want.app) {
			ep := want.endpoint()
			ep.Check = endpoint.Check{State: healthOf(want.app)}
			if want.app != nil {
				ep.Check.Output = want.app.output
			}
			d.Changed = append(d.Changed, ep)
		}
	}
	for _, e := range slices.Concat(p.Fail, p.Remove) {
		d.Removed = append(d.Removed, e.Spec.endpoint())
	}
	slices.SortFunc(d.Added, endpoint.Compare)
	slices.SortFunc(d.Removed, endpoint.Compare)
	slices.SortFunc(d.Changed, endpoint.Compare)
	return d, nil
}

// Close implements sink.Sink: it stops the leader loop and the session's
// renewal. With OnExit "deregister" it hands the observation over
// (handOver: released, so that a successor of the same bridge_id takes it
// over; the leader deletes it after a grace otherwise) and destroys the
// session, so the lock passes on at once; with "keep" the session expires
// by itself within twice its TTL, and the observation with it.
func (c *Catalog) Close(ctx context.Context) error {
	if c.stop == nil {
		return nil
	}
	c.stop()
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("consul close: leader loop did not stop: %w", ctx.Err())
	}
	return c.member.Leave(ctx)
}

var _ interface {
	sink.Sink
	sink.Planner
	sink.Starter
} = (*Catalog)(nil)
