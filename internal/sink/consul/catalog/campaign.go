package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// catalogElector is how a catalog-mode bridge stands for leadership: a
// session at a time (run), and the leader lock held by it (campaign).
type catalogElector struct{ c *Catalog }

// Campaign keeps a session and the lock on it going until ctx ends (run).
func (e catalogElector) Campaign(ctx context.Context, lead func(term context.Context)) {
	e.c.run(ctx, lead)
}

// Leader reports whether the lock of the current session is in a term.
func (e catalogElector) Leader() bool { return e.c.locked() }

// Ready is closed once the first session exists.
func (e catalogElector) Ready() <-chan struct{} { return e.c.ready }

// sessionKey keys the session of a term in its context.
type sessionKey struct{}

// termSession is the session whose lock won term.
func termSession(term context.Context) *session {
	s, _ := term.Value(sessionKey{}).(*session)
	return s
}

// campaign stands for the leader lock with session s until s is lost or
// ctx ends, and leads for every term it wins: the lock hands the leader's
// work a term (a context, carrying s: termSession) that ends when the lock
// is lost, or when s is; nothing polls whether this bridge still leads.
func (c *Catalog) campaign(ctx context.Context, s *session, lead func(term context.Context)) {
	l, err := c.api.Lock(&api.LockOptions{
		Key:          c.lockKey,
		Value:        []byte(c.cfg.BridgeID),
		Session:      s.id,
		LockWaitTime: c.cfg.Catalog.LockWait,
		// A Consul leader election must not cost the lock: the monitor
		// retries through it before declaring the lock lost.
		MonitorRetries: 5,
		Namespace:      c.cfg.Client.Namespace,
	})
	if err != nil {
		c.log.Error().Err(c.redact(err)).Str("lock_key", c.lockKey).Msg("consul lock")
		select { // stand without leading until the session goes or Close
		case <-s.lost:
		case <-ctx.Done():
		}
		return
	}
	// The session's loss ends the lock's loop and any term with it.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.lost:
			cancel(fmt.Errorf("%w: consul session %s lost", fleet.ErrLeadershipLost, s.id))
		case <-sctx.Done():
		}
	}()
	lock := consulclient.NewLockOn(sctx, l, c.lockKey, consulclient.LockConfig{
		Log: c.log, Clock: c.cfg.Clock, Redact: c.redact, RetryMax: c.cfg.RetryCap(), Rules: c.catalogRules,
		Lead: func(term context.Context) {
			lead(context.WithValue(term, sessionKey{}, s))
			if errors.Is(context.Cause(term), consulclient.ErrLockLost) {
				// Destroyed or expired, the session takes the lock with it:
				// find out now, not at the next renewal, so that a new session
				// publishes this bridge's observation and stands again.
				s.checkNow()
			}
		},
	})
	c.lock.Store(lock)
	lock.Start()
	defer func() {
		_ = lock.Close(context.Background())
		c.lock.CompareAndSwap(lock, nil)
	}()
	<-sctx.Done()
}
