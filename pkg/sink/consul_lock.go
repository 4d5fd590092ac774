package sink

import (
	"time"
)

// Backoff bounds of the lock goroutine when Consul refuses or is unreachable.
const (
	lockRetryMin = time.Second
	lockRetryMax = 30 * time.Second
)

// runLock holds the HA lock for as long as c.lockCtx lives: it waits for the
// lock, marks the sink leader while held, and when the lock is lost (session
// invalidated, key changed, Consul unreachable beyond the monitor retries)
// marks it follower, logs once and waits for the lock again. On cancellation
// it releases the lock if held. State changes are logged once, not once per
// attempt.
func (c *Consul) runLock() {
	defer close(c.lockDone)
	ctx := c.lockCtx
	log := c.log.With().Str("lock_key", c.cfg.LockKey).Logger()
	retry := lockRetryMin
	failing := false
	for ctx.Err() == nil {
		lost, err := c.lock.Lock(ctx.Done())
		if err != nil {
			if !failing {
				log.Warn().Err(c.red.err(err)).Msg("cannot take the consul lock; retrying with backoff")
				failing = true
			}
			t := time.NewTimer(retry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			retry = min(retry*2, lockRetryMax)
			continue
		}
		if lost == nil { // stopped while waiting
			return
		}
		failing = false
		retry = lockRetryMin
		if ctx.Err() != nil { // acquired just as we were told to stop
			c.unlock()
			return
		}
		c.leader.Store(true)
		c.acqOnce.Do(func() { close(c.acquired) })
		log.Info().Msg("consul lock acquired: this bridge registers servers")
		select {
		case <-lost:
			c.leader.Store(false)
			log.Warn().Msg("consul lock lost: deregistering at the next round and waiting for the lock again")
			c.unlock() // resets the lock's state so Lock can be called again
		case <-ctx.Done():
			c.leader.Store(false)
			c.unlock()
			log.Info().Msg("consul lock released")
			return
		}
	}
}

// unlock releases the lock; after a loss the release fails harmlessly, but
// it still stops the session renewal and resets the held state.
func (c *Consul) unlock() {
	if err := c.lock.Unlock(); err != nil {
		c.log.Debug().Err(c.red.err(err)).Str("lock_key", c.cfg.LockKey).Msg("consul lock release")
	}
}
