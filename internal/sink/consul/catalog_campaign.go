package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

// campaign stands for the leader lock with session s until s is lost or
// ctx ends, and leads for every term it wins: the lock hands the leader's
// work a term (a context) that ends when the lock is lost, or when s is;
// nothing polls whether this bridge still leads.
func (c *Catalog) campaign(ctx context.Context, s *session) {
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
	lock := newLock(sctx, l, c.lockKey, c.log, c.cfg.Clock, c.redact)
	lock.retryMax = c.cfg.retryCap()
	lock.rules = c.catalogRules
	lock.lead = func(term context.Context) {
		c.firstTerm.done()
		c.lead(term, s)
		if errors.Is(context.Cause(term), errLockLost) {
			// Destroyed or expired, the session takes the lock with it:
			// find out now, not at the next renewal, so that a new session
			// publishes this bridge's observation and stands again.
			s.checkNow()
		}
	}
	c.lock.Store(lock)
	lock.Start()
	defer func() {
		_ = lock.Close(context.Background())
		c.lock.CompareAndSwap(lock, nil)
	}()
	<-sctx.Done()
}

// once is an event that happens at most once (ch made by its owner).
type once struct {
	ch chan struct{}
	o  sync.Once
}

func (o *once) done()                 { o.o.Do(func() { close(o.ch) }) }
func (o *once) wait() <-chan struct{} { return o.ch }
