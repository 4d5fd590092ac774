package source

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Reader reads a registry's current set of ready servers. index is what
// the previous successful Read returned (0 at first): a Reader of a
// registry with blocking reads (Consul) waits, bounded, for a change after
// it; one without (Kubernetes, polled) ignores it and reads at once. It
// returns the set (in any order, duplicates allowed) and the index for
// the next Read. It must honour ctx.
type Reader interface {
	Read(ctx context.Context, index uint64) (set []netip.AddrPort, next uint64, err error)
}

// ReaderFunc adapts a function to Reader.
type ReaderFunc func(ctx context.Context, index uint64) ([]netip.AddrPort, uint64, error)

// Read calls f.
func (f ReaderFunc) Read(ctx context.Context, index uint64) ([]netip.AddrPort, uint64, error) {
	return f(ctx, index)
}

// Loop says how Run reads.
type Loop struct {
	// Every is the least time between the starts of two reads: the poll
	// of a Reader that does not block, a floor against a registry that
	// changes all the time for one that does.
	Every time.Duration
	// Timeout bounds one read (0: no bound but ctx): a read that takes
	// longer is cancelled and counts as failed.
	Timeout time.Duration
	// Retry is the pause after a failed read, doubled after each further
	// failure up to MaxRetry (defaults: 1s and 5s).
	Retry, MaxRetry time.Duration
}

// The defaults of Loop's retries.
const (
	DefaultRetry    = time.Second
	DefaultMaxRetry = 5 * time.Second
)

// Run reads r until ctx ends, handing each successful read to k (Good)
// and each failure to it (Failed, the error naming the source), on k's
// clock. It returns when ctx ends.
func Run(ctx context.Context, r Reader, k *Keeper, l Loop) {
	if l.Retry <= 0 {
		l.Retry = DefaultRetry
	}
	if l.MaxRetry <= 0 {
		l.MaxRetry = DefaultMaxRetry
	}
	l.MaxRetry = max(l.MaxRetry, l.Retry)
	clk := k.clk
	var index uint64
	pause := l.Retry
	for ctx.Err() == nil {
		start := clk.Now()
		set, next, err := read(ctx, clk, r, index, l.Timeout)
		if ctx.Err() != nil {
			return
		}
		wait := l.Every - clk.Now().Sub(start)
		if err != nil {
			k.Failed(fmt.Errorf("read the relay's source %s: %w", k.o.Name, err))
			wait = max(wait, pause)
			pause = min(2*pause, l.MaxRetry)
			index = 0 // read afresh: the index may belong to a registry that was replaced
		} else {
			k.Good(set)
			index, pause = next, l.Retry
		}
		if !clock.Sleep(clk, wait, ctx.Done()) {
			return
		}
	}
}

// read is one r.Read, cancelled after timeout (0: none) on clk.
func read(ctx context.Context, clk clock.Clock, r Reader, index uint64, timeout time.Duration) ([]netip.AddrPort, uint64, error) {
	if timeout <= 0 {
		return r.Read(ctx, index)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := clk.NewTimer(timeout)
	defer t.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-t.C():
			cancel(fmt.Errorf("no answer within %s", timeout))
		case <-done:
		}
	}()
	set, next, err := r.Read(ctx, index)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	return set, next, err
}
