package catalog

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
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
		checks: catalogChecksFingerprint(c.cfg), segmentTag: c.cfg.Catalog.SegmentTag,
		observers: c.cfg.Catalog.ObserversMeta}
	if c.cfg.Catalog.Layout == LayoutSharedNode {
		sh.sharedNode = SharedNodeName(c.cfg.Service, c.cfg.Catalog.KVPrefix)
	} else {
		sh.nodeMeta = sh.serverNodeMeta()
	}
	sh.metas = &metaCache{}
	return sh
}

// timing is the leader's delays, from the configuration.
func (c *Catalog) timing() fleet.Timing {
	return fleet.Timing{StartupGrace: c.cfg.Catalog.StartupGrace, DeregisterAfter: c.cfg.DeregisterAfter, Resync: c.cfg.Resync,
		MaxWait: maxLeaderWait, RetryMin: consulclient.LockRetryMin, RetryMax: c.cfg.RetryCap()}
}

// lead merges observations and writes the catalog for one term of
// leadership won with session s (package fleet's leader loop, on the
// observations in KV and the catalog). It returns when the term ends or a
// guarded write finds the lock held by another session.
func (c *Catalog) lead(term context.Context, s *session) {
	// An ACL refusal stands until a read or write succeeds, or the term
	// ends (member.Run): Apply returns it (a sink error, /readyz fails),
	// and it is logged once.
	log := c.log.With().Str("session", s.id).Logger()
	io := &catalogLeaderIO{c: c, sid: s.id, log: log}
	l := fleet.Leader[*catalogSpec]{Store: io, Registry: io, Shape: c.shape(), Report: io,
		Timing: c.timing(), Clock: c.cfg.Clock, Log: log, Backend: "Consul", Target: "catalog",
		Guard: c.cfg.Catalog.Guard, OnGuard: c.metrics.guard, Record: &c.guards}
	l.Run(term)
}

// catalogLeaderIO is the Consul side of the leader's loop for one session:
// the observations in KV (fleet.Store), the catalog and writes guarded by
// the session's hold of the lock (fleet.Registry), and the metrics and
// standing ACL faults (fleet.Reporter).
type catalogLeaderIO struct {
	c        *Catalog
	sid      string
	log      zerolog.Logger
	lastACL  string // the ACL refusal last logged
	standing bool   // a standing fault is set (Failed)
	// releasedSince: when this term first saw each handed-over
	// observation (Observations).
	releasedSince map[string]time.Time
}

// Observations reads the observations, and stands in for a grace the
// observation a bridge handed over on exit (released keys, see handOver):
// its successor (the same bridge_id) takes the keys over within a round,
// and meanwhile the servers only it saw stay observed. A released
// observation nobody took over is deleted once its grace is over (as its
// keys were: a CAS on their indexes), and its servers are unobserved from
// then on.
func (io *catalogLeaderIO) Observations(ctx context.Context, index uint64, wait time.Duration) (fleet.Observations, error) {
	obs, rel, err := io.c.readObservationsReleased(ctx, index, wait)
	if err != nil {
		return obs, err
	}
	now, grace := io.c.cfg.Clock.Now(), io.c.cfg.Catalog.StartupGrace
	if io.releasedSince == nil {
		io.releasedSince = map[string]time.Time{}
	}
	for b := range io.releasedSince {
		if _, ok := rel[b]; !ok {
			delete(io.releasedSince, b) // taken over, or gone
		}
	}
	for _, b := range slices.Sorted(maps.Keys(rel)) {
		r := rel[b]
		since, ok := io.releasedSince[b]
		if !ok {
			since = now
			io.releasedSince[b] = now
			io.log.Info().Str("bridge", b).Dur("grace", grace).
				Msg("leader: a bridge handed its observation over on exit; its servers stay observed until a bridge of its ID takes it over, for the grace at most")
		}
		if end := since.Add(grace); now.Before(end) {
			obs.ByBridge[b] = r.obs
			obs.Holders[b] = "released"
			if obs.Wake.IsZero() || end.Before(obs.Wake) {
				obs.Wake = end
			}
			continue
		}
		io.dropReleased(ctx, b, r)
	}
	return obs, nil
}

// dropReleased deletes the released observation r of bridge b, guarded by
// this leader's lock and by the keys' indexes (a successor that took a key
// over meanwhile keeps it).
func (io *catalogLeaderIO) dropReleased(ctx context.Context, b string, r released) {
	ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: io.c.lockKey, Session: io.sid}}}
	for _, k := range slices.Sorted(maps.Keys(r.keys)) {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: k, Index: r.keys[k]}})
	}
	ok, resp, err := io.c.api.Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	switch {
	case err != nil:
		io.log.Debug().Err(io.c.redact(err)).Str("bridge", b).Msg("leader: cannot delete a handed-over observation whose grace is over; trying again")
	case !ok:
		io.log.Debug().Str("why", txnErrors(resp)).Str("bridge", b).Msg("leader: a handed-over observation changed before it was deleted")
	default:
		io.c.metrics.kvWrites.Add(float64(len(ops) - 1))
		io.log.Info().Str("bridge", b).Msg("leader: no bridge took the handed-over observation over within the grace; deleted it, its servers are unobserved")
	}
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

// Failed counts the failure and keeps an ACL refusal, or the shared node
// in the way, as the leader's standing fault (Apply returns it), logged
// once.
func (io *catalogLeaderIO) Failed(stage fleet.Stage, err error) {
	io.c.metrics.errors.WithLabelValues(stages[stage]).Inc()
	var inWay *sharedNodeInWay
	switch {
	case errors.As(err, &inWay): // logged by foreignFound
		io.c.member.SetFault(err)
		io.standing = true
	case consulclient.IsACL(err):
		io.c.member.SetFault(err)
		io.standing = true
		if err.Error() != io.lastACL {
			io.lastACL = err.Error()
			consulclient.WithRule(io.log.Error(), err).Err(err).Msg("leader: Consul refused a catalog operation for its ACLs; fix the token's policy")
		}
	}
}

// Succeeded clears a standing fault.
func (io *catalogLeaderIO) Succeeded() {
	if !io.standing {
		return
	}
	io.standing = false
	io.c.member.SetFault(nil)
	if io.lastACL != "" {
		io.lastACL = ""
		io.log.Info().Msg("leader: Consul accepts the catalog operations again")
	}
}

func (io *catalogLeaderIO) Merged(observers int, took time.Duration) {
	io.c.metrics.observers.Set(float64(observers))
	io.c.metrics.mergeSeconds.Set(took.Seconds())
}

// Describe names the missing ACL rule of err, if any.
func (io *catalogLeaderIO) Describe(ev *zerolog.Event, err error) *zerolog.Event {
	return consulclient.WithRule(ev, err)
}

// onceAsLeader is the Member's Once: with Once, reconcileOnce on the
// current session.
func (c *Catalog) onceAsLeader() func(ctx context.Context) (int, error) {
	if !c.cfg.Catalog.Once {
		return nil
	}
	return func(ctx context.Context) (int, error) {
		c.mu.Lock()
		cur := c.cur
		c.mu.Unlock()
		if cur == nil {
			return 0, errNoSession
		}
		return 0, c.reconcileOnce(ctx, cur)
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
	p := fleet.Reconcile(c.shape(), fleet.Merge(obs.List()), current, c.cfg.Clock.Now(), c.cfg.DeregisterAfter, true)
	_, err = c.write(ctx, s.id, p, current)
	return err
}
