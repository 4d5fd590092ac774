package consul

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

const (
	// maxTxnOps is Consul's limit of operations in one transaction.
	maxTxnOps = 64
	// maxLeaderWait bounds one blocking read of the observations.
	maxLeaderWait = 30 * time.Second
)

// errNotLeader means a transaction's guard found the lock held by another
// session: this bridge is no longer the leader and must stop writing.
var errNotLeader = errors.New("consul lock no longer held by this bridge's session")

// shape is what every catalog entry of this fleet shares.
func (c *Catalog) shape() catalogShape {
	sh := catalogShape{service: c.cfg.Service, tags: c.cfg.Tags, fleet: c.cfg.Catalog.KVPrefix,
		checks: checksFingerprint(c.cfg), segmentTag: c.cfg.Catalog.SegmentTag,
		observers: c.cfg.Catalog.ObserversMeta}
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
	holdUntil := start.Add(c.cfg.Catalog.StartupGrace)
	log.Info().Dur("startup_grace", c.cfg.Catalog.StartupGrace).Msg("leading: merging observations into the catalog")
	var (
		current  map[string]catalogEntry
		lastRead time.Time
		index    uint64
		retry    = lockRetryMin
		retryMax = c.cfg.retryCap()
		// failing is set while reads fail (Consul unreachable, no raft
		// leader); writeFailing while writes fail, so each episode logs
		// once at WARN.
		failing, writeFailing bool
		good                  = map[string]goodObservation{}
		reread                bool // the catalog was just read: plan on it without waiting
	)
	// hold makes missing observations unknown rather than unobserved for
	// a start-up grace from now: after Consul comes back, or its data
	// went back in time, every bridge needs a round (and maybe a new
	// session) to publish again.
	hold := func(why string) {
		until := c.cfg.Clock.Now().Add(c.cfg.Catalog.StartupGrace)
		if until.After(holdUntil) {
			holdUntil = until
		}
		log.Info().Dur("hold", c.cfg.Catalog.StartupGrace).Str("why", why).
			Msg("leader: nothing turns critical or is removed until every bridge had a round to publish")
	}
	// fail forgets what the leader read, so that it re-reads everything
	// (the catalog may have been lost meanwhile), and backs off.
	fail := func(stage, what string, err error) bool {
		if !failing {
			log.Warn().Err(err).Msg("leader: cannot read the " + what + "; retrying")
		} else {
			log.Debug().Err(err).Msg("leader: cannot read the " + what + "; retrying")
		}
		failing = true
		c.metrics.errors.WithLabelValues(stage).Inc()
		current, index = nil, 0
		ok := clock.Sleep(c.cfg.Clock, retry, ctx.Done())
		retry = min(retry*2, retryMax)
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
				refused(err)
				if ctx.Err() != nil || !fail("catalog_read", "catalog", err) {
					return
				}
				continue
			}
			current, lastRead, reread = cur, now, true
			c.recheckForeign(ctx)
		}
		// Wake at the next resync too, and plan right after each read of
		// the catalog, so that what a resync finds (an entry changed behind
		// the leader's back, a node in the way that went) is acted on then,
		// not at the next change of the observations.
		wait := min(maxLeaderWait, max(lastRead.Add(c.cfg.Resync).Sub(now), time.Millisecond))
		if at, ok := nextReap(current, c.cfg.DeregisterAfter); ok {
			wait = min(wait, max(at.Sub(now), 0))
		}
		if now.Before(holdUntil) {
			wait = min(wait, holdUntil.Sub(now))
		}
		if reread {
			wait, reread = 0, false
		}
		obs, err := c.readObservations(ctx, index, wait)
		if err != nil {
			refused(err)
			if ctx.Err() != nil || !fail("kv_read", "observations", err) {
				return
			}
			continue
		}
		if failing {
			failing = false
			log.Info().Msg("leader: Consul answers again")
			hold("Consul answers again")
		}
		if obs.reset {
			hold("the observations' index went back (a snapshot restore or a new cluster)")
			current = nil
		}
		index = obs.index
		mergeStart := c.cfg.Clock.Now()
		c.keepGood(log, obs, good, mergeStart)
		list := obs.list()
		c.metrics.observers.Set(float64(len(list)))
		p := planCatalog(c.shape(), merge(list), current, mergeStart, c.cfg.DeregisterAfter, mergeStart.Before(holdUntil))
		p = c.skipForeign(p)
		c.metrics.mergeSeconds.Set(c.cfg.Clock.Now().Sub(mergeStart).Seconds())
		if p.empty() {
			retry = lockRetryMin
			cleared()
			continue
		}
		writeStart := c.cfg.Clock.Now()
		n, err := c.write(ctx, s.id, p, current)
		ev := log.Info()
		switch {
		case err != nil && !writeFailing:
			ev = withRule(log.Warn(), err)
		case err != nil:
			ev = log.Debug()
		}
		ev.Int("registered", len(p.register)).Int("updated", len(p.update)).Int("passing", len(p.pass)).Int("critical", len(p.fail)).
			Int("removed", len(p.reap)).Int("unchanged", p.unchanged).Int("observers", len(list)).Int("writes", n).
			Str("took", c.cfg.Clock.Now().Sub(writeStart).String()).Err(err).Msg("catalog reconciled")
		if errors.Is(err, errNotLeader) {
			log.Warn().Msg("leader: the lock moved to another bridge; stopping writes")
			return
		}
		if err != nil {
			writeFailing = true
			c.metrics.errors.WithLabelValues("catalog_write").Inc()
			refused(err)
			index = 0 // re-plan right after the backoff, not at the next change
			ok := clock.Sleep(c.cfg.Clock, retry, ctx.Done())
			retry = min(retry*2, retryMax)
			if !ok {
				return
			}
			continue
		}
		if writeFailing {
			writeFailing = false
			log.Info().Msg("leader: catalog writes succeed again")
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
	c.logBad(obs)
	current, err := c.readCatalog(ctx)
	if err != nil {
		return err
	}
	p := planCatalog(c.shape(), merge(obs.list()), current, c.cfg.Clock.Now(), c.cfg.DeregisterAfter, true)
	_, err = c.write(ctx, s.id, p, current)
	return err
}

// ownedFilterCatalog selects this fleet's service instances.
func (c *Catalog) ownedFilterCatalog() (string, error) {
	q, err := quoteFilterString(c.cfg.Catalog.KVPrefix)
	if err != nil {
		return "", fmt.Errorf("consul_kv_prefix %q: %w", c.cfg.Catalog.KVPrefix, err)
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
		if se.Node == nil || se.Service == nil || se.Node.Meta[MetaManagedBy] != ManagedByValue || se.Node.Meta[MetaFleet] != c.cfg.Catalog.KVPrefix {
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
