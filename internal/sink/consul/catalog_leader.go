package consul

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

const (
	// maxTxnOps is Consul's limit of operations in one transaction.
	maxTxnOps = 64
	// maxLeaderWait bounds one blocking read of the observations.
	maxLeaderWait = 30 * time.Second
)

// errNotLeader means a transaction's guard found the lock held by another
// session: this bridge is no longer the leader and must stop writing. It is
// a fleet.ErrNotLeader.
var errNotLeader error = notLeaderError{}

type notLeaderError struct{}

func (notLeaderError) Error() string        { return "consul lock no longer held by this bridge's session" }
func (notLeaderError) Is(target error) bool { return target == fleet.ErrNotLeader }

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

// timing is the leader's delays, from the configuration.
func (c *Catalog) timing() fleet.Timing {
	return fleet.Timing{StartupGrace: c.cfg.Catalog.StartupGrace, DeregisterAfter: c.cfg.DeregisterAfter, Resync: c.cfg.Resync,
		MaxWait: maxLeaderWait, RetryMin: lockRetryMin, RetryMax: c.cfg.retryCap()}
}

// lead merges observations and writes the catalog for one term of
// leadership won with session s (package fleet's leader loop, on the
// observations in KV and the catalog). It returns when the term ends or a
// guarded write finds the lock held by another session.
func (c *Catalog) lead(term context.Context, s *session) {
	// An ACL refusal stands until a read or write succeeds: Apply returns
	// it (a sink error, /readyz fails), and it is logged once.
	defer c.faults.set(&c.faults.leader, nil)
	log := c.log.With().Str("session", s.id).Logger()
	io := &catalogLeaderIO{c: c, sid: s.id, log: log}
	l := fleet.Leader[catalogSpec]{Store: io, Registry: io, Shape: c.shape(), Report: io,
		Timing: c.timing(), Clock: c.cfg.Clock, Log: log, Backend: "Consul", Target: "catalog"}
	l.Run(term)
}

// catalogLeaderIO is the Consul side of the leader's loop for one session:
// the observations in KV (fleet.Store), the catalog and writes guarded by
// the session's hold of the lock (fleet.Registry), and the metrics and
// standing ACL faults (fleet.Reporter).
type catalogLeaderIO struct {
	c       *Catalog
	sid     string
	log     zerolog.Logger
	lastACL string // the ACL refusal last logged
}

func (io *catalogLeaderIO) Observations(ctx context.Context, index uint64, wait time.Duration) (fleet.Observations, error) {
	return io.c.readObservations(ctx, index, wait)
}

// Entries reads the catalog and checks again the nodes in the way.
func (io *catalogLeaderIO) Entries(ctx context.Context) (map[string]catalogEntry, error) {
	cur, err := io.c.readCatalog(ctx)
	if err != nil {
		return nil, err
	}
	io.c.recheckForeign(ctx)
	return cur, nil
}

func (io *catalogLeaderIO) Skip(p catalogPlan) catalogPlan { return io.c.skipForeign(p) }

func (io *catalogLeaderIO) Write(ctx context.Context, p catalogPlan, current map[string]catalogEntry) (int, error) {
	return io.c.write(ctx, io.sid, p, current)
}

// stages are the errors_total labels of the leader's stages.
var stages = map[fleet.Stage]string{
	fleet.StageObservations: "kv_read", fleet.StageRegistryRead: "catalog_read",
	fleet.StageRegistryWrite: "catalog_write", fleet.StageUndecodable: "observation",
}

// Failed counts the failure and keeps an ACL refusal as the leader's
// standing fault, logged once.
func (io *catalogLeaderIO) Failed(stage fleet.Stage, err error) {
	io.c.metrics.errors.WithLabelValues(stages[stage]).Inc()
	if !isACL(err) {
		return
	}
	io.c.faults.set(&io.c.faults.leader, err)
	if err.Error() != io.lastACL {
		io.lastACL = err.Error()
		withRule(io.log.Error(), err).Err(err).Msg("leader: Consul refused a catalog operation for its ACLs; fix the token's policy")
	}
}

// Succeeded clears a standing ACL fault.
func (io *catalogLeaderIO) Succeeded() {
	if io.lastACL != "" {
		io.lastACL = ""
		io.c.faults.set(&io.c.faults.leader, nil)
		io.log.Info().Msg("leader: Consul accepts the catalog operations again")
	}
}

func (io *catalogLeaderIO) Merged(observers int, took time.Duration) {
	io.c.metrics.observers.Set(float64(observers))
	io.c.metrics.mergeSeconds.Set(took.Seconds())
}

// Describe names the missing ACL rule of err, if any.
func (io *catalogLeaderIO) Describe(ev *zerolog.Event, err error) *zerolog.Event {
	return withRule(ev, err)
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
	p := fleet.Reconcile(c.shape(), fleet.Merge(obs.List()), current, c.cfg.Clock.Now(), c.cfg.DeregisterAfter, true)
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
		e := catalogEntry{Key: se.Node.Node, Spec: catalogSpec{
			nodeAddr: se.Node.Address, nodeMeta: se.Node.Meta,
			svcID: se.Service.ID,
			svc:   service{Name: se.Service.Service, Address: se.Service.Address, Port: se.Service.Port, Tags: se.Service.Tags, Meta: se.Service.Meta},
		}}
		if e.Spec.svc.Tags == nil {
			e.Spec.svc.Tags = []string{}
		}
		for _, chk := range se.Checks {
			if chk.CheckID != ObservedCheckID {
				continue
			}
			e.Passing = chk.Status == api.HealthPassing
			if !e.Passing {
				since, ok := parseSince(chk.Output)
				if !ok {
					since = now // unknown: start the delay now
				}
				e.Since = since
			}
		}
		out[e.Key] = e
	}
	return out, nil
}
