// Package member is a bridge's own side of the fleet, whatever the
// registry: it publishes this bridge's observation (what it sees of the
// servers, package observation) where the leader reads it, and stands for
// leadership, running the leader's work (package fleet) for every term it
// wins.
//
// The Member owns what does not depend on the registry: the stale-snapshot
// guard (a snapshot older than two rounds is not published), publishing on
// change only (compare-and-skip against what was last written under the
// same epoch), the wait for the first term at start, the hand-over of the
// observation on exit (through the Publisher), and the leader's standing
// fault, which Apply returns while this bridge leads. A registry provides
// a Publisher (where the observation's chunks go) and an Elector (how
// terms of leadership are won and lost).
//
// Words: an observation is one bridge's set of servers as it publishes it
// (observation.Observation, written as encoded chunks); a plan is what the
// leader writes to the registry (fleet.Plan), never a member's.
package member

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Publisher writes this bridge's observation where the fleet's leader
// reads it.
type Publisher interface {
	// Epoch names what this bridge's observation is held under now (a
	// session, an owner): chunks written under another epoch count as not
	// written. An error says the observation cannot be published now.
	Epoch(ctx context.Context) (string, error)
	// Write writes chunks, the encoded observation, under epoch; prev is
	// how many chunks the last write under the same epoch left (0 after
	// a new epoch). It returns the writes made.
	Write(ctx context.Context, epoch string, chunks [][]byte, prev int) (int, error)
	// Leave is called once on exit, after the campaign stopped, with what
	// was written last (chunks nil when nothing was): it hands the
	// observation over to a successor or withdraws it, as configured.
	Leave(ctx context.Context, epoch string, chunks [][]byte) error
}

// Verifier is a Publisher that, on a round whose observation is unchanged,
// reads its chunks back: repair true has them written again (someone else
// changed them).
type Verifier interface {
	Verify(ctx context.Context, epoch string, chunks [][]byte) (repair bool, err error)
}

// Elector stands for the fleet's leadership.
type Elector interface {
	// Campaign stands until ctx ends and calls lead with a term, a context
	// that ends when leadership is lost, for every term it wins; lead
	// returns once the term ended (or when it found another leader, which
	// ends the term). Terms never overlap.
	Campaign(ctx context.Context, lead func(term context.Context))
	// Leader reports whether a term is running.
	Leader() bool
	// Ready is closed once this bridge's observation can count (its
	// session or liveness exists).
	Ready() <-chan struct{}
}

// Options are a Member's settings.
type Options struct {
	// Registry names the registry in errors: "consul", "kubernetes".
	Registry string
	// BridgeID and Segment make the observation (fleet.ObservationOf).
	BridgeID, Segment string
	// Round is the discovery round: a snapshot older than two is stale
	// (0: none is).
	Round time.Duration
	Clock clock.Clock
	Log   zerolog.Logger
	// MaxChunk bounds one chunk; MaxBytes, when set, the whole
	// observation, which Container (a "ConfigMap") must take.
	MaxChunk  int
	MaxBytes  int
	Container string
	// ReadyWait bounds Start's wait for the Elector's Ready; FirstTermWait
	// the wait for the first term after it (0: none). With
	// FirstTermUnready the first term is waited for even when Ready was
	// not.
	ReadyWait, FirstTermWait time.Duration
	FirstTermUnready         bool
	// Fault words the leader's standing fault as Apply returns it.
	Fault func(error) error
	// Once, when set, is run by Apply as leader after publishing (run
	// --once): one merge and write; it returns the writes made.
	Once func(ctx context.Context) (int, error)
}

// Member is a bridge's side of the fleet. Its methods are safe for
// concurrent use.
type Member struct {
	opts Options
	pub  Publisher
	el   Elector

	mu   sync.Mutex
	last *endpoint.Snapshot // the newest fresh snapshot Apply was given

	// pubMu serialises publishing (Apply, Republish, Leave).
	pubMu  sync.Mutex
	epoch  string   // epoch of the last write
	chunks [][]byte // chunks of the last write (nil: none)

	firstTerm chan struct{}
	firstOnce sync.Once
	fault     atomic.Pointer[error]
}

// New is a Member publishing through pub and standing through el.
func New(opts Options, pub Publisher, el Elector) *Member {
	opts.Clock = clock.OrReal(opts.Clock)
	if opts.Fault == nil {
		opts.Fault = func(err error) error { return err }
	}
	return &Member{opts: opts, pub: pub, el: el, firstTerm: make(chan struct{})}
}

// Leader reports whether this bridge leads now.
func (m *Member) Leader() bool { return m.el.Leader() }

// FirstTerm is closed when this bridge leads for the first time.
func (m *Member) FirstTerm() <-chan struct{} { return m.firstTerm }

// Run stands for leadership until ctx ends, running lead for every term:
// the first term is noted and the standing fault ends with its term.
func (m *Member) Run(ctx context.Context, lead func(term context.Context)) {
	m.el.Campaign(ctx, func(term context.Context) {
		m.firstOnce.Do(func() { close(m.firstTerm) })
		defer m.fault.Store(nil)
		lead(term)
	})
}

// WaitStart waits, bounded by ctx and the Options, for the Elector to be
// ready and then for the first term, so that the first Apply counts at
// once and a lone bridge leads from its first round.
func (m *Member) WaitStart(ctx context.Context) {
	t := m.opts.Clock.NewTimer(m.opts.ReadyWait)
	defer t.Stop()
	ready := false
	select {
	case <-m.el.Ready():
		ready = true
	case <-t.C():
	case <-ctx.Done():
	}
	if m.opts.FirstTermWait <= 0 || !ready && !m.opts.FirstTermUnready {
		return
	}
	t2 := m.opts.Clock.NewTimer(m.opts.FirstTermWait)
	defer t2.Stop()
	select {
	case <-m.firstTerm:
	case <-t2.C():
	case <-ctx.Done():
	}
}

// SetFault sets (err) or clears (nil) the leader's standing fault: a
// refusal for this bridge's rights, which Apply returns while it leads.
func (m *Member) SetFault(err error) {
	if err == nil {
		m.fault.Store(nil)
		return
	}
	m.fault.Store(&err)
}

// Fault is the standing fault, or nil.
func (m *Member) Fault() error {
	if f := m.fault.Load(); f != nil {
		return *f
	}
	return nil
}

// Apply publishes this bridge's observation of s when it changed (0
// writes otherwise; a Verifier's chunks are read back). A snapshot older
// than two rounds (the process was paused) is not published: the next
// round's will be. As leader it then runs Options.Once, and returns the
// standing fault (as it stood before the publish).
func (m *Member) Apply(ctx context.Context, s endpoint.Snapshot) (sink.Result, error) {
	var res sink.Result
	if age, stale := m.stale(s); stale {
		m.opts.Log.Warn().Uint64("round", s.Round).Str("age", age.Round(time.Millisecond).String()).
			Msg("not publishing an observation older than two rounds (the process was paused?); the next fresh round will be published")
		return res, nil
	}
	m.mu.Lock()
	m.last = &s
	m.mu.Unlock()
	// The fault as it stands when the round comes, before this round's
	// publish wakes the leader.
	fault := m.Fault()
	n, err := m.publish(ctx, s, true)
	res.Writes = n
	if err != nil {
		return res, err
	}
	if m.opts.Once != nil && m.Leader() {
		w, err := m.opts.Once(ctx)
		res.Writes += w
		if err != nil {
			return res, err
		}
	}
	if fault != nil && m.Leader() {
		return res, m.opts.Fault(fault)
	}
	return res, nil
}

// Republish publishes the newest fresh snapshot again now (after a new
// epoch: a lost session replaced), without reading back. It returns the
// writes made and the snapshot (ok false: none, or no longer fresh).
func (m *Member) Republish(ctx context.Context) (n int, last endpoint.Snapshot, ok bool, err error) {
	m.mu.Lock()
	l := m.last
	m.mu.Unlock()
	if l == nil {
		return 0, endpoint.Snapshot{}, false, nil
	}
	if _, stale := m.stale(*l); stale {
		return 0, *l, false, nil
	}
	n, err = m.publish(ctx, *l, false)
	return n, *l, true, err
}

// Forget forgets what was written, so that the next Apply writes (the
// registry may have lost it).
func (m *Member) Forget() {
	m.pubMu.Lock()
	m.chunks = nil
	m.pubMu.Unlock()
}

// Leave hands over or withdraws the observation (Publisher.Leave); the
// caller stopped the campaign first.
func (m *Member) Leave(ctx context.Context) error {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	return m.pub.Leave(ctx, m.epoch, m.chunks)
}

// Observation is this bridge's observation of s.
func (m *Member) Observation(s endpoint.Snapshot) observation.Observation {
	return fleet.ObservationOf(m.opts.BridgeID, m.opts.Segment, s)
}

// stale reports whether s is older than two rounds, and its age.
func (m *Member) stale(s endpoint.Snapshot) (time.Duration, bool) {
	if m.opts.Round <= 0 || s.At.IsZero() {
		return 0, false
	}
	age := m.opts.Clock.Now().Sub(s.At)
	return age, age > 2*m.opts.Round
}

// publish writes the observation of s unless what was written last under
// the current epoch is the same; with verify a Verifier reads it back
// then.
func (m *Member) publish(ctx context.Context, s endpoint.Snapshot, verify bool) (int, error) {
	o := m.Observation(s)
	chunks, err := observation.Encode(o, m.opts.MaxChunk)
	if err != nil {
		return 0, fmt.Errorf("%s encode observation of %d servers: %w", m.opts.Registry, len(o.Entries), err)
	}
	if m.opts.MaxBytes > 0 {
		total := 0
		for _, c := range chunks {
			total += len(c)
		}
		if total > m.opts.MaxBytes {
			return 0, fmt.Errorf("%s observation of %d servers is %d bytes, more than a %s takes (%d); lower max_replies",
				m.opts.Registry, len(o.Entries), total, m.opts.Container, m.opts.MaxBytes)
		}
	}
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	epoch, err := m.pub.Epoch(ctx)
	if err != nil {
		return 0, err
	}
	prev := 0
	if m.chunks != nil && m.epoch == epoch {
		prev = len(m.chunks)
		if slices.EqualFunc(m.chunks, chunks, bytes.Equal) {
			v, ok := m.pub.(Verifier)
			if !verify || !ok {
				return 0, nil
			}
			repair, err := v.Verify(ctx, epoch, chunks)
			if err != nil || !repair {
				return 0, err
			}
		}
	}
	n, err := m.pub.Write(ctx, epoch, chunks, prev)
	if err != nil {
		return 0, err
	}
	m.epoch, m.chunks = epoch, chunks
	m.opts.Log.Debug().Int("servers", len(s.Endpoints)).Int("chunks", len(chunks)).Msg("observation published")
	return n, nil
}
