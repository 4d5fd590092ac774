package fleet

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Entry is one server as the registry holds it, or should hold it: the
// registry's spelling of it (Spec) and its state in the fleet's life cycle,
// observed (passing) or unobserved since a time.
type Entry[S any] struct {
	// Key is the registry's name of the entry, unique in the fleet.
	Key  string
	Spec S
	// Since is when the last observer went away (entries not passing).
	Since time.Time
	// Passing: at least one live bridge observes the server.
	Passing bool
	// New is set on a plan's registrations of a key the registry holds no
	// entry of: a writer creates it only if nobody else did meanwhile.
	New bool
}

// Difference is how a held entry differs from the wanted one.
type Difference int

const (
	// Same is nothing to write (but the state, if it is not passing).
	Same Difference = iota
	// Changed means the entry is rewritten in place (Plan.Update).
	Changed
	// Replaced means the entry is written whole (Plan.Register).
	Replaced
)

// Shape is how a registry spells a server; Reconcile consumes it.
type Shape[S any] interface {
	// Key is the name of the entry of the server at addr.
	Key(addr netip.AddrPort) string
	// Spec is the wanted entry of the server at addr, observed as o; key
	// is Key(addr), which the spec may share (10,000 servers, one string
	// each instead of two).
	Spec(key string, addr netip.AddrPort, o Observed) S
	// Compare says how the held spec differs from the wanted one.
	Compare(held, want S) Difference
	// Addr is the address of the server spec spells (Spec's addr): what
	// the leader reports of the servers its removal guard holds, which no
	// bridge observes any more.
	Addr(spec S) netip.AddrPort
}

// Plan is what the leader writes to bring the registry in line. Each list
// is sorted by key.
type Plan[S any] struct {
	// Register: new entries, or entries that differ so that they are
	// written whole.
	Register []Entry[S]
	// Update: entries rewritten in place; Passing is the held state (the
	// writer sets them passing if they are not).
	Update []Entry[S]
	// Pass: entries observed again that are not passing.
	Pass []Entry[S]
	// Fail: entries no live bridge observes any more that were passing;
	// their Since is the time of the plan.
	Fail []Entry[S]
	// Remove: entries unobserved for at least deregister_after.
	Remove []Entry[S]
	// Unchanged counts the entries already right (or held).
	Unchanged int
}

// Empty reports whether the plan writes nothing.
func (p Plan[S]) Empty() bool {
	return len(p.Register)+len(p.Update)+len(p.Pass)+len(p.Fail)+len(p.Remove) == 0
}

// Reconcile compares the desired set with what the registry holds (by key).
// now is the time of the plan; an unobserved entry is removed once
// deregisterAfter has passed since it turned unobserved. With hold set
// (a start-up grace, while bridges may not have published yet) nothing
// turns unobserved or is removed.
func Reconcile[S any](sh Shape[S], desired map[netip.AddrPort]Observed, current map[string]Entry[S],
	now time.Time, deregisterAfter time.Duration, hold bool) Plan[S] {
	var p Plan[S]
	if len(current) == 0 {
		// A first write (or one after the registry was lost): every
		// desired server is a registration.
		p.Register = make([]Entry[S], 0, len(desired))
	}
	want := make(map[string]struct{}, len(desired))
	for addr, o := range desired {
		key := sh.Key(addr)
		want[key] = struct{}{}
		e := Entry[S]{Key: key, Spec: sh.Spec(key, addr, o), Passing: true}
		cur, ok := current[key]
		switch {
		case !ok:
			e.New = true
			p.Register = append(p.Register, e)
		case sh.Compare(cur.Spec, e.Spec) == Replaced:
			p.Register = append(p.Register, e)
		case sh.Compare(cur.Spec, e.Spec) == Changed:
			e.Passing = cur.Passing
			p.Update = append(p.Update, e)
		case !cur.Passing:
			p.Pass = append(p.Pass, e)
		default:
			p.Unchanged++
		}
	}
	for key, cur := range current {
		if _, ok := want[key]; ok {
			continue
		}
		switch {
		case hold:
			p.Unchanged++
		case cur.Passing:
			cur.Passing, cur.Since = false, now
			p.Fail = append(p.Fail, cur)
		case !now.Before(cur.Since.Add(deregisterAfter)):
			p.Remove = append(p.Remove, cur)
		default:
			p.Unchanged++
		}
	}
	byKey := func(a, b Entry[S]) int { return strings.Compare(a.Key, b.Key) }
	for _, l := range [][]Entry[S]{p.Register, p.Update, p.Pass, p.Fail, p.Remove} {
		slices.SortFunc(l, byKey)
	}
	return p
}

// NextRemoval is the earliest time an unobserved entry of current is due
// for removal, and false when none is unobserved.
func NextRemoval[S any](current map[string]Entry[S], deregisterAfter time.Duration) (time.Time, bool) {
	return nextRemoval(current, deregisterAfter, nil)
}

// nextRemoval is NextRemoval of the entries whose key held does not
// report (the removal guard holds them; nil: every entry).
func nextRemoval[S any](current map[string]Entry[S], deregisterAfter time.Duration, held func(string) bool) (time.Time, bool) {
	var at time.Time
	found := false
	for _, e := range current {
		if e.Passing || (held != nil && held(e.Key)) {
			continue
		}
		if t := e.Since.Add(deregisterAfter); !found || t.Before(at) {
			at, found = t, true
		}
	}
	return at, found
}

// desiredKeys is the set of the keys of the desired servers.
func desiredKeys[S any](sh Shape[S], desired map[netip.AddrPort]Observed) map[string]struct{} {
	keys := make(map[string]struct{}, len(desired))
	for addr := range desired {
		keys[sh.Key(addr)] = struct{}{}
	}
	return keys
}
