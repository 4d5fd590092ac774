package history

import (
	"slices"
	"sort"
	"time"
)

// bounds are the durations the invariants derive from a config.
type bounds struct {
	round, slack time.Duration
	// live is missed_rounds rounds: how long after its last reply a
	// server stays protected by no-live-removal.
	live time.Duration
	// hyst is missed_rounds+1 rounds: by then after its last reply to a
	// bridge, that bridge has dropped the server.
	hyst time.Duration
	// stale is how long the observation of a bridge that stopped without
	// cleaning up may stand: twice the session TTL, or the grace of a
	// handed-over one.
	stale time.Duration
	// grace is the leader's grace when a term begins or the store answers
	// again: a round plus the retry bound.
	grace time.Duration
	// window is the fleet guard's window, group how far apart the last
	// replies of one silence may be (a round less: rounds are not
	// aligned).
	window, group time.Duration
	// confirm is the guard's hold; passHold and passConfirm how long a
	// server may stay passing past the fleet losing it (the window and
	// the hold) or past a term's grace (the hold), 0 unless held servers
	// stay passing.
	confirm, passHold, passConfirm time.Duration
	// established is how long a server must have answered before a
	// silence for the checker to be sure the leader counts it.
	established        time.Duration
	quiet, conv        time.Duration
	guardOn, heldReady bool
}

func newBounds(c Config) bounds {
	r := c.Round.D()
	b := bounds{round: r, slack: c.Slack.D()}
	b.grace = r + min(max(r, time.Second), 5*time.Second)
	b.stale = max(2*c.SessionTTL.D(), b.grace)
	b.live = time.Duration(c.MissedRounds) * r
	b.hyst = b.live + r
	b.window = time.Duration(c.WindowRounds) * r
	b.group = b.window - r
	b.guardOn = c.RemovalGuardRounds > 0 && c.MaxRemovalFraction > 0 && c.MaxRemovalFraction < 1
	b.heldReady = c.RemovalGuardHeld != HeldUnobserved
	if b.guardOn {
		b.confirm = time.Duration(c.RemovalGuardRounds) * r
		if b.heldReady {
			b.passConfirm, b.passHold = b.confirm, b.window+b.confirm
		}
	}
	b.established = b.hyst + r + b.slack + b.grace
	b.quiet = c.Quiet.D()
	if b.quiet == 0 {
		b.quiet = c.DeregisterAfter.D() + 2*b.slack
	}
	b.conv = max(b.stale, b.hyst) + b.grace + b.passHold + b.slack
	return b
}

type readAt struct {
	at time.Time
	r  *SinkRead
}

type writeAt struct {
	at time.Time
	w  *LeaderWrite
}

type faultSpan struct {
	kind     string
	from, to time.Time
}

// model is the world a history describes, as sets of instants.
type model struct {
	cfg                 Config
	b                   bounds
	start, end, forever time.Time
	segOf               map[string]string   // server or bridge → segment
	onSeg               map[string][]string // segment → bridges
	servers, bridges    []string            // the config's, sorted

	// Per bridge: pub while it can publish (up, not paused, not cut from
	// the registry), probe while it can probe (up, not paused, not cut
	// from its segment), live while both; raw its terms as recorded, eff
	// the instants of them it could act (up, not paused, not cut from the
	// registry).
	pub, probe, live, raw, eff map[string]spans
	// Per server: answering; seen while it answers a live bridge of its
	// segment; support while the registry holds an observation of it;
	// protect what no-live-removal protects; stops when it stopped
	// answering.
	answering, seen, support, protect map[string]spans
	stops                             map[string]map[time.Time]bool
	segCuts                           map[string]map[time.Time]bool // segment → when a bridge was cut from it

	regUp      spans // registry up (not down, not limited)
	regAnswers spans // registry not down (up, wiped or limited): its reads are its state
	stretch    spans // a term acts and the registry is up
	wipes      []time.Time
	termStarts []time.Time
	changes    []time.Time // answers, bridge, registry and fault events
	faults     []faultSpan
	writes     []writeAt
	sinks      []string
	reads, ok  map[string][]readAt // per sink: every read, the ok ones
}

// build makes the model of a valid history.
func build(events []Event) *model {
	cfg := *events[0].Config
	m := &model{cfg: cfg, b: newBounds(cfg), start: events[0].At, end: events[len(events)-1].At,
		segOf: map[string]string{}, onSeg: map[string][]string{},
		stops: map[string]map[time.Time]bool{}, segCuts: map[string]map[time.Time]bool{},
		reads: map[string][]readAt{}, ok: map[string][]readAt{}}
	m.forever = m.end.Add(1000 * time.Hour)
	for _, s := range cfg.Segments {
		for _, b := range s.Bridges {
			m.segOf[b] = s.Name
			m.bridges = append(m.bridges, b)
		}
		for _, v := range s.Servers {
			m.segOf[v] = s.Name
			m.servers = append(m.servers, v)
		}
		m.onSeg[s.Name] = s.Bridges
	}
	slices.Sort(m.bridges)
	slices.Sort(m.servers)
	f := flags{}
	f.get("registry").set(m.start, true)
	f.get("registry-answers").set(m.start, true)
	open := map[string]*faultSpan{}
	for _, e := range events[1:] {
		m.event(e, f, open)
	}
	for _, id := range sortedKeys(open) {
		m.faults = append(m.faults, *open[id])
	}
	slices.Sort(m.sinks)
	m.derive(f)
	return m
}

// flags are the conditions of bridges ("up/b1", ...), servers
// ("answering/s1") and the registry.
type flags map[string]*cond

func (f flags) get(key string) *cond {
	if f[key] == nil {
		f[key] = &cond{}
	}
	return f[key]
}

func (m *model) event(e Event, f flags, open map[string]*faultSpan) {
	t := e.At
	switch {
	case e.Answers != nil:
		s := e.Answers.Server
		f.get("answering/"+s).set(t, e.Answers.Answering)
		if !e.Answers.Answering {
			mark(m.stops, s, t)
		}
		m.changes = append(m.changes, t)
	case e.Bridge != nil:
		b, on := e.Bridge.Bridge, !e.Bridge.Back
		switch e.Bridge.State {
		case BridgeUp, BridgeDown:
			up := e.Bridge.State == BridgeUp
			f.get("up/"+b).set(t, up)
			f.get("paused/"+b).set(t, false)
			if !up {
				f.get("term/"+b).set(t, false)
			}
		case BridgePaused:
			f.get("paused/"+b).set(t, on)
		case BridgeCutSegment:
			f.get("cutseg/"+b).set(t, on)
			if on {
				mark(m.segCuts, m.segOf[b], t)
			}
		case BridgeCutRegistry:
			f.get("cutreg/"+b).set(t, on)
		}
		m.changes = append(m.changes, t)
	case e.Registry != nil:
		st := e.Registry.State
		f.get("registry").set(t, st == RegistryUp || st == RegistryWiped)
		f.get("registry-answers").set(t, st != RegistryDown)
		if st == RegistryWiped {
			m.wipes = append(m.wipes, t)
		}
		m.changes = append(m.changes, t)
	case e.Fault != nil:
		if fs := open[e.Fault.ID]; e.Fault.End {
			fs.to = t
			m.faults = append(m.faults, *fs)
			delete(open, e.Fault.ID)
		} else {
			open[e.Fault.ID] = &faultSpan{e.Fault.Kind, t, m.forever}
		}
		m.changes = append(m.changes, t)
	case e.Read != nil:
		s := e.Read.Sink
		if _, seen := m.reads[s]; !seen {
			m.sinks = append(m.sinks, s)
		}
		m.reads[s] = append(m.reads[s], readAt{t, e.Read})
		if e.Read.Err == "" {
			m.ok[s] = append(m.ok[s], readAt{t, e.Read})
		}
	case e.Term != nil:
		tf := f.get("term/" + e.Term.Bridge)
		if !e.Term.End && !tf.on {
			m.termStarts = append(m.termStarts, t)
		}
		tf.set(t, !e.Term.End)
	case e.Write != nil:
		m.writes = append(m.writes, writeAt{t, e.Write})
	}
}

func mark(m map[string]map[time.Time]bool, key string, t time.Time) {
	if m[key] == nil {
		m[key] = map[time.Time]bool{}
	}
	m[key][t] = true
}

// derive computes the model's sets from the recorded conditions.
func (m *model) derive(f flags) {
	m.pub, m.probe, m.live, m.raw, m.eff = map[string]spans{}, map[string]spans{}, map[string]spans{}, map[string]spans{}, map[string]spans{}
	var leading []spans
	for _, b := range m.bridges {
		up, paused := f.get("up/"+b).spans(m.forever), f.get("paused/"+b).spans(m.forever)
		cutSeg, cutReg := f.get("cutseg/"+b).spans(m.forever), f.get("cutreg/"+b).spans(m.forever)
		m.pub[b] = minus(minus(up, paused), cutReg)
		m.probe[b] = minus(minus(up, paused), cutSeg)
		m.live[b] = minus(m.pub[b], cutSeg)
		m.raw[b] = f.get("term/" + b).spans(m.forever)
		m.eff[b] = intersect(m.raw[b], m.pub[b])
		leading = append(leading, m.eff[b])
	}
	m.regUp = f.get("registry").spans(m.forever)
	m.regAnswers = f.get("registry-answers").spans(m.forever)
	m.stretch = intersect(union(leading...), m.regUp)
	m.answering, m.seen, m.support, m.protect = map[string]spans{}, map[string]spans{}, map[string]spans{}, map[string]spans{}
	for _, s := range m.servers {
		ans := f.get("answering/" + s).spans(m.forever)
		var live, support []spans
		for _, b := range m.onSeg[m.segOf[s]] {
			live = append(live, m.live[b])
			support = append(support, m.published(b, ans))
		}
		m.answering[s] = ans
		m.seen[s] = intersect(ans, union(live...))
		m.support[s] = union(support...)
		var protect []span
		for _, x := range m.seen[s] {
			if x.to.Sub(x.from) >= m.b.round {
				protect = append(protect, span{x.from.Add(m.b.round + m.b.slack), x.to.Add(m.b.live)})
			}
		}
		m.protect[s] = norm(protect)
	}
}

// published is when the registry may hold bridge b's observation of a
// server answering in ans: b's view holds the server from a reply until
// missed_rounds+1 rounds after the last one (a pause counts as misses); it
// is published while b can publish, and stands for b.stale after b stops
// publishing (until b publishes again).
func (m *model) published(b string, ans spans) spans {
	view := intersect(ans, m.probe[b]).extend(m.b.hyst)
	out := []span(intersect(m.pub[b], view))
	pub := m.pub[b]
	for i, p := range pub {
		if !p.to.Before(m.forever) || !view.contains(p.to.Add(-1)) {
			continue
		}
		next := m.forever
		if i+1 < len(pub) {
			next = pub[i+1].from
		}
		out = append(out, span{p.to, earlier(p.to.Add(m.b.stale), next)})
	}
	return norm(out)
}

// sigma reports whether a term acts with the registry up at t, and since
// when the leader has been settled: the latest of the start of that
// stretch, a term's start and a wipe.
func (m *model) sigma(t time.Time) (time.Time, bool) {
	i := m.stretch.find(t)
	if i < 0 {
		return time.Time{}, false
	}
	s := m.stretch[i].from
	for _, l := range [][]time.Time{m.termStarts, m.wipes} {
		if x, ok := lastAt(l, t); ok {
			s = later(s, x)
		}
	}
	return s, true
}

// lastAt is the last of sorted times at or before t.
func lastAt(l []time.Time, t time.Time) (time.Time, bool) {
	i := sort.Search(len(l), func(i int) bool { return l[i].After(t) })
	if i == 0 {
		return time.Time{}, false
	}
	return l[i-1], true
}

// liveBridge names a live bridge of segment seg at t, "" if none.
func (m *model) liveBridge(seg string, t time.Time) string {
	for _, b := range m.onSeg[seg] {
		if m.live[b].contains(t) {
			return b
		}
	}
	return ""
}

// readsIn returns the indexes [i, j) of sink's ok reads in [from, to).
func (m *model) readsIn(sink string, from, to time.Time) (int, int) {
	l := m.ok[sink]
	i := sort.Search(len(l), func(i int) bool { return !l[i].at.Before(from) })
	j := sort.Search(len(l), func(i int) bool { return !l[i].at.Before(to) })
	return i, max(i, j)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
