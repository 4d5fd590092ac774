package consultest

import (
	"sync"

	"github.com/hashicorp/consul/api"
)

// Locker is a lock (consulclient.Locker) whose lock the test grants and
// revokes. Like *api.Lock, Lock on a lock still held (even if lost) fails
// with api.ErrLockHeld, and Unlock of a lock not held fails with
// api.ErrLockNotHeld. Safe for concurrent use.
type Locker struct {
	// Grant: a send grants the lock to a waiting Lock.
	Grant chan struct{}
	// Waiting receives when a Lock call starts waiting.
	Waiting chan struct{}
	// Released receives on every Unlock.
	Released chan struct{}

	mu             sync.Mutex
	held           bool
	lost           chan struct{}
	lockErr        []error // returned by the next Lock calls
	unlockErr      error
	nLock, nUnlock int
}

// NewLocker returns a Locker nobody holds.
func NewLocker() *Locker {
	return &Locker{
		Grant:    make(chan struct{}),
		Waiting:  make(chan struct{}, 100),
		Released: make(chan struct{}, 100),
	}
}

// Lock waits for a Grant (or stopCh: nil, nil) unless it fails first: held
// already, or an error of FailLocks.
func (l *Locker) Lock(stopCh <-chan struct{}) (<-chan struct{}, error) {
	l.mu.Lock()
	l.nLock++
	if l.held {
		l.mu.Unlock()
		return nil, api.ErrLockHeld
	}
	if len(l.lockErr) > 0 {
		err := l.lockErr[0]
		l.lockErr = l.lockErr[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	l.Waiting <- struct{}{}
	select {
	case <-stopCh:
		return nil, nil
	case <-l.Grant:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = true
	l.lost = make(chan struct{})
	return l.lost, nil
}

// Unlock releases the lock; it fails when the lock is not held, or with
// the error of FailUnlocks.
func (l *Locker) Unlock() error {
	l.mu.Lock()
	defer func() { l.mu.Unlock(); l.Released <- struct{}{} }()
	l.nUnlock++
	if !l.held {
		return api.ErrLockNotHeld
	}
	l.held = false
	return l.unlockErr
}

// Revoke closes the lost channel of the held lock (session invalidated).
func (l *Locker) Revoke() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.lost)
}

// FailLocks makes the next Lock calls fail with errs, in order.
func (l *Locker) FailLocks(errs ...error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lockErr = append(l.lockErr, errs...)
}

// FailUnlocks makes every Unlock of a held lock fail with err.
func (l *Locker) FailUnlocks(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unlockErr = err
}

// Unlocks is how many times Unlock was called.
func (l *Locker) Unlocks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nUnlock
}
