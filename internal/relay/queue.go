package relay

import (
	"net/netip"
	"sync"
	"time"
)

// pending is one delayed reply: target t, for the prober to, due at due.
type pending struct {
	due time.Time
	to  netip.AddrPort
	t   Target
}

// queue is the bounded FIFO of delayed replies, a ring allocated once.
// Every reply is due Delay after its probe was read, and probes are read
// in order, so the ring is in due order: the head is always the next due.
// The reading goroutine pushes, the scheduler pops.
type queue struct {
	mu   sync.Mutex
	buf  []pending
	head int
	n    int
	// wake tells the scheduler that a push made an empty queue non-empty.
	wake chan struct{}
}

func newQueue(size int) *queue {
	return &queue{buf: make([]pending, size), wake: make(chan struct{}, 1)}
}

// room reports whether n more replies fit.
func (q *queue) room(n int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n+n <= len(q.buf)
}

// push appends the replies of one probe, all due at due, for to; it
// reports false, appending nothing, when they do not all fit.
func (q *queue) push(due time.Time, to netip.AddrPort, ts []Target) bool {
	q.mu.Lock()
	if q.n+len(ts) > len(q.buf) {
		q.mu.Unlock()
		return false
	}
	wasEmpty := q.n == 0
	for _, t := range ts {
		q.buf[(q.head+q.n)%len(q.buf)] = pending{due: due, to: to, t: t}
		q.n++
	}
	q.mu.Unlock()
	if wasEmpty && len(ts) > 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// popDue appends to out every reply due at or before now, removing them,
// and returns the due time of the next one, if any is left.
func (q *queue) popDue(now time.Time, out []pending) ([]pending, time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 && !q.buf[q.head].due.After(now) {
		out = append(out, q.buf[q.head])
		q.buf[q.head] = pending{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	if q.n == 0 {
		return out, time.Time{}, false
	}
	return out, q.buf[q.head].due, true
}

// len is how many replies wait.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// clear drops every waiting reply.
func (q *queue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.buf)
	q.head, q.n = 0, 0
}
