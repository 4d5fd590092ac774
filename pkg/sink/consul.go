package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/endpoint"
)

// Consul is the Consul sink in agent mode: the bridge talks to its local
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
// Ownership: everything the sink lists, changes or removes is selected on the
// agent by a meta filter (managed-by and bridge-id); services of anyone else
// are never touched, even with the same service name.
//
// HA: with LockKey set, the first Apply starts a background goroutine that
// holds (or waits for) a consul/api lock on the key. Only the holder
// registers servers; a bridge that does not hold the lock keeps only its own
// bridge service and deregisters what it owns. Close stops the goroutine and
// releases the lock after deregistering (OnExit=deregister).
//
// Apply is not safe for concurrent use with itself, Plan or Close (the Sink
// contract); Leader and Counters are safe from any goroutine.
type Consul struct {
	cfg    ConsulConfig
	log    zerolog.Logger
	client *api.Client
	agent  *api.Agent
	red    redactor
	filter string
	// bridgeID is the ID of the bridge's own service; checksMeta the
	// fingerprint of the check configuration.
	bridgeSvcID string
	checkID     string
	checksMeta  string

	// known is what this process believes the agent holds of what it owns,
	// by service ID. It is rebuilt from the agent on resync rounds and kept
	// consistent with the writes that actually succeeded.
	known       map[string]record
	lastResync  time.Time
	needResync  bool
	bridgeReg   bool      // the bridge service is registered (as far as we know)
	lastBeat    time.Time // last successful heartbeat (Clock)
	wasLeader   bool
	lockStarted bool

	leader   atomic.Bool
	lock     *api.Lock
	lockCtx  context.Context
	lockStop context.CancelFunc
	lockDone chan struct{}
	acquired chan struct{} // closed at the first lock acquisition
	acqOnce  sync.Once

	registers   atomic.Uint64
	deregisters atomic.Uint64
	ttlUpdates  atomic.Uint64
	lists       atomic.Uint64
}

// record is what matters of one registered service to decide whether it must
// be written again.
type record struct {
	Name    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
}

func (r record) equal(o record) bool {
	return r.Name == o.Name && r.Address == o.Address && r.Port == o.Port &&
		slices.Equal(r.Tags, o.Tags) && maps.Equal(r.Meta, o.Meta)
}

// endpoint reconstructs the endpoint a record describes (for Diff.Removed).
func (r record) endpoint() endpoint.Endpoint {
	var e endpoint.Endpoint
	if a, err := netip.ParseAddr(r.Address); err == nil && r.Port > 0 && r.Port <= 65535 {
		e.Addr = netip.AddrPortFrom(a, uint16(r.Port))
	}
	if s, err := netip.ParseAddrPort(r.Meta[MetaSourceAddress]); err == nil {
		e.Source = s
	}
	e.Interface = r.Meta[MetaInterface]
	return e
}

// ConsulCounters are cumulative counts of Consul API operations made by one
// Consul sink; they back metrics and tests.
type ConsulCounters struct {
	Registers   uint64 // service registrations (servers and the bridge itself)
	Deregisters uint64 // service deregistrations
	TTLUpdates  uint64 // heartbeat TTL updates
	Lists       uint64 // filtered reads of owned services
}

// NewConsul validates cfg (after applying defaults) and builds the sink. It
// makes no network call; the first Apply registers the bridge service, reads
// what this bridge owns and, with LockKey set, starts the lock goroutine.
func NewConsul(cfg ConsulConfig, log zerolog.Logger) (*Consul, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	ac, token, err := cfg.apiConfig()
	if err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	red := redactor{secret: token}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", ac.Address, red.err(err))
	}
	filter, err := ownedFilter(cfg.BridgeID)
	if err != nil {
		return nil, fmt.Errorf("consul_bridge_id %q: %w", cfg.BridgeID, err)
	}
	c := &Consul{
		cfg:         cfg,
		log:         log.With().Str("sink", "consul").Logger(),
		client:      client,
		agent:       client.Agent(),
		red:         red,
		filter:      filter,
		bridgeSvcID: BridgeServiceID(cfg.BridgeID),
		checkID:     bridgeCheckID(cfg.BridgeID),
		checksMeta:  checksFingerprint(cfg),
		needResync:  true,
		acquired:    make(chan struct{}),
	}
	if cfg.LockKey == "" {
		c.leader.Store(true)
	} else {
		lock, err := client.LockOpts(&api.LockOptions{
			Key:         cfg.LockKey,
			Value:       []byte(cfg.BridgeID),
			SessionName: "udp-discovery-bridge " + cfg.BridgeID,
			SessionTTL:  cfg.LockSessionTTL.String(),
			// Consul's default 15s lock-delay would hold the lock back from
			// the standby after the holder's session is invalidated; the
			// registrations are idempotent, so no delay is needed.
			LockDelay:      time.Millisecond,
			MonitorRetries: 5,
			LockWaitTime:   cfg.LockWait,
			Namespace:      cfg.Namespace,
		})
		if err != nil {
			return nil, fmt.Errorf("consul_lock %q: %w", cfg.LockKey, red.err(err))
		}
		c.lock = lock
		c.lockCtx, c.lockStop = context.WithCancel(context.Background())
		c.lockDone = make(chan struct{})
	}
	c.wasLeader = c.leader.Load()
	return c, nil
}

// Name implements Sink.
func (c *Consul) Name() string { return "consul" }

// Leader reports whether this bridge registers servers: always true without
// LockKey, otherwise whether it currently holds the lock.
func (c *Consul) Leader() bool { return c.leader.Load() }

// Counters returns the cumulative API operation counts.
func (c *Consul) Counters() ConsulCounters {
	return ConsulCounters{
		Registers:   c.registers.Load(),
		Deregisters: c.deregisters.Load(),
		TTLUpdates:  c.ttlUpdates.Load(),
		Lists:       c.lists.Load(),
	}
}

// BridgeServiceID returns the ID of this bridge's own service.
func (c *Consul) BridgeServiceID() string { return c.bridgeSvcID }

// firstLockWait bounds how long the first Apply waits for the lock so that a
// lone bridge registers in its first round.
const firstLockWait = time.Second

// Apply implements Sink. It refreshes the heartbeat (registering the bridge
// service first if the agent does not have it), re-reads what it owns on
// resync rounds, then registers new or changed servers and deregisters owned
// ones that are no longer desired. Each operation is tried once; errors name
// the operation and the service ID. A quiet round makes one write: the TTL
// update. Result.Writes counts every write, the TTL update included;
// Result.Diff.Added holds new and re-registered (changed) servers.
func (c *Consul) Apply(ctx context.Context, s endpoint.Snapshot) (Result, error) {
	var res Result
	if c.lock != nil && !c.lockStarted {
		c.lockStarted = true
		go c.runLock()
		select { // let a lone bridge lead from its first round
		case <-c.acquired:
		case <-time.After(firstLockWait):
		case <-ctx.Done():
		}
	}

	if err := c.heartbeat(ctx, s, &res); err != nil {
		return res, err
	}

	leader := c.leader.Load()
	if leader != c.wasLeader {
		// Another bridge may have written the same IDs meanwhile: read back
		// what is really ours before acting on the new role.
		c.needResync = true
		c.wasLeader = leader
	}
	if c.needResync || c.cfg.Clock().Sub(c.lastResync) >= c.cfg.Resync {
		owned, err := c.listOwned(ctx)
		if err != nil {
			return res, err
		}
		c.known = owned
		c.lastResync = c.cfg.Clock()
		c.needResync = false
	}

	var desired map[string]desiredEntry
	if leader {
		desired = c.desired(s)
	}
	toReg, toDereg, unchanged := reconcile(desired, c.known)
	res.Diff.Unchanged = unchanged

	// A long round (thousands of first registrations) must not let the
	// heartbeat lapse under the servers it is registering.
	keepAlive := func() {
		if c.bridgeReg && c.cfg.Clock().Sub(c.lastBeat) >= c.cfg.TTL/2 {
			if c.updateTTL(ctx, fmt.Sprintf("round %d: applying %d changes", s.Round, len(toReg)+len(toDereg))) == nil {
				res.Writes++
			}
		}
	}
	regErrs := c.parallel(ctx, toReg, keepAlive, func(ctx context.Context, id string) error {
		return c.register(ctx, id, desired[id])
	})
	var errs []error
	for i, id := range toReg {
		if regErrs[i] != nil {
			errs = append(errs, regErrs[i])
			continue
		}
		res.Writes++
		c.known[id] = desired[id].rec
		res.Diff.Added = append(res.Diff.Added, desired[id].ep)
	}
	if !slices.ContainsFunc(errs, func(e error) bool { return fatalForRound(ctx, e) }) {
		deregErrs := c.parallel(ctx, toDereg, keepAlive, c.deregister)
		for i, id := range toDereg {
			if deregErrs[i] != nil {
				errs = append(errs, deregErrs[i])
				continue
			}
			res.Writes++
			res.Diff.Removed = append(res.Diff.Removed, c.known[id].endpoint())
			delete(c.known, id)
		}
	}
	slices.SortFunc(res.Diff.Added, endpoint.Compare)
	slices.SortFunc(res.Diff.Removed, endpoint.Compare)
	if len(errs) > 0 {
		return res, fmt.Errorf("consul apply round %d: %d of %d writes failed: %w",
			s.Round, len(errs), len(toReg)+len(toDereg), joinCapped(errs, maxErrsShown))
	}
	return res, nil
}

// maxErrsShown caps how many per-service errors one Apply error spells out.
const maxErrsShown = 5

// joinCapped joins the first max errors and counts the rest; errors.Is/As
// see only the joined ones.
func joinCapped(errs []error, max int) error {
	if len(errs) <= max {
		return errors.Join(errs...)
	}
	shown := slices.Clone(errs[:max])
	return errors.Join(append(shown, fmt.Errorf("... and %d more", len(errs)-max))...)
}

// errNotTried marks writes skipped after a fatal error in the same round.
var errNotTried = errors.New("not tried: an earlier write of this round could not reach the agent")

// parallel runs op for every ID with at most cfg.Parallel in flight and
// returns the error of each (nil on success). Once an op fails in a way that
// makes the rest pointless (agent unreachable, ctx done), the ops not yet
// started are skipped with errNotTried. Only the caller touches c.known, so
// the map stays consistent with what succeeded.
//
// tick is called between dispatches on the caller's goroutine (for the
// heartbeat of long rounds).
func (c *Consul) parallel(ctx context.Context, ids []string, tick func(), op func(context.Context, string) error) []error {
	errs := make([]error, len(ids))
	if len(ids) == 0 {
		return errs
	}
	var (
		wg   sync.WaitGroup
		stop atomic.Bool
		sem  = make(chan struct{}, c.cfg.Parallel)
	)
	for i, id := range ids {
		sem <- struct{}{}
		if i%64 == 63 {
			tick()
		}
		if stop.Load() {
			<-sem
			errs[i] = fmt.Errorf("%s: %w", id, errNotTried)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := op(ctx, id); err != nil {
				errs[i] = err
				if fatalForRound(ctx, err) {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// fatalForRound reports whether err means the agent is unreachable (or the
// round was cancelled), so trying the remaining writes is pointless. HTTP
// status errors concern one service and the round goes on.
func fatalForRound(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	if errors.Is(err, errNotTried) {
		return true
	}
	var se api.StatusError
	return !errors.As(err, &se)
}

// heartbeat refreshes the bridge's TTL check, registering the bridge service
// when this process has not yet done so or the agent lost it (agent
// restarted); in the latter case it also forces a resync.
func (c *Consul) heartbeat(ctx context.Context, s endpoint.Snapshot, res *Result) error {
	if c.bridgeReg {
		err := c.updateTTL(ctx, fmt.Sprintf("round %d: %d servers", s.Round, len(s.Endpoints)))
		if err == nil {
			res.Writes++
			return nil
		}
		if !checkMissing(err) {
			return fmt.Errorf("consul update ttl of check %s: %w", c.checkID, c.red.err(err))
		}
		c.log.Warn().Str("check_id", c.checkID).Msg("agent lost the bridge heartbeat check; re-registering the bridge and resyncing")
		c.bridgeReg = false
		c.needResync = true
	}
	if err := c.registerBridge(ctx, s); err != nil {
		return err
	}
	res.Writes++
	return nil
}

// updateTTL marks the heartbeat check passing with note.
func (c *Consul) updateTTL(ctx context.Context, note string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := c.agent.UpdateTTLOpts(c.checkID, note, api.HealthPassing, q); err != nil {
		return err
	}
	c.ttlUpdates.Add(1)
	c.lastBeat = c.cfg.Clock()
	return nil
}

// checkMissing reports whether an UpdateTTL error means the agent does not
// know the check (it restarted, or someone deregistered the bridge).
func checkMissing(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == 404 {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "does not have associated TTL") ||
		strings.Contains(msg, "Unknown check") ||
		(strings.Contains(msg, "CheckID") && strings.Contains(msg, "does not exist"))
}

// registerBridge registers the bridge's own service with its TTL check,
// already passing so alias checks pass at once.
func (c *Consul) registerBridge(ctx context.Context, s endpoint.Snapshot) error {
	reg := &api.AgentServiceRegistration{
		ID:   c.bridgeSvcID,
		Name: BridgeServiceName,
		Meta: map[string]string{MetaManagedBy: ManagedByValue, MetaBridgeID: c.cfg.BridgeID},
		Check: &api.AgentServiceCheck{
			CheckID: c.checkID,
			Name:    "udp-discovery-bridge heartbeat",
			TTL:     c.cfg.TTL.String(),
			Status:  api.HealthPassing,
			Notes:   "refreshed by the bridge after every discovery round",
		},
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := c.agent.ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("consul register bridge service %s: %w", c.bridgeSvcID, c.red.err(err))
	}
	c.registers.Add(1)
	c.bridgeReg = true
	c.lastBeat = c.cfg.Clock()
	c.log.Info().Str("service_id", c.bridgeSvcID).Uint64("round", s.Round).Msg("bridge service registered")
	return nil
}

// desiredEntry is one server to register.
type desiredEntry struct {
	ep  endpoint.Endpoint
	rec record
}

// desired maps the snapshot to service IDs and records.
func (c *Consul) desired(s endpoint.Snapshot) map[string]desiredEntry {
	out := make(map[string]desiredEntry, len(s.Endpoints))
	for _, e := range s.Endpoints {
		if !e.Addr.IsValid() || e.Addr.Port() == 0 {
			continue
		}
		meta := map[string]string{
			MetaManagedBy: ManagedByValue,
			MetaBridgeID:  c.cfg.BridgeID,
			MetaChecks:    c.checksMeta,
		}
		if e.Interface != "" {
			meta[MetaInterface] = e.Interface
		}
		if e.Source.IsValid() {
			meta[MetaSourceAddress] = e.Source.String()
		}
		out[ServiceID(c.cfg.Service, e.Addr)] = desiredEntry{ep: e, rec: record{
			Name:    c.cfg.Service,
			Address: e.Addr.Addr().String(),
			Port:    int(e.Addr.Port()),
			Tags:    slices.Clone(c.cfg.Tags),
			Meta:    meta,
		}}
	}
	return out
}

// reconcile returns the IDs to (re-)register and to deregister, each sorted,
// and how many desired entries the agent already holds as wanted.
func reconcile(desired map[string]desiredEntry, known map[string]record) (toReg, toDereg []string, unchanged int) {
	for id, d := range desired {
		if k, ok := known[id]; ok && k.equal(d.rec) {
			unchanged++
			continue
		}
		toReg = append(toReg, id)
	}
	for id := range known {
		if _, ok := desired[id]; !ok {
			toDereg = append(toDereg, id)
		}
	}
	slices.Sort(toReg)
	slices.Sort(toDereg)
	return toReg, toDereg, unchanged
}

// checksFingerprint summarises the per-server check configuration; it is
// stored in meta so a restart with other check settings re-registers.
func checksFingerprint(cfg ConsulConfig) string {
	s := "alias/" + cfg.DeregisterAfter.String()
	switch cfg.Check {
	case CheckTCP:
		s += "+tcp/" + cfg.CheckInterval.String()
	case CheckHTTP:
		s += "+http/" + cfg.CheckInterval.String() + cfg.HTTPPath
	}
	return s
}

// register registers one server with its alias check (and optional TCP or
// HTTP check), replacing any checks it had.
func (c *Consul) register(ctx context.Context, id string, d desiredEntry) error {
	checks := api.AgentServiceChecks{{
		CheckID:                        id + ":alias",
		Name:                           "udp-discovery-bridge heartbeat (alias)",
		AliasService:                   c.bridgeSvcID,
		DeregisterCriticalServiceAfter: c.cfg.DeregisterAfter.String(),
	}}
	hostPort := net.JoinHostPort(d.rec.Address, strconv.Itoa(d.rec.Port))
	timeout := min(c.cfg.CheckInterval, 5*time.Second).String()
	switch c.cfg.Check {
	case CheckTCP:
		checks = append(checks, &api.AgentServiceCheck{
			CheckID: id + ":tcp", Name: "tcp " + hostPort,
			TCP: hostPort, Interval: c.cfg.CheckInterval.String(), Timeout: timeout,
		})
	case CheckHTTP:
		checks = append(checks, &api.AgentServiceCheck{
			CheckID: id + ":http", Name: "http " + hostPort,
			HTTP: "http://" + hostPort + c.cfg.HTTPPath, Interval: c.cfg.CheckInterval.String(), Timeout: timeout,
		})
	}
	reg := &api.AgentServiceRegistration{
		ID:      id,
		Name:    d.rec.Name,
		Address: d.rec.Address,
		Port:    d.rec.Port,
		Tags:    d.rec.Tags,
		Meta:    d.rec.Meta,
		Checks:  checks,
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := c.agent.ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("consul register %s (%s): %w", id, hostPort, c.red.err(err))
	}
	c.registers.Add(1)
	return nil
}

// deregister removes one service by ID.
func (c *Consul) deregister(ctx context.Context, id string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := c.agent.ServiceDeregisterOpts(id, q); err != nil {
		var se api.StatusError
		if errors.As(err, &se) && se.Code == 404 {
			return nil // already gone: the goal is reached
		}
		return fmt.Errorf("consul deregister %s: %w", id, c.red.err(err))
	}
	c.deregisters.Add(1)
	return nil
}

// listOwned reads the servers this bridge owns from the agent, filtered on
// the agent by meta (the bridge's own service is left out).
func (c *Consul) listOwned(ctx context.Context) (map[string]record, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	svcs, err := c.agent.ServicesWithFilterOpts(c.filter, q)
	if err != nil {
		return nil, fmt.Errorf("consul list services owned by bridge %q: %w", c.cfg.BridgeID, c.red.err(err))
	}
	c.lists.Add(1)
	out := make(map[string]record, len(svcs))
	for id, s := range svcs {
		if id == c.bridgeSvcID || s.Service == BridgeServiceName {
			continue
		}
		out[id] = record{Name: s.Service, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: s.Meta}
	}
	return out, nil
}

// Plan implements Planner: it reads what this bridge owns (no write) and
// returns what Apply would change as leader. Added holds new and changed
// servers, Removed owned services no longer desired.
func (c *Consul) Plan(ctx context.Context, s endpoint.Snapshot) (endpoint.Diff, error) {
	owned, err := c.listOwned(ctx)
	if err != nil {
		return endpoint.Diff{}, err
	}
	desired := c.desired(s)
	toReg, toDereg, unchanged := reconcile(desired, owned)
	d := endpoint.Diff{Unchanged: unchanged}
	for _, id := range toReg {
		d.Added = append(d.Added, desired[id].ep)
	}
	for _, id := range toDereg {
		d.Removed = append(d.Removed, owned[id].endpoint())
	}
	slices.SortFunc(d.Added, endpoint.Compare)
	slices.SortFunc(d.Removed, endpoint.Compare)
	return d, nil
}

// Close implements Sink. With OnExit "deregister" it removes every service
// this bridge owns (listed with the owner filter, so leftovers of earlier
// runs go too) and then the bridge's own service; with "keep" it leaves them
// for the heartbeat to expire. It then releases the lock, if held.
func (c *Consul) Close(ctx context.Context) error {
	var errs []error
	if c.cfg.OnExit == OnExitDeregister {
		ids := slices.Collect(maps.Keys(c.known))
		if owned, err := c.listOwned(ctx); err != nil {
			errs = append(errs, err) // fall back to what we know we wrote
		} else {
			ids = slices.Collect(maps.Keys(owned))
		}
		slices.Sort(ids)
		for _, id := range ids {
			if err := c.deregister(ctx, id); err != nil {
				errs = append(errs, err)
				if fatalForRound(ctx, err) {
					break
				}
				continue
			}
			delete(c.known, id)
		}
		if err := c.deregister(ctx, c.bridgeSvcID); err != nil {
			errs = append(errs, err)
		}
		c.bridgeReg = false
		c.log.Info().Int("services", len(ids)).Msg("deregistered owned services on exit")
	}
	if c.lock != nil {
		c.lockStop()
		if c.lockStarted {
			select {
			case <-c.lockDone:
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("consul release lock %q: %w", c.cfg.LockKey, ctx.Err()))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("consul close: %w", joinCapped(errs, maxErrsShown))
	}
	return nil
}
