package fleet

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// ErrLeadershipLost is the cause of a term that ended because leadership
// was lost (the lock or the session that held it went); Leader.Run says so
// when it stops.
var ErrLeadershipLost = errors.New("leadership lost")

// ErrNotLeader is wrapped by a Registry's Write whose guard found that this
// bridge no longer leads: the leader stops writing at once.
var ErrNotLeader = errors.New("no longer the leader")

// Store is where the leader reads the fleet's observations.
type Store interface {
	// Observations reads every bridge's observation, blocking up to wait
	// for a change after index (index or wait 0: no blocking).
	Observations(ctx context.Context, index uint64, wait time.Duration) (Observations, error)
}

// Registry is what the leader writes: the fleet's entries as the registry
// holds them, and the writes of a plan.
type Registry[S any] interface {
	// Entries reads the fleet's entries, by key.
	Entries(ctx context.Context) (map[string]Entry[S], error)
	// Skip drops from p what must not be written now (entries in the way
	// of someone else's).
	Skip(p Plan[S]) Plan[S]
	// Write applies p and updates current with what was written; it
	// returns the operations written. An error wrapping ErrNotLeader says
	// this bridge no longer leads.
	Write(ctx context.Context, p Plan[S], current map[string]Entry[S]) (int, error)
}

// Stage names what failed, for Reporter.Failed.
type Stage int

const (
	// StageObservations is reading the observations.
	StageObservations Stage = iota
	// StageRegistryRead is reading the registry's entries.
	StageRegistryRead
	// StageRegistryWrite is a write of a plan.
	StageRegistryWrite
	// StageUndecodable is an observation that does not decode.
	StageUndecodable
)

// Reporter is told what the leader's work meets: it counts and keeps the
// standing faults (a registry's refusal for its permissions) that the
// leader's loop itself does not interpret.
type Reporter interface {
	// Failed: a read or write of stage failed with err (or an observation
	// did not decode).
	Failed(stage Stage, err error)
	// Succeeded: a plan was read and written (or had nothing to write).
	Succeeded()
	// Merged: the leader merged the observations of observers bridges and
	// planned, which took took.
	Merged(observers int, took time.Duration)
	// Describe adds what the registry knows of err to a log event.
	Describe(ev *zerolog.Event, err error) *zerolog.Event
}

// Timing is the leader's delays.
type Timing struct {
	// StartupGrace is the hold when leading starts and when the store
	// answers again after failed reads.
	StartupGrace time.Duration
	// DeregisterAfter is how long an entry stays unobserved before it goes.
	DeregisterAfter time.Duration
	// Resync is how often the registry's entries are read again.
	Resync time.Duration
	// MaxWait bounds one blocking read of the observations.
	MaxWait time.Duration
	// RetryMin and RetryMax bound the backoff after a failure.
	RetryMin, RetryMax time.Duration
}

// Leader is the leader's work for one term: it merges the observations and
// writes the registry. Its fields are set before Run.
type Leader[S any] struct {
	Store    Store
	Registry Registry[S]
	Shape    Shape[S]
	Report   Reporter
	Timing   Timing
	Clock    clock.Clock
	Log      zerolog.Logger
	// Backend names the store's service in logs ("Consul"), Target what
	// the leader writes ("catalog").
	Backend, Target string
	// Guard tunes the fleet's removal guard (guard.go); the zero value
	// is off.
	Guard GuardConfig
	// OnGuard, when set, is told what the guard did after every plan
	// (the sinks keep their removals_held metrics with it), and told an
	// empty state when the term ends: a bridge that no longer leads
	// holds nothing.
	OnGuard func(GuardState)
	// Record, when set, keeps what the guard did in the last plan, with
	// the held servers' addresses and releases, for readers on other
	// goroutines (bridge explain, /readyz); Run empties it when the term
	// ends.
	Record *GuardRecord
}

// Run leads for the term: it wakes when an observation changes (a blocking
// read), when an unobserved entry is due for removal, when a hold ends and
// at least every MaxWait, re-reads the registry every Resync, and writes
// what the plan says. It returns when the term ends (every read and write
// under way is cancelled with it) or a write finds that this bridge no
// longer leads, and logs that it stopped writing.
func (l *Leader[S]) Run(term context.Context) {
	clk, log, tm, reg := clock.OrReal(l.Clock), l.Log, l.Timing, l.Target
	var hold Hold
	hold.Extend(clk.Now(), tm.StartupGrace)
	log.Info().Dur("startup_grace", tm.StartupGrace).Msg("leading: merging observations into the " + reg)
	var (
		current  map[string]Entry[S]
		lastRead time.Time
		index    uint64
		retry    = tm.RetryMin
		wake     time.Time // the store's own next change (Observations.Wake)
		// failing is set while reads fail (the store unreachable, no
		// quorum); writeFailing while writes fail, so each episode logs
		// once at WARN.
		failing, writeFailing bool
		standins              Standins
		guard                 = Guard{Config: l.Guard}
		guardRelease          time.Time // the guard's next release, zero when it holds nothing
		reread                bool      // the registry was just read: plan on it without waiting
		moved                 bool      // a write found that another bridge leads
	)
	defer func() {
		l.Record.Clear()
		if l.OnGuard != nil {
			l.OnGuard(GuardState{})
		}
		l.stopped(term, moved, reg)
	}()
	// holdFor makes missing observations unknown rather than unobserved
	// for a start-up grace from now: after the store comes back, or its
	// data went back in time, every bridge needs a round (and maybe a new
	// session) to publish again.
	holdFor := func(why string) {
		hold.Extend(clk.Now(), tm.StartupGrace)
		log.Info().Dur("hold", tm.StartupGrace).Str("why", why).
			Msg("leader: nothing turns critical or is removed until every bridge had a round to publish")
	}
	// fail forgets what the leader read, so that it re-reads everything
	// (the registry may have been lost meanwhile), and backs off.
	fail := func(stage Stage, what string, err error) bool {
		if !failing {
			log.Warn().Err(err).Msg("leader: cannot read the " + what + "; retrying")
		} else {
			log.Debug().Err(err).Msg("leader: cannot read the " + what + "; retrying")
		}
		failing = true
		l.Report.Failed(stage, err)
		current, index = nil, 0
		ok := clock.Sleep(clk, retry, term.Done())
		retry = min(retry*2, tm.RetryMax)
		return ok
	}
	for term.Err() == nil {
		now := clk.Now()
		if current == nil || now.Sub(lastRead) >= tm.Resync {
			// The read replaces what the leader holds: let it go first, so
			// that two views of the fleet never coexist (10,000 catalog
			// entries are about 3 MiB).
			current = nil
			cur, err := l.Registry.Entries(term)
			if err != nil {
				if term.Err() != nil || !fail(StageRegistryRead, reg, err) {
					return
				}
				continue
			}
			current, lastRead, reread = cur, now, true
		}
		// Wake at the next resync too, and plan right after each read of
		// the registry, so that what a resync finds (an entry changed
		// behind the leader's back, an entry in the way that went) is
		// acted on then, not at the next change of the observations.
		wait := min(tm.MaxWait, max(lastRead.Add(tm.Resync).Sub(now), time.Millisecond))
		if at, ok := nextRemoval(current, tm.DeregisterAfter, guard.Holds); ok {
			wait = min(wait, max(at.Sub(now), 0))
		}
		if !guardRelease.IsZero() {
			wait = min(wait, max(guardRelease.Sub(now), time.Millisecond))
		}
		if hold.Holds(now) {
			wait = min(wait, hold.Until().Sub(now))
		}
		if !wake.IsZero() {
			wait = min(wait, max(wake.Sub(now), time.Millisecond))
		}
		if reread {
			wait, reread = 0, false
		}
		obs, err := l.Store.Observations(term, index, wait)
		if err != nil {
			if term.Err() != nil || !fail(StageObservations, "observations", err) {
				return
			}
			continue
		}
		if failing {
			failing = false
			log.Info().Msg("leader: " + l.Backend + " answers again")
			holdFor(l.Backend + " answers again")
		}
		if obs.Reset {
			holdFor("the observations' index went back (a snapshot restore or a new cluster)")
			current = nil
		}
		index, wake = obs.Index, obs.Wake
		mergeStart := clk.Now()
		for _, bad := range standins.Apply(obs, mergeStart, tm.StartupGrace) {
			l.Report.Failed(StageUndecodable, bad.Err)
			log.Warn().Err(bad.Err).Str("bridge", bad.Bridge).Str("key", bad.Key).Uint64("modify_index", bad.Revision).
				Msg("ignoring an observation that does not decode (written by someone other than its bridge?); its bridge rewrites it within a round")
		}
		list := obs.List()
		desired := Merge(list)
		p := Reconcile(l.Shape, desired, current, mergeStart, tm.DeregisterAfter, hold.Holds(mergeStart))
		var gs GuardState
		if l.Guard.on() {
			p, gs = GuardPlan(&guard, mergeStart, p, current, desiredKeys(l.Shape, desired))
		}
		guardRelease = gs.Release
		l.reportGuard(gs, mergeStart)
		l.record(&guard, gs, current)
		p = l.Registry.Skip(p)
		l.Report.Merged(len(list), clk.Now().Sub(mergeStart))
		if p.Empty() {
			retry = tm.RetryMin
			l.Report.Succeeded()
			continue
		}
		writeStart := clk.Now()
		n, err := l.Registry.Write(term, p, current)
		ev := log.Info()
		switch {
		case term.Err() != nil: // cut short by the end of the term: no failure
		case err != nil && !writeFailing:
			ev = l.Report.Describe(log.Warn(), err)
		case err != nil:
			ev = log.Debug()
		}
		ev.Int("registered", len(p.Register)).Int("updated", len(p.Update)).Int("passing", len(p.Pass)).Int("critical", len(p.Fail)).
			Int("removed", len(p.Remove)).Int("unchanged", p.Unchanged).Int("observers", len(list)).Int("writes", n).
			Str("took", clk.Now().Sub(writeStart).String()).Err(err).Msg(reg + " reconciled")
		if term.Err() != nil {
			return
		}
		if errors.Is(err, ErrNotLeader) {
			moved = true
			return
		}
		if err != nil {
			writeFailing = true
			l.Report.Failed(StageRegistryWrite, err)
			index = 0 // re-plan right after the backoff, not at the next change
			ok := clock.Sleep(clk, retry, term.Done())
			retry = min(retry*2, tm.RetryMax)
			if !ok {
				return
			}
			continue
		}
		if writeFailing {
			writeFailing = false
			log.Info().Msg("leader: " + reg + " writes succeed again")
		}
		retry = tm.RetryMin
		l.Report.Succeeded()
	}
}

// stopped logs why the leader stopped writing: leadership lost (the term's
// cause, or a write that found another leader) at WARN, the end of the
// term otherwise (shutdown) at INFO.
func (l *Leader[S]) stopped(term context.Context, moved bool, reg string) {
	cause := context.Cause(term)
	switch {
	case moved:
		l.Log.Warn().Msg("leader: the lock moved to another bridge; stopped writing the " + reg)
	case errors.Is(cause, ErrLeadershipLost):
		l.Log.Warn().Str("why", cause.Error()).Msg("leader: leadership lost; stopped writing the " + reg)
	default:
		l.Log.Info().Msg("leader: term ended; stopped writing the " + reg)
	}
}

// reportGuard tells OnGuard and the log what the fleet's removal guard did:
// a WARN when an episode starts, an INFO when it ends.
func (l *Leader[S]) reportGuard(st GuardState, now time.Time) {
	if l.OnGuard != nil {
		l.OnGuard(st)
	}
	switch {
	case st.Started:
		l.Log.Warn().Int("held", len(st.Held)).Int("going", st.Going).Int("known", st.Known).
			Float64("max_removal_fraction", l.Guard.MaxFraction).Bool("held_ready", l.Guard.HeldReady).
			Time("release", st.Release).Str("reason", st.Reason(now, l.Guard.MaxFraction, l.Guard.HeldReady)).
			Msg("fleet removal guard: too many servers unobserved at once across the fleet (the bridges' network?); holding their removal")
	case st.Ended:
		l.Log.Info().Int("released", st.Released).Int("returned", st.Returned).
			Msg("fleet removal guard: no removal held any more (released after confirmation, or observed again)")
	case len(st.Held) > 0 && (st.Released > 0 || st.Returned > 0):
		l.Log.Info().Int("held", len(st.Held)).Int("released", st.Released).Int("returned", st.Returned).
			Time("release", st.Release).Msg("fleet removal guard: still holding removals")
	}
}

// record keeps st in l.Record with the held servers' addresses (from
// current, where the registry holds them) and releases. While the same
// servers stay held, the last report's list is kept as it is.
func (l *Leader[S]) record(g *Guard, st GuardState, current map[string]Entry[S]) {
	if l.Record == nil {
		return
	}
	rep := GuardReport{State: st, Config: l.Guard, DeregisterAfter: l.Timing.DeregisterAfter}
	if last, ok := l.Record.Last(); ok && slices.Equal(last.State.Held, st.Held) {
		rep.Holds = last.Holds
	} else if len(st.Held) > 0 {
		rep.Holds = make([]GuardHold, 0, len(st.Held))
		for _, key := range st.Held {
			e, ok := current[key]
			if !ok {
				continue
			}
			rep.Holds = append(rep.Holds, GuardHold{Key: key, Addr: l.Shape.Addr(e.Spec), Until: g.held[key]})
		}
		slices.SortFunc(rep.Holds, func(a, b GuardHold) int { return a.Addr.Compare(b.Addr) })
	}
	l.Record.Keep(rep)
}
