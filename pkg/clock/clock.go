// Package clock is the bridge's one view of time. Everything whose behaviour
// depends on time (the round schedule, sink backoff and resync, heartbeat
// pacing, lock retries, reply timestamps, Fernet token age) reads it through
// a Clock, so tests drive time by hand with clocktest.Clock.
//
// Socket deadlines are the one exception: the kernel measures them on the
// real clock, so code that arms a socket deadline measures the time left
// with the real clock too and says so where it does.
package clock

import "time"

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on C once d has elapsed.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped a
	// pending timer.
	Stop() bool
}

// Real returns the Clock of the time package.
func Real() Clock { return realClock{} }

// OrReal returns c, or the real clock when c is nil.
func OrReal(c Clock) Clock {
	if c == nil {
		return realClock{}
	}
	return c
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Sleep waits for d on c, or until done is closed; it reports whether the
// full duration passed.
func Sleep(c Clock, d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-done:
		return false
	}
}
