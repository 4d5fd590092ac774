package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/observe"
)

const (
	// maxTxnOps is Consul's limit of operations in one transaction.
	maxTxnOps = 64
	// txnInFlight is how many transactions the leader keeps in flight.
	txnInFlight = 8
	// maxLeaderWait bounds one blocking read of the observations.
	maxLeaderWait = 30 * time.Second
	// leaderRetry bounds the backoff after a failed read or write.
	leaderRetryMax = 10 * time.Second
)

// errNotLeader means a transaction's guard found the lock held by another
// session: this bridge is no longer the leader and must stop writing.
var errNotLeader = errors.New("consul lock no longer held by this bridge's session")

// shape is what every catalog entry of this fleet shares.
func (c *Catalog) shape() catalogShape {
	sh := catalogShape{service: c.cfg.Service, tags: c.cfg.Tags, fleet: c.cfg.KVPrefix,
		checks: checksFingerprint(c.cfg), segmentTag: c.cfg.SegmentTag,
		observers: c.cfg.ObserversMeta}
	if c.cfg.Check != CheckNone {
		sh.probe = &probeDef{kind: c.cfg.Check, path: c.cfg.HTTPPath, interval: c.cfg.CheckInterval}
	}
	return sh
}

// lead merges observations and writes the catalog for as long as this
// bridge holds the lock with session s. It wakes when an observation
// changes (blocking query), when an unobserved server is due for removal,
// and at least every maxLeaderWait; it re-reads the catalog every Resync.
func (c *Catalog) lead(ctx context.Context, s *session, lock *Lock) {
	// Losing the session ends every wait and request of the leader too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.lost:
			cancel()
		case <-ctx.Done():
		}
	}()
	log := c.log.With().Str("session", s.id).Logger()
	start := c.cfg.Clock.Now()
	holdUntil := start.Add(c.cfg.StartupGrace)
	log.Info().Dur("startup_grace", c.cfg.StartupGrace).Msg("leading: merging observations into the catalog")
	var (
		current    map[string]catalogEntry
		lastRead   time.Time
		index      uint64
		retry      = lockRetryMin
		lastWrites = -1
	)
	backoff := func() bool {
		ok := clock.Sleep(c.cfg.Clock, retry, ctx.Done())
		retry = min(retry*2, leaderRetryMax)
		return ok
	}
	// An ACL refusal stands until a read or write succeeds: Apply returns
	// it (a sink error, /readyz fails), and it is logged once.
	defer c.faults.set(&c.faults.leader, nil)
	var lastACL string
	refused := func(err error) {
		if !isACL(err) {
			return
		}
		c.faults.set(&c.faults.leader, err)
		if err.Error() != lastACL {
			lastACL = err.Error()
			withRule(log.Error(), err).Err(err).Msg("leader: Consul refused a catalog operation for its ACLs; fix the token's policy")
		}
	}
	cleared := func() {
		if lastACL != "" {
			lastACL = ""
			c.faults.set(&c.faults.leader, nil)
			log.Info().Msg("leader: Consul accepts the catalog operations again")
		}
	}
	for ctx.Err() == nil && lock.Leader() {
		select {
		case <-s.lost:
			return
		default:
		}
		now := c.cfg.Clock.Now()
		if current == nil || now.Sub(lastRead) >= c.cfg.Resync {
			cur, err := c.readCatalog(ctx)
			if err != nil {
				log.Warn().Err(err).Msg("leader: cannot read the catalog; retrying")
				c.metrics.errors.WithLabelValues("catalog_read").Inc()
				refused(err)
				if !backoff() {
					return
				}
				continue
			}
			current, lastRead = cur, now
		}
		wait := maxLeaderWait
		if at, ok := nextReap(current, c.cfg.DeregisterAfter); ok {
			wait = min(wait, max(at.Sub(now), 0))
		}
		if now.Before(holdUntil) {
			wait = min(wait, holdUntil.Sub(now))
		}
		obs, err := c.readObservations(ctx, index, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn().Err(err).Msg("leader: cannot read the observations; retrying")
			c.metrics.errors.WithLabelValues("kv_read").Inc()
			refused(err)
			if !backoff() {
				return
			}
			continue
		}
		index = obs.index
		mergeStart := c.cfg.Clock.Now()
		list := obs.list()
		c.metrics.observers.Set(float64(len(list)))
		p := planCatalog(c.shape(), merge(list), current, mergeStart, c.cfg.DeregisterAfter, mergeStart.Before(holdUntil))
		c.metrics.mergeSeconds.Set(c.cfg.Clock.Now().Sub(mergeStart).Seconds())
		if p.empty() {
			retry = lockRetryMin
			cleared()
			continue
		}
		writeStart := c.cfg.Clock.Now()
		n, err := c.write(ctx, s.id, p, current)
		if n != lastWrites || err != nil {
			ev := log.Info()
			if err != nil {
				ev = withRule(log.Warn(), err)
			}
			ev.Int("registered", len(p.register)).Int("updated", len(p.update)).Int("passing", len(p.pass)).Int("critical", len(p.fail)).
				Int("removed", len(p.reap)).Int("unchanged", p.unchanged).Int("observers", len(list)).Int("writes", n).
				Str("took", c.cfg.Clock.Now().Sub(writeStart).String()).Err(err).Msg("catalog reconciled")
		}
		lastWrites = n
		if errors.Is(err, errNotLeader) {
			log.Warn().Msg("leader: the lock moved to another bridge; stopping writes")
			return
		}
		if err != nil {
			c.metrics.errors.WithLabelValues("catalog_write").Inc()
			refused(err)
			index = 0 // re-plan right after the backoff, not at the next change
			if !backoff() {
				return
			}
			continue
		}
		retry = lockRetryMin
		cleared()
	}
}

// reconcileOnce is one merge and write, for `run --once` as leader. It
// never turns anything critical or removes it: bridges that have not
// published yet must not cost their servers.
func (c *Catalog) reconcileOnce(ctx context.Context, s *session) error {
	obs, err := c.readObservations(ctx, 0, 0)
	if err != nil {
		return err
	}
	current, err := c.readCatalog(ctx)
	if err != nil {
		return err
	}
	p := planCatalog(c.shape(), merge(obs.list()), current, c.cfg.Clock.Now(), c.cfg.DeregisterAfter, true)
	_, err = c.write(ctx, s.id, p, current)
	return err
}

// observations are the decoded observations under the prefix.
type observations struct {
	byBridge map[string]observe.Observation
	index    uint64
}

func (o observations) list() []observe.Observation {
	out := make([]observe.Observation, 0, len(o.byBridge))
	for _, b := range slices.Sorted(maps.Keys(o.byBridge)) {
		out = append(out, o.byBridge[b])
	}
	return out
}

// readObservations lists the observation keys, blocking up to wait for a
// change after index (index or wait 0: no blocking), and decodes them per
// bridge. A bridge whose keys do not decode is left out and logged (untrusted
// input: anyone with write access to the prefix can put anything there).
func (c *Catalog) readObservations(ctx context.Context, index uint64, wait time.Duration) (observations, error) {
	q := &api.QueryOptions{}
	if wait > 0 && index > 0 {
		// Only with a wait: WaitTime 0 is Consul's default (5 minutes).
		q.WaitIndex, q.WaitTime = index, wait
	}
	pairs, meta, err := c.api.ListKV(c.obsPrefix, q.WithContext(ctx))
	if err != nil {
		return observations{}, consulError("list "+c.obsPrefix, c.redact(err), c.catalogRules)
	}
	out := observations{byBridge: map[string]observe.Observation{}}
	if meta != nil {
		out.index = meta.LastIndex
		if out.index < index { // the index went backwards (snapshot restore): start over
			out.index = 0
		}
	}
	chunks := map[string][][]byte{}
	for _, p := range pairs {
		rest := strings.TrimPrefix(p.Key, c.obsPrefix)
		bridge, _, ok := strings.Cut(rest, "/")
		if !ok || p.Session == "" {
			continue // not a chunk key, or not held by a live session
		}
		chunks[bridge] = append(chunks[bridge], p.Value)
	}
	for bridge, cs := range chunks {
		o, err := observe.Decode(cs)
		if err == nil && o.Bridge != bridge {
			err = fmt.Errorf("chunk names bridge %q", o.Bridge)
		}
		if err != nil {
			c.metrics.errors.WithLabelValues("observation").Inc()
			c.log.Warn().Err(err).Str("bridge", bridge).Msg("ignoring an observation that does not decode")
			continue
		}
		out.byBridge[bridge] = o
	}
	return out, nil
}

// ownedFilterCatalog selects this fleet's service instances.
func (c *Catalog) ownedFilterCatalog() (string, error) {
	q, err := quoteFilterString(c.cfg.KVPrefix)
	if err != nil {
		return "", fmt.Errorf("consul_kv_prefix %q: %w", c.cfg.KVPrefix, err)
	}
	return `Service.Meta["` + MetaManagedBy + `"] == "` + ManagedByValue + `" and Service.Meta["` + MetaFleet + `"] == ` + q, nil
}

// readCatalog reads this fleet's entries, by node name. Instances of the
// service that are not this fleet's (other owners, other fleets) are
// filtered out on the server and never touched.
func (c *Catalog) readCatalog(ctx context.Context) (map[string]catalogEntry, error) {
	filter, err := c.ownedFilterCatalog()
	if err != nil {
		return nil, err
	}
	entries, _, err := c.api.ServiceEntries(c.cfg.Service, (&api.QueryOptions{Filter: filter}).WithContext(ctx))
	if err != nil {
		return nil, consulError("read service "+c.cfg.Service, c.redact(err), c.catalogRules)
	}
	now := c.cfg.Clock.Now()
	out := make(map[string]catalogEntry, len(entries))
	for _, se := range entries {
		if se.Node == nil || se.Service == nil || se.Node.Meta[MetaManagedBy] != ManagedByValue || se.Node.Meta[MetaFleet] != c.cfg.KVPrefix {
			continue
		}
		e := catalogEntry{
			node: se.Node.Node, nodeAddr: se.Node.Address, nodeMeta: se.Node.Meta,
			svcID: se.Service.ID,
			svc:   service{Name: se.Service.Service, Address: se.Service.Address, Port: se.Service.Port, Tags: se.Service.Tags, Meta: se.Service.Meta},
		}
		if e.svc.Tags == nil {
			e.svc.Tags = []string{}
		}
		for _, chk := range se.Checks {
			if chk.CheckID != ObservedCheckID {
				continue
			}
			e.passing = chk.Status == api.HealthPassing
			if !e.passing {
				since, ok := parseSince(chk.Output)
				if !ok {
					since = now // unknown: start the delay now
				}
				e.since = since
			}
		}
		out[e.node] = e
	}
	return out, nil
}
