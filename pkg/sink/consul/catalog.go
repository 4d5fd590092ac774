package consul

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/observe"
	"github.com/udp-discovery-bridge/bridge/pkg/sink"
)

// maxChunk bounds one observation key's value, well under Consul's 512 KiB.
const maxChunk = 400 << 10

// Catalog is the Consul sink in catalog mode, for clusters without local
// agents (Consul on Kubernetes since consul-k8s 1.0). Every bridge publishes
// what it observes to the KV store, under <prefix>/obs/<bridge-id>/<chunk>,
// held by its own session; the bridges elect a leader with a lock on
// <prefix>/leader held by the same session, and the leader merges every
// observation and writes the catalog: each server once, on a node of its
// own, with a check that is passing while a live bridge observes it.
//
// Apply publishes (a KV write only when this bridge's set changed); the
// leader works in the background from Start to Close.
type Catalog struct {
	cfg     Config
	log     zerolog.Logger
	api     catalogAPI
	redact  func(error) error
	sess    sessionManager
	leader  leaderState
	metrics *catalogMetrics
	// pace paces the leader's transactions under Consul's rate limit;
	// rlLog logs rate limiting once per episode; renewLimited is set while
	// a renewal of this bridge's session is refused for it.
	pace         *writePacer
	rlLog        *rateLimitLog
	renewLimited atomic.Bool

	obsPrefix string // <prefix>/obs/
	lockKey   string // <prefix>/leader

	mu      sync.Mutex // guards cur and the published state
	cur     *session
	pubSess string   // session of the last publish
	pubVals [][]byte // chunks of the last publish

	stop context.CancelFunc
	done chan struct{}
	// ready is closed once the first session exists (Start waits for it).
	ready     chan struct{}
	readyOnce sync.Once
}

// NewCatalog validates cfg and builds the sink, registering its metrics with
// reg (nil: none). It makes no network call; Start must be called before
// Apply.
func NewCatalog(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Catalog, error) {
	cfg = cfg.withDefaults()
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
		obsPrefix: path.Join(cfg.KVPrefix, "obs") + "/",
		lockKey:   path.Join(cfg.KVPrefix, "leader"),
		ready:     make(chan struct{}),
		leader:    leaderState{first: make(chan struct{})},
	}
	c.sess = sessionManager{
		api: a, node: bridgesNode(cfg.KVPrefix), fleet: cfg.KVPrefix, bridgeID: cfg.BridgeID,
		ttl: cfg.LockSessionTTL, clock: cfg.Clock, log: log, redact: redact,
		renewals: func() { m.sessionRenewals.Inc() },
		rateLimited: func(err error) {
			c.renewLimited.Store(err != nil)
			c.countRateLimit("renew", err)
		},
	}
	c.rlLog = &rateLimitLog{clock: cfg.Clock, log: log}
	c.pace = newWritePacer(cfg.Clock, txnInFlight, cfg.WriteRate, c.renewLimited.Load)
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
		c.run(bg)
	}()
	t := c.cfg.Clock.NewTimer(firstLockWait + c.cfg.LockWait)
	defer t.Stop()
	select {
	case <-c.ready:
		// Let a lone bridge lead from its first round.
		t2 := c.cfg.Clock.NewTimer(firstLockWait)
		defer t2.Stop()
		select {
		case <-c.leader.acquired():
		case <-t2.C():
		case <-ctx.Done():
		}
	case <-t.C():
	case <-ctx.Done():
	}
	return nil
}

// Leader reports whether this bridge writes the catalog now.
func (c *Catalog) Leader() bool { return c.leader.is() }

// run keeps a session, the lock on it and the leader loop going until ctx
// ends. A lost session (Consul unreachable for longer than its TTL, or the
// servers invalidated it) is replaced; the next Apply re-publishes on it.
func (c *Catalog) run(ctx context.Context) {
	retry := lockRetryMin
	failing := false
	for ctx.Err() == nil {
		s, err := c.sess.create(ctx)
		if err != nil {
			if !failing {
				c.log.Warn().Err(err).Msg("cannot create a consul session; retrying with backoff")
				failing = true
			}
			c.metrics.errors.WithLabelValues("session").Inc()
			c.countRateLimit("session", err)
			_ = clock.Sleep(c.cfg.Clock, retry, ctx.Done())
			retry = min(retry*2, lockRetryMax)
			continue
		}
		failing, retry = false, lockRetryMin
		c.mu.Lock()
		c.cur = s
		c.mu.Unlock()
		c.readyOnce.Do(func() { close(c.ready) })
		c.follow(ctx, s)
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

// Apply implements sink.Sink: it publishes this bridge's observation (the
// planner's set) under its session, writing only when the set or the
// session changed. With Once and the lock held it also reconciles the
// catalog before returning.
func (c *Catalog) Apply(ctx context.Context, s endpoint.Snapshot) (sink.Result, error) {
	var res sink.Result
	if c.stop == nil {
		return res, errNotStarted
	}
	chunks, err := observe.Encode(c.observation(s), maxChunk)
	if err != nil {
		return res, fmt.Errorf("consul encode observation of %d servers: %w", len(s.Endpoints), err)
	}
	c.mu.Lock()
	cur := c.cur
	same := cur != nil && c.pubSess == cur.id && slices.EqualFunc(c.pubVals, chunks, bytes.Equal)
	prev := len(c.pubVals)
	if cur == nil || c.pubSess != cur.id {
		prev = 0 // a new session: nothing of ours is under it yet
	}
	c.mu.Unlock()
	if cur == nil {
		return res, errNoSession
	}
	if !same {
		n, err := c.publish(ctx, cur.id, chunks, prev)
		if err != nil {
			return res, err
		}
		res.Writes = n
		c.mu.Lock()
		c.pubSess, c.pubVals = cur.id, chunks
		c.mu.Unlock()
		c.log.Debug().Int("servers", len(s.Endpoints)).Int("chunks", len(chunks)).Msg("observation published")
	}
	if c.cfg.Once && c.Leader() {
		if err := c.reconcileOnce(ctx, cur); err != nil {
			return res, err
		}
	}
	return res, nil
}

// observation is this bridge's observation of s.
func (c *Catalog) observation(s endpoint.Snapshot) observe.Observation {
	o := observe.Observation{Bridge: c.cfg.BridgeID, Entries: make([]observe.Entry, 0, len(s.Endpoints))}
	for _, e := range s.Endpoints {
		if !e.Addr.IsValid() || e.Addr.Port() == 0 {
			continue
		}
		seg := c.cfg.Segment
		if seg == "" && e.Network.IsValid() {
			seg = e.Network.String()
		}
		o.Entries = append(o.Entries, observe.Entry{Addr: netip.AddrPortFrom(e.Addr.Addr().Unmap(), e.Addr.Port()), Segment: seg})
	}
	slices.SortFunc(o.Entries, func(a, b observe.Entry) int { return a.Addr.Compare(b.Addr) })
	o.Entries = slices.CompactFunc(o.Entries, func(a, b observe.Entry) bool { return a.Addr == b.Addr })
	return o
}

// obsKey is the key of chunk i of this bridge's observation.
func (c *Catalog) obsKey(i int) string {
	return c.obsPrefix + c.cfg.BridgeID + "/" + strconv.Itoa(i)
}

// publish writes chunks under session sid in one transaction, deleting the
// chunks of a larger previous publish; it returns the KV writes made.
func (c *Catalog) publish(ctx context.Context, sid string, chunks [][]byte, prev int) (int, error) {
	var ops api.TxnOps
	for i, v := range chunks {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVLock, Key: c.obsKey(i), Value: v, Session: sid}})
	}
	for i := len(chunks); i < prev; i++ {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: c.obsKey(i)}})
	}
	if len(ops) > maxTxnOps {
		return 0, fmt.Errorf("consul publish: %d chunks exceed one transaction; lower max_replies", len(chunks))
	}
	ok, resp, err := c.api.Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	// A refusal for the rate limit is counted; like any error it is
	// retried with the runner's sink backoff.
	c.countRateLimit("publish", err)
	if err != nil {
		return 0, fmt.Errorf("consul publish observation under %s: %w", c.obsKey(0), c.redact(err))
	}
	if !ok {
		return 0, fmt.Errorf("consul publish observation under %s: %s (another session still holds this bridge's keys? a bridge with the same bridge_id may be running)",
			c.obsKey(0), txnErrors(resp))
	}
	c.metrics.kvWrites.Add(float64(len(ops)))
	sink.Wrote(ctx, len(ops))
	return len(ops), nil
}

// countRateLimit counts and logs (once per episode) a request of op that
// Consul refused for its rate limit; it reports whether err was one. A nil
// err is a write that went through, which may end the episode.
func (c *Catalog) countRateLimit(op string, err error) bool {
	if err == nil {
		c.rlLog.ok()
		return false
	}
	if _, ok := rateLimited(err); !ok {
		return false
	}
	c.metrics.rateLimited.WithLabelValues(op).Inc()
	c.rlLog.reject(op, c.redact(err))
	return true
}

// Plan implements sink.Planner: what the leader would change in the catalog
// if this bridge's observation were s (no write).
func (c *Catalog) Plan(ctx context.Context, s endpoint.Snapshot) (endpoint.Diff, error) {
	obs, err := c.readObservations(ctx, 0, 0)
	if err != nil {
		return endpoint.Diff{}, err
	}
	obs.byBridge[c.cfg.BridgeID] = c.observation(s)
	current, err := c.readCatalog(ctx)
	if err != nil {
		return endpoint.Diff{}, err
	}
	p := planCatalog(c.shape(), merge(obs.list()), current, c.cfg.Clock.Now(), c.cfg.DeregisterAfter, false)
	d := endpoint.Diff{Unchanged: p.unchanged}
	for _, e := range slices.Concat(p.register, p.update) {
		d.Added = append(d.Added, e.endpoint())
	}
	for _, e := range slices.Concat(p.fail, p.reap) {
		d.Removed = append(d.Removed, e.endpoint())
	}
	slices.SortFunc(d.Added, endpoint.Compare)
	slices.SortFunc(d.Removed, endpoint.Compare)
	return d, nil
}

// endpoint is the server an entry describes.
func (e catalogEntry) endpoint() endpoint.Endpoint { return e.svc.endpoint() }

// Close implements sink.Sink: it stops the leader loop and the session's
// renewal. With OnExit "deregister" it destroys the session, so Consul
// deletes this bridge's observation at once (the servers only it observes
// turn critical at the leader's next merge) and the lock passes on; with
// "keep" the session expires by itself within twice its TTL.
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
	c.mu.Lock()
	cur := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cur == nil {
		return nil
	}
	if err := c.sess.close(ctx, cur, c.cfg.OnExit == OnExitDeregister); err != nil {
		return fmt.Errorf("consul close: %w", err)
	}
	if c.cfg.OnExit == OnExitDeregister {
		c.log.Info().Msg("consul session destroyed on exit: this bridge's observation is withdrawn")
	}
	return nil
}

var _ interface {
	sink.Sink
	sink.Planner
	sink.Starter
} = (*Catalog)(nil)
