package consulclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Backoff bounds of the lock loop when Consul refuses or is unreachable:
// LockRetryMin is also where catalog mode's retries against Consul start.
const (
	LockRetryMin = time.Second
	lockRetryMax = 30 * time.Second
)

// FirstLockWait bounds how long a sink's Start waits for the lock, so that
// a lone bridge leads from its first round.
const FirstLockWait = time.Second

// Locker is the part of consul/api's *api.Lock that Lock uses.
type Locker interface {
	// Lock blocks until the lock is held or stopCh is closed (nil, nil);
	// the returned channel is closed when the lock is lost.
	Lock(stopCh <-chan struct{}) (<-chan struct{}, error)
	// Unlock releases the lock (and stops renewing its session).
	Unlock() error
}

var _ Locker = (*api.Lock)(nil)

// LockConfig is how a Lock behaves, besides its consul/api lock. Zero
// fields take the defaults their comments name.
type LockConfig struct {
	// Log and Clock (nil: the real clock) are the lock's; Redact hides
	// the token in errors (nil: none to hide).
	Log    zerolog.Logger
	Clock  clock.Clock
	Redact func(error) error
	// RetryMax caps the backoff while the lock cannot be taken (0: 30s):
	// a round, so that a bridge takes the lock within a round of Consul
	// answering again.
	RetryMax time.Duration
	// Rules names a missing ACL rule (nil: ExactRule).
	Rules RulePrefixes
	// Lead is the work of a term: called with the term when the lock is
	// taken, it must return once the term ends. If it returns before (it
	// found another holder), the term ends: the lock is released and
	// waited for again. Nil: a term does nothing but wait for its end.
	Lead func(term context.Context)
}

// Lock elects one leader among bridges: it holds (or waits for) a Consul
// lock in the background. Each time it takes the lock it begins a term, a
// context that ends when the lock is lost (session invalidated, key
// changed, Consul unreachable beyond the monitor retries) or released; the
// leader's work (lead, when set) runs under it, and the lock waits for the
// work to return before it waits for the lock again, so terms never
// overlap. The model is consul-esm's leader loop, whose lock's lost channel
// is the work goroutine's stop channel.
//
// Start starts the loop, Leader says whether a term is running, Acquired
// tells the first acquisition, Close stops the loop and releases the lock.
// All are safe for concurrent use.
type Lock struct {
	key   string
	l     Locker
	log   zerolog.Logger
	clock clock.Clock
	red   func(error) error
	// retryMax and lead: LockConfig's RetryMax and Lead.
	retryMax time.Duration
	lead     func(term context.Context)

	term     atomic.Pointer[context.Context] // the running term, nil between terms
	acquired chan struct{}                   // closed at the first acquisition
	acqOnce  sync.Once

	startOnce sync.Once
	started   atomic.Bool
	ctx       context.Context
	stop      context.CancelCauseFunc
	done      chan struct{}

	// rules names a missing ACL rule (LockConfig.Rules).
	rules RulePrefixes
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
// renew one from SessionName/SessionTTL. cfg.Redact is client's. It makes
// no network call.
func NewLock(client *Client, opts *api.LockOptions, cfg LockConfig) (*Lock, error) {
	l, err := client.API.LockOpts(opts)
	if err != nil {
		return nil, fmt.Errorf("consul lock %q: %w", opts.Key, client.Redact(err))
	}
	cfg.Redact = client.Redact
	return NewLockOn(context.Background(), l, opts.Key, cfg), nil
}

// NewLockOn prepares a lock on key held through l, whose loop (and every
// term) ends with parent too, with parent's cause.
func NewLockOn(parent context.Context, l Locker, key string, cfg LockConfig) *Lock {
	ctx, stop := context.WithCancelCause(parent)
	if cfg.Redact == nil {
		cfg.Redact = func(err error) error { return err }
	}
	if cfg.Rules == nil {
		cfg.Rules = ExactRule
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = lockRetryMax
	}
	return &Lock{
		key: key, l: l, log: cfg.Log.With().Str("lock_key", key).Logger(), clock: clock.OrReal(cfg.Clock), red: cfg.Redact, rules: cfg.Rules,
		retryMax: cfg.RetryMax, lead: cfg.Lead,
		acquired: make(chan struct{}), ctx: ctx, stop: stop, done: make(chan struct{}),
	}
}

// Start starts the lock loop; later calls do nothing.
func (l *Lock) Start() {
	l.startOnce.Do(func() {
		l.started.Store(true)
		go l.run()
	})
}

// Started reports whether Start was called.
func (l *Lock) Started() bool { return l.started.Load() }

// Leader reports whether this bridge holds the lock now: a term is running.
func (l *Lock) Leader() bool {
	t := l.term.Load()
	return t != nil && (*t).Err() == nil
}

// Acquired is closed the first time the lock is acquired.
func (l *Lock) Acquired() <-chan struct{} { return l.acquired }

// Close stops the loop and, when it holds the lock, releases it and waits
// for that until ctx ends. It is safe to call before Start and more than
// once.
func (l *Lock) Close(ctx context.Context) error {
	held := l.term.Load() != nil
	l.stop(nil)
	if !l.started.Load() {
		return nil
	}
	if !held {
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
	retry := LockRetryMin
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
				WithRule(l.log.Warn(), err).Err(err).Msg("cannot take the consul lock; retrying with backoff")
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
		retry = LockRetryMin
		l.fault.Store(nil)
		if ctx.Err() != nil { // acquired just as we were told to stop
			l.unlock()
			return
		}
		l.log.Info().Msg("consul lock acquired: this bridge leads")
		l.hold(ctx, lost)
		l.unlock() // after a loss too: resets the lock's state so Lock can be called again
		if ctx.Err() != nil {
			l.log.Info().Msg("consul lock released")
			return
		}
	}
}

// ErrLockLost ends a term whose lock was lost; errWorkEnded one whose work
// returned by itself (it found the lock held by another session). Both are
// fleet.ErrLeadershipLost.
var (
	ErrLockLost  = fmt.Errorf("%w: consul lock lost", fleet.ErrLeadershipLost)
	errWorkEnded = fmt.Errorf("%w: the leader's work found the lock held by another session", fleet.ErrLeadershipLost)
)

// hold runs one term: from the acquisition until the lock is lost, ctx ends
// (the term ends with ctx's cause) or the work returns; it returns once the
// work did.
func (l *Lock) hold(ctx context.Context, lost <-chan struct{}) {
	term, end := context.WithCancelCause(ctx)
	defer end(nil)
	l.term.Store(&term)
	defer l.term.Store(nil)
	l.acqOnce.Do(func() { close(l.acquired) })
	worked := make(chan struct{})
	go func() {
		defer close(worked)
		if l.lead != nil {
			l.lead(term)
		} else {
			<-term.Done()
		}
	}()
	select {
	case <-lost:
		end(ErrLockLost)
		l.log.Warn().Msg("consul lock lost: following and waiting for the lock again")
	case <-worked:
		end(errWorkEnded)
		l.log.Warn().Msg("consul lock given up: following and waiting for the lock again")
	case <-ctx.Done():
	}
	<-worked
}

// unlock releases the lock; after a loss the release fails harmlessly, but
// it still stops the session renewal and resets the held state.
func (l *Lock) unlock() {
	if err := l.l.Unlock(); err != nil {
		l.log.Debug().Err(l.red(err)).Msg("consul lock release")
	}
}
