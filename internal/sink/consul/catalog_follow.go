package consul

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// follow holds the leader lock with s and leads while it holds it, until s
// is lost or ctx ends.
func (c *Catalog) follow(ctx context.Context, s *session) {
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
		select { // follow without leading until the session goes or Close
		case <-s.lost:
		case <-ctx.Done():
		}
		return
	}
	lock := newLock(l, c.lockKey, c.log, c.cfg.Clock, c.redact)
	lock.retryMax = c.cfg.retryCap()
	lock.rules = c.catalogRules
	lock.Start()
	defer func() {
		_ = lock.Close(context.Background())
		c.leader.set(false)
	}()
	for {
		if lock.Leader() {
			c.leader.set(true)
			c.metrics.leader.Set(1)
			c.lead(ctx, s, lock)
			c.metrics.leader.Set(0)
			c.leader.set(false)
		}
		t := c.cfg.Clock.NewTimer(leaderPoll)
		select {
		case <-t.C():
		case <-s.lost:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// leaderPoll is how often a follower checks whether it took the lock.
const leaderPoll = 200 * time.Millisecond

// leaderState is whether this bridge leads now, across sessions, and
// whether it ever did (first is made by newCatalog).
type leaderState struct {
	now       atomic.Bool
	first     chan struct{}
	firstOnce sync.Once
}

func (l *leaderState) set(v bool) {
	if v {
		l.firstOnce.Do(func() { close(l.first) })
	}
	l.now.Store(v)
}

func (l *leaderState) is() bool { return l.now.Load() }

// acquired is closed the first time this bridge leads.
func (l *leaderState) acquired() <-chan struct{} { return l.first }
