package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Backoff bounds of the lock loop when Consul refuses or is unreachable.
const (
	lockRetryMin = time.Second
	lockRetryMax = 30 * time.Second
)

// Lock elects one leader among bridges: it holds (or waits for) a Consul
// lock in the background and says whether this bridge holds it. When the
// lock is lost (session invalidated, key changed, Consul unreachable beyond
// the monitor retries) it reports follower, logs once and waits for the lock
// again. The model is consul-esm's leader loop.
//
// Start starts the loop, Leader reads the state, Acquired tells the first
// acquisition, Close stops the loop and releases the lock. All are safe for
// concurrent use.
type Lock struct {
	key   string
	l     locker
	log   zerolog.Logger
	clock clock.Clock
	red   func(error) error
	// retryMax caps the backoff while the lock cannot be taken (set
	// before Start): a round in catalog mode, so a bridge takes the lock
	// within a round of Consul answering again.
	retryMax time.Duration

	leader   atomic.Bool
	acquired chan struct{} // closed at the first acquisition
	acqOnce  sync.Once

	startOnce sync.Once
	started   atomic.Bool
	ctx       context.Context
	stop      context.CancelFunc
	done      chan struct{}

	// rules names a missing ACL rule (exactRule unless set before Start).
	rules rulePrefixes
	// fault is the standing ACL refusal of the last attempt to take the
	// lock (nil once it was taken, or failed for another reason).
	fault atomic.Pointer[ACLError]
}

// Fault is the ACL refusal that keeps this bridge from taking the lock, or
// nil: a bridge whose token may not take the lock would follow forever.
func (l *Lock) Fault() error {
	if f := l.fault.Load(); f != nil {
		return f
	}
	return nil
}

// NewLock prepares a lock on opts.Key through client. The caller sets the
// session in opts (a session it renews itself) or lets consul/api create and
// renew one from SessionName/SessionTTL. It makes no network call.
func NewLock(client *Client, opts *api.LockOptions, log zerolog.Logger, clk clock.Clock) (*Lock, error) {
	l, err := client.API.LockOpts(opts)
	if err != nil {
		return nil, fmt.Errorf("consul lock %q: %w", opts.Key, client.Redact(err))
	}
	return newLock(l, opts.Key, log, clk, client.Redact), nil
}

func newLock(l locker, key string, log zerolog.Logger, clk clock.Clock, redact func(error) error) *Lock {
	ctx, stop := context.WithCancel(context.Background())
	if redact == nil {
		redact = func(err error) error { return err }
	}
	return &Lock{
		key: key, l: l, log: log.With().Str("lock_key", key).Logger(), clock: clock.OrReal(clk), red: redact, rules: exactRule,
		retryMax: lockRetryMax,
		acquired: make(chan struct{}), ctx: ctx, stop: stop, done: make(chan struct{}),
	}
}

// Key is the lock's KV key.
func (l *Lock) Key() string { return l.key }

// Start starts the lock loop; later calls do nothing.
func (l *Lock) Start() {
	l.startOnce.Do(func() {
		l.started.Store(true)
		go l.run()
	})
}

// Leader reports whether this bridge holds the lock now.
func (l *Lock) Leader() bool { return l.leader.Load() }

// Acquired is closed the first time the lock is acquired.
func (l *Lock) Acquired() <-chan struct{} { return l.acquired }

// Close stops the loop and, when it holds the lock, releases it and waits
// for that until ctx ends. It is safe to call before Start and more than
// once.
func (l *Lock) Close(ctx context.Context) error {
	l.stop()
	if !l.started.Load() {
		return nil
	}
	if !l.leader.Load() {
		// A follower is inside consul/api's blocking read of the lock key,
		// which takes no context and returns within LockWaitTime; it holds
		// nothing to release, so shutdown does not wait for it.
		return nil
	}
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("consul release lock %q: %w", l.key, ctx.Err())
	}
}

// run holds the lock for as long as l.ctx lives. State changes are logged
// once, not once per attempt.
func (l *Lock) run() {
	defer close(l.done)
	ctx := l.ctx
	retry := lockRetryMin
	failing := false
	for ctx.Err() == nil {
		lost, err := l.l.Lock(ctx.Done())
		if err != nil {
			err = aclError("take the lock "+l.key, l.red(err), l.rules)
			var ae *ACLError
			if errors.As(err, &ae) {
				l.fault.Store(ae)
			} else {
				l.fault.Store(nil)
			}
			if !failing {
				withRule(l.log.Warn(), err).Err(err).Msg("cannot take the consul lock; retrying with backoff")
				failing = true
			}
			if !clock.Sleep(l.clock, retry, ctx.Done()) {
				return
			}
			retry = min(retry*2, l.retryMax)
			continue
		}
		if lost == nil { // stopped while waiting
			return
		}
		failing = false
		retry = lockRetryMin
		l.fault.Store(nil)
		if ctx.Err() != nil { // acquired just as we were told to stop
			l.unlock()
			return
		}
		l.leader.Store(true)
		l.acqOnce.Do(func() { close(l.acquired) })
		l.log.Info().Msg("consul lock acquired: this bridge leads")
		select {
		case <-lost:
			l.leader.Store(false)
			l.log.Warn().Msg("consul lock lost: following and waiting for the lock again")
			l.unlock() // resets the lock's state so Lock can be called again
		case <-ctx.Done():
			l.leader.Store(false)
			l.unlock()
			l.log.Info().Msg("consul lock released")
			return
		}
	}
}

// unlock releases the lock; after a loss the release fails harmlessly, but
// it still stops the session renewal and resets the held state.
func (l *Lock) unlock() {
	if err := l.l.Unlock(); err != nil {
		l.log.Debug().Err(l.red(err)).Msg("consul lock release")
	}
}
