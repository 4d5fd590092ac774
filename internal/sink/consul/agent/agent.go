package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Agent is the Consul sink in agent mode: the bridge talks to its local
// agent, which is authoritative for its node.
//
// Health works by heartbeat: the bridge registers itself (service
// "udp-discovery-bridge", ID "udp-discovery-bridge-<BridgeID>") with one TTL
// check that every Apply refreshes, and every server it registers carries an
// alias check on that service with DeregisterCriticalServiceAfter. A quiet
// round therefore costs exactly one write (the TTL update) however many
// servers there are; if the bridge dies its servers turn critical within the
// TTL and the agent reaps them after DeregisterAfter.
//
// App checks (AppCheck set: the bridge runs app_check): every server also
// carries a TTL check of the bridge's own, "<service id>:app" (AppCheckName),
// whose status says the bridge's verdict (passing when ready, critical when
// pending or failing, so ?passing leaves those out) and whose output is
// that of the check result which made the transition. The registration
// carries the status of the moment; a transition afterwards is one check
// update (PUT /v1/agent/check/update/<id>) of that server only, and a
// round without one writes no check. Its TTL (AppCheckTTL) is long enough
// that the agent never expires it: whether the bridge lives is the alias
// check's business, not this one's. It has no DeregisterCriticalServiceAfter:
// a failing server is never removed for failing.
//
// Ownership: everything the sink lists, changes or removes is selected on the
// agent by a meta filter (managed-by and bridge-id); services of anyone else
// are never touched, even with the same service name.
//
// HA: with LockKey set, Start starts a Lock. Only the holder registers
// servers; a bridge that does not hold the lock keeps only its own bridge
// service and deregisters what it owns. Close releases the lock after
// deregistering (OnExit=deregister).
//
// Apply is not safe for concurrent use with itself, Plan or Close (the Sink
// contract); Leader and Counters are safe from any goroutine.
type Agent struct {
	cfg    Config
	log    zerolog.Logger
	agent  agentAPI
	redact func(error) error
	ids    agentIDs
	shape  shape
	writer writer
	lock   *consulclient.Lock // nil without LockKey

	// known is what this process believes the agent holds of what it owns,
	// by service ID: rebuilt from the agent on resync rounds and kept
	// consistent with the writes that succeeded.
	known map[string]consulclient.Service
	// apps is, likewise, the app check the agent holds of each known
	// server (with AppCheck); an ID missing here is a check in an unknown
	// state, which the round writes.
	apps       map[string]appState
	appsFilter string // selects the app checks on the agent
	lastResync time.Time
	needResync bool
	wasLeader  bool
	beat       heartbeat

	counters counters
	rlLog    *consulclient.RateLimitLog // rate limiting, logged once per episode
}

// agentIDs are the IDs and the filter derived from the bridge ID.
type agentIDs struct {
	bridgeSvc string // the bridge's own service
	check     string // its heartbeat TTL check
	filter    string // selects what this bridge owns
}

// heartbeat is the state of the bridge's TTL check.
type heartbeat struct {
	registered bool      // the bridge service is registered (as far as we know)
	last       time.Time // last successful refresh (cfg.Clock)
}

// counters are cumulative counts of API operations.
type counters struct {
	registers, deregisters, ttlUpdates, appUpdates, lists, rateLimited atomic.Uint64
}

// Counters are cumulative counts of Consul API operations made by one sink;
// they back metrics and tests.
type Counters struct {
	Registers   uint64 // service registrations (servers and the bridge itself)
	Deregisters uint64 // service deregistrations
	TTLUpdates  uint64 // heartbeat TTL updates
	AppUpdates  uint64 // app check updates (transitions)
	Lists       uint64 // filtered reads of owned services and of app checks
	RateLimited uint64 // writes Consul refused for its rate limit
}

// New validates cfg (after applying defaults) and builds the sink. It
// makes no network call; the first Apply registers the bridge service and
// reads what this bridge owns. With LockKey set, Start must be called before
// Apply.
func New(cfg Config, log zerolog.Logger) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	client, err := cfg.Client.NewClient()
	if err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	var lock *consulclient.Lock
	if cfg.Agent.LockKey != "" {
		lc := consulclient.LockConfig{Log: log, Clock: cfg.Clock}
		if cfg.Round > 0 {
			lc.RetryMax = cfg.RetryCap()
		}
		lock, err = consulclient.NewLock(client, &api.LockOptions{
			Key:         cfg.Agent.LockKey,
			Value:       []byte(cfg.BridgeID),
			SessionName: "udp-discovery-bridge " + cfg.BridgeID,
			SessionTTL:  cfg.Agent.LockSessionTTL.String(),
			// Consul's default 15s lock-delay would hold the lock back from
			// the standby after the holder's session is invalidated; the
			// registrations are idempotent, so no delay is needed.
			LockDelay:      time.Millisecond,
			MonitorRetries: 5,
			LockWaitTime:   cfg.Agent.LockWait,
			Namespace:      cfg.Client.Namespace,
		}, lc)
		if err != nil {
			return nil, fmt.Errorf("consul_lock: %w", err)
		}
	}
	return newAgent(cfg, log, client.API.Agent(), lock, client.Redact)
}

// newAgent builds the sink on any agentAPI (tests pass an in-memory one).
// cfg must have its defaults.
func newAgent(cfg Config, log zerolog.Logger, a agentAPI, lock *consulclient.Lock, redact func(error) error) (*Agent, error) {
	filter, err := ownedFilter(cfg.BridgeID)
	if err != nil {
		return nil, fmt.Errorf("bridge_id %q: %w", cfg.BridgeID, err)
	}
	var appsFilter string
	if cfg.AppCheck {
		if appsFilter, err = appChecksFilter(cfg.Service); err != nil {
			return nil, fmt.Errorf("consul_service %q: %w", cfg.Service, err)
		}
	}
	if redact == nil {
		redact = func(err error) error { return err }
	}
	c := &Agent{
		cfg:    cfg,
		log:    log,
		agent:  a,
		redact: redact,
		ids: agentIDs{
			bridgeSvc: BridgeServiceID(cfg.BridgeID),
			check:     bridgeCheckID(cfg.BridgeID),
			filter:    filter,
		},
		shape:      shapeOf(cfg),
		appsFilter: appsFilter,
		apps:       map[string]appState{},
		writer:     writer{parallel: cfg.Agent.Parallel, clock: cfg.Clock, log: log},
		lock:       lock,
		needResync: true,
		rlLog:      consulclient.NewRateLimitLog(cfg.Clock, log),
	}
	c.wasLeader = c.Leader()
	return c, nil
}

// Name implements sink.Sink.
func (c *Agent) Name() string { return "consul" }

// Start implements sink.Starter: with LockKey set it starts the lock and
// waits up to a second for it, so a lone bridge leads from its first round.
func (c *Agent) Start(ctx context.Context) error {
	if c.lock == nil {
		return nil
	}
	c.lock.Start()
	t := c.cfg.Clock.NewTimer(consulclient.FirstLockWait)
	defer t.Stop()
	select {
	case <-c.lock.Acquired():
	case <-t.C():
	case <-ctx.Done():
	}
	return nil
}

// Leader reports whether this bridge registers servers: always true without
// LockKey, otherwise whether it currently holds the lock.
func (c *Agent) Leader() bool { return c.lock == nil || c.lock.Leader() }

// Counters returns the cumulative API operation counts.
func (c *Agent) Counters() Counters {
	return Counters{
		Registers:   c.counters.registers.Load(),
		Deregisters: c.counters.deregisters.Load(),
		TTLUpdates:  c.counters.ttlUpdates.Load(),
		AppUpdates:  c.counters.appUpdates.Load(),
		Lists:       c.counters.lists.Load(),
		RateLimited: c.counters.rateLimited.Load(),
	}
}

// BridgeServiceID returns the ID of this bridge's own service.
func (c *Agent) BridgeServiceID() string { return c.ids.bridgeSvc }

// errNotStarted is returned by Apply on a sink with a lock whose Start was
// never called.
var errNotStarted = errors.New("consul sink with a lock: Start must be called before Apply")

// Apply implements sink.Sink. It refreshes the heartbeat (registering the
// bridge service first if the agent does not have it), re-reads what it owns
// (and their app checks) on resync rounds, then registers new or changed
// servers, updates the app check of servers whose verdict changed, and
// deregisters owned ones that are no longer desired. Each operation is
// tried once; errors name the operation and the service ID. A quiet round makes one
// write: the TTL update. Result.Writes counts every write, the TTL update
// included; Result.Diff.Added holds new and re-registered (changed) servers,
// Result.Diff.Changed those whose app check was updated (transitions).
func (c *Agent) Apply(ctx context.Context, s endpoint.Snapshot) (sink.Result, error) {
	var res sink.Result
	if c.lock != nil && !c.lock.Started() {
		return res, errNotStarted
	}
	if err := c.refresh(ctx, s, &res); err != nil {
		return res, err
	}

	leader := c.Leader()
	if leader != c.wasLeader {
		// Another bridge may have written the same IDs meanwhile: read back
		// what is really ours before acting on the new role.
		c.needResync = true
		c.wasLeader = leader
	}
	if c.needResync || c.cfg.Clock.Now().Sub(c.lastResync) >= c.cfg.Resync {
		owned, apps, err := c.readOwned(ctx)
		if err != nil {
			return res, err
		}
		c.known, c.apps = owned, apps
		c.lastResync = c.cfg.Clock.Now()
		c.needResync = false
	}

	var desired map[string]desiredEntry
	if leader {
		desired = c.shape.desired(s)
	}
	toReg, toDereg, unchanged := reconcile(desired, c.known)
	res.Diff.Unchanged = unchanged

	// A long round (thousands of first registrations) must not let the
	// heartbeat lapse under the servers it is registering.
	changes := len(toReg) + len(toDereg)
	keepAlive := func() {
		if c.beat.registered && c.cfg.Clock.Now().Sub(c.beat.last) >= c.cfg.Agent.TTL/2 {
			if c.updateTTL(ctx, fmt.Sprintf("round %d: applying %d changes", s.Round, changes)) == nil {
				res.Writes++
			}
		}
	}
	regErrs := c.writer.run(ctx, "register", toReg, keepAlive, func(ctx context.Context, id string) error {
		return c.register(ctx, id, desired[id])
	})
	var errs []error
	for i, id := range toReg {
		if regErrs[i] != nil {
			errs = append(errs, regErrs[i])
			continue
		}
		res.Writes++
		_, held := c.known[id]
		c.known[id] = desired[id].svc
		if c.shape.appCheck {
			if held {
				// The agent restores a TTL check's persisted state over
				// the status a registration of an existing check carries:
				// what it holds now is unknown, and written next.
				delete(c.apps, id)
			} else {
				c.apps[id] = appState{Status: desired[id].app.Status}
			}
		}
		res.Diff.Added = append(res.Diff.Added, desired[id].ep)
	}
	fatal := func() bool { return slices.ContainsFunc(errs, func(e error) bool { return fatalForRound(ctx, e) }) }
	if c.shape.appCheck && !fatal() {
		// Health transitions (and the output of new registrations): one
		// check update per server whose check the agent does not hold as
		// wanted; none in a quiet round.
		toUpdate := appUpdates(desired, c.known, c.apps, nil)
		changes += len(toUpdate)
		updErrs := c.writer.run(ctx, "update app check", toUpdate, keepAlive, func(ctx context.Context, id string) error {
			return c.updateApp(ctx, id, desired[id].app)
		})
		for i, id := range toUpdate {
			if err := updErrs[i]; err != nil {
				errs = append(errs, err)
				if errors.Is(err, errAppCheckMissing) {
					// Someone removed the service or its check behind
					// the bridge's back: register it again, with the
					// status of the moment, next time.
					delete(c.known, id)
					delete(c.apps, id)
				}
				continue
			}
			res.Writes++
			c.apps[id] = desired[id].app
			if _, reg := slices.BinarySearch(toReg, id); !reg {
				res.Diff.Changed = append(res.Diff.Changed, desired[id].ep)
			}
		}
	}
	if !fatal() {
		deregErrs := c.writer.run(ctx, "deregister", toDereg, keepAlive, c.deregister)
		for i, id := range toDereg {
			if deregErrs[i] != nil {
				errs = append(errs, deregErrs[i])
				continue
			}
			res.Writes++
			res.Diff.Removed = append(res.Diff.Removed, c.known[id].Endpoint())
			delete(c.known, id)
			delete(c.apps, id)
		}
	}
	slices.SortFunc(res.Diff.Added, endpoint.Compare)
	slices.SortFunc(res.Diff.Changed, endpoint.Compare)
	slices.SortFunc(res.Diff.Removed, endpoint.Compare)
	for _, err := range errs {
		if _, ok := consulclient.RateLimited(err); ok {
			c.counters.rateLimited.Add(1)
			c.rlLog.Reject("register", c.redact(err))
		}
	}
	if len(errs) == 0 && changes > 0 {
		c.rlLog.Succeeded()
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("consul apply round %d: %d of %d writes failed: %w",
			s.Round, len(errs), changes, consulclient.JoinCapped(errs, consulclient.MaxErrsShown))
	}
	if c.lock != nil {
		if err := c.lock.Fault(); err != nil {
			return res, err // a standby that can never take the lock is no standby
		}
	}
	return res, nil
}

var _ interface {
	sink.Sink
	sink.Planner
	sink.Starter
} = (*Agent)(nil)
