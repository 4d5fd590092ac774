package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/relay"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// maxLogged is how many addresses of each kind (added, removed) the log
// line of a change names; the counts are always whole.
const maxLogged = 5

// checkEvery is how often Watch looks whether the set turned stale.
const checkEvery = time.Second

// Options configure a Keeper.
type Options struct {
	// Name names the source in logs and notes ("consul", "kubernetes",
	// "local").
	Name string
	// Period is the longest a healthy source goes between two successful
	// reads; MaxStale how much older than that a set is still relayed
	// (relay_max_stale).
	Period, MaxStale time.Duration
	// Clock stamps the reads (nil: the real clock).
	Clock clock.Clock
	Log   zerolog.Logger
}

// Keeper holds the last set of targets a source read and says how old it
// is. It is the relay's relay.Targets: Targets is a snapshot read, safe
// from any goroutine while the source's reader calls Good and Failed.
type Keeper struct {
	o     Options
	clk   clock.Clock
	start time.Time // when the Keeper was made

	cur atomic.Pointer[held]

	mu      sync.Mutex // serialises Good, Failed and the transitions
	errs    uint64     // failed reads since start
	lastErr error      // the latest read's error; nil once one succeeds
	stale   bool       // the last state logged
}

// held is one successful read: the set and when it was read. Never
// modified once stored.
type held struct {
	set []relay.Target
	at  time.Time
}

// NewKeeper returns a Keeper holding no set yet.
func NewKeeper(o Options) *Keeper {
	clk := clock.OrReal(o.Clock)
	return &Keeper{o: o, clk: clk, start: clk.Now()}
}

// MaxAge is the age past which the set is stale: Period + MaxStale (the
// engine's relay.Config.MaxTargetAge).
func (k *Keeper) MaxAge() time.Duration { return k.o.Period + k.o.MaxStale }

// Targets implements relay.Targets: the set of the last successful read,
// its age, and whether any read succeeded since start. The engine refuses
// a set older than MaxAge.
func (k *Keeper) Targets() ([]relay.Target, time.Duration, bool) {
	h := k.cur.Load()
	if h == nil {
		return nil, 0, false
	}
	return h.set, max(k.clk.Now().Sub(h.at), 0), true
}

// Good records a successful read of set (servers in any order, duplicates
// and addresses that are not IPv4 allowed: they are sorted, deduplicated
// and left out). It logs a change of the set (info: its size, how many
// were added and removed, the first few of each), and the recovery of a
// source that had failed or gone stale.
func (k *Keeper) Good(set []netip.AddrPort) {
	next := Targets(set)
	now := k.clk.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	prev := k.cur.Swap(&held{set: next, at: now})
	if k.lastErr != nil || k.stale {
		ev := k.o.Log.Info().Str("source", k.o.Name).Bool("was_stale", k.stale)
		if prev != nil {
			ev = ev.Dur("unread_for", now.Sub(prev.at))
		}
		ev.Msg("relay source read again")
	}
	k.lastErr, k.stale = nil, false
	var old []relay.Target
	if prev != nil {
		old = prev.set
		if slices.Equal(old, next) {
			return
		}
	}
	added, removed := diff(old, next)
	k.o.Log.Info().Str("source", k.o.Name).Int("size", len(next)).Int("added", len(added)).Int("removed", len(removed)).
		Strs("added_first", firstN(added)).Strs("removed_first", firstN(removed)).Msg("relayed set changed")
}

// Failed records a failed read: the set is kept. The first failure after a
// success is logged (warn), the others at debug.
func (k *Keeper) Failed(err error) {
	if err == nil {
		err = errors.New("failed read")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.errs++
	first := k.lastErr == nil
	k.lastErr = err
	if first {
		k.o.Log.Warn().Str("source", k.o.Name).Err(err).Dur("relay_max_stale", k.o.MaxStale).
			Msg("relay source not read: relaying the last set read until it is stale")
	} else {
		k.o.Log.Debug().Str("source", k.o.Name).Err(err).Msg("relay source not read")
	}
	k.checkLocked()
}

// Check logs the source turning stale (warn) once, when it did since the
// last call. Watch calls it every second; Failed too.
func (k *Keeper) Check() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.checkLocked()
}

func (k *Keeper) checkLocked() {
	st := k.stateLocked()
	if !st.Stale || k.stale {
		return
	}
	k.stale = true
	ev := k.o.Log.Warn().Str("source", k.o.Name).Int("size", st.Size).Bool("read", st.Read).Dur("max_age", k.MaxAge())
	if st.Read {
		ev = ev.Dur("age", st.Age)
	}
	if st.LastError != nil {
		ev = ev.AnErr("last_error", st.LastError)
	}
	ev.Msg("relay source stale: answering no probes until it is read again")
}

// Watch calls Check every second until ctx ends.
func (k *Keeper) Watch(ctx context.Context) {
	for clock.Sleep(k.clk, checkEvery, ctx.Done()) {
		k.Check()
	}
}

// State is a Keeper's state, for metrics, logs and /readyz.
type State struct {
	// Name is the source's.
	Name string
	// Read says a read succeeded since start; Size and Age are its set's
	// size and age (how long since it was read).
	Read bool
	Size int
	Age  time.Duration
	// Stale: the set is older than MaxAge, or none was read within
	// MaxAge of start. Nothing is relayed while it is, nor before the
	// first read.
	Stale bool
	// LastError is the latest read's error (nil when it succeeded);
	// Errors counts the failed reads since start.
	LastError error
	Errors    uint64
}

// State returns the state now.
func (k *Keeper) State() State {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stateLocked()
}

// stateLocked is State. Before any read, the source turns stale once
// MaxAge has passed since the Keeper was made.
func (k *Keeper) stateLocked() State {
	st := State{Name: k.o.Name, LastError: k.lastErr, Errors: k.errs}
	set, age, ok := k.Targets()
	if ok {
		st.Read, st.Size, st.Age = true, len(set), age
		st.Stale = age > k.MaxAge()
	} else {
		st.Stale = k.clk.Now().Sub(k.start) > k.MaxAge()
	}
	return st
}

// ReadyNotes implements sink.ReadyNoter for /readyz: a note while no set
// was read yet or the set is stale (the relay answers nothing then);
// nothing while it is relayed.
func (k *Keeper) ReadyNotes() []string {
	st := k.State()
	if st.Read && !st.Stale {
		return nil
	}
	why := ""
	if st.LastError != nil {
		why = "; last error: " + st.LastError.Error()
	}
	if !st.Read {
		return []string{fmt.Sprintf("source %s: no set read yet%s; answering no probes", st.Name, why)}
	}
	return []string{fmt.Sprintf("source %s stale: its set of %d was read %s ago, more than %s (its period %s + relay_max_stale %s)%s; answering no probes",
		st.Name, st.Size, st.Age.Round(time.Millisecond), k.MaxAge(), k.o.Period, k.o.MaxStale, why)}
}

// Targets returns set as the relay's targets: the IPv4 addresses
// (IPv4-mapped ones unmapped), each with its port (0: none), sorted and
// without duplicates.
func Targets(set []netip.AddrPort) []relay.Target {
	out := make([]relay.Target, 0, len(set))
	for _, ap := range set {
		if a := ap.Addr().Unmap(); a.Is4() {
			out = append(out, relay.Target{Addr: a, Port: ap.Port()})
		}
	}
	slices.SortFunc(out, compareTargets)
	return slices.Compact(out)
}

func compareTargets(a, b relay.Target) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
}

// diff returns the targets of next not in old and those of old not in
// next; both sets are sorted.
func diff(old, next []relay.Target) (added, removed []relay.Target) {
	i, j := 0, 0
	for i < len(old) && j < len(next) {
		switch c := compareTargets(old[i], next[j]); {
		case c < 0:
			removed = append(removed, old[i])
			i++
		case c > 0:
			added = append(added, next[j])
			j++
		default:
			i++
			j++
		}
	}
	return append(added, next[j:]...), append(removed, old[i:]...)
}

// firstN spells the first maxLogged targets of ts, and "..." when there
// are more.
func firstN(ts []relay.Target) []string {
	out := make([]string, 0, min(len(ts), maxLogged)+1)
	for _, t := range ts[:min(len(ts), maxLogged)] {
		out = append(out, t.String())
	}
	if len(ts) > maxLogged {
		out = append(out, "...")
	}
	return out
}
