package history

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// silence is a server going silent cleanly at at, after being seen since
// from, until it is seen again at back (forever: never).
type silence struct {
	server         string
	from, at, back time.Time
}

// silences are the clean silences of established servers, by time. A
// silence is clean when the server's seen stretch ended because it stopped
// answering or its last live bridge was cut from the segment, and the
// fleet lost it within missed_rounds+1 rounds: so the leader saw it go
// within a round of when the bridges' hysteresis says. A server is
// established when it was seen for long enough that the leader surely
// counts it: since the later of its seen stretch's start and the first
// term after the last wipe, for missed_rounds+2 rounds + slack + grace.
func (m *model) silences() []silence {
	var out []silence
	for _, s := range m.servers {
		seen := m.seen[s]
		for k, x := range seen {
			q := x.to
			if !q.Before(m.forever) || (!m.stops[s][q] && !m.segCuts[m.segOf[s]][q]) {
				continue
			}
			i := m.support[s].find(q.Add(-1))
			if i < 0 || m.support[s][i].to.After(q.Add(m.b.hyst)) {
				continue
			}
			from, ok := m.firstTerm(q)
			if !ok || q.Sub(later(x.from, from)) < m.b.established {
				continue
			}
			back := m.forever
			if k+1 < len(seen) {
				back = seen[k+1].from
			}
			out = append(out, silence{s, x.from, q, back})
		}
	}
	slices.SortFunc(out, func(a, b silence) int { return cmp.Or(a.at.Compare(b.at), strings.Compare(a.server, b.server)) })
	return out
}

// firstTerm is the first term start after the last wipe (or the start of
// the history) at or before t.
func (m *model) firstTerm(t time.Time) (time.Time, bool) {
	w, ok := lastAt(m.wipes, t)
	if !ok {
		w = m.start
	}
	for _, s := range m.termStarts {
		if !s.Before(w) && !s.After(t) {
			return s, true
		}
	}
	return time.Time{}, false
}

func massSilenceHeld(m *model, r *report) {
	b := m.b
	if !b.guardOn {
		return
	}
	sil := m.silences()
	// skipped counts the episodes not checked: the groups starting at
	// each silence of an episode end at the same one (lastSkipped).
	skipped, lastSkipped := 0, -1
	for i, first := range sil {
		j := i
		for j < len(sil) && !sil[j].at.After(first.at.Add(b.group)) {
			j++
		}
		cand := sil[i:j]
		tmax := cand[len(cand)-1].at.Add(b.hyst + b.slack)
		var g []silence // still silent when the fraction is crossed at the latest
		for _, c := range cand {
			if !c.back.Before(tmax) {
				g = append(g, c)
			}
		}
		if len(g) < 2 {
			continue
		}
		// The first of them goes unobserved missed_rounds-1 rounds after
		// its silence at the earliest, and every one is held for the
		// guard's rounds from then at least.
		end := first.at.Add(time.Duration(m.cfg.MissedRounds-1+m.cfg.RemovalGuardRounds) * b.round)
		lo := first.at.Add(-b.window)
		if !m.oneLeader(lo, end) {
			if j != lastSkipped {
				skipped++
			}
			lastSkipped = j
			continue
		}
		known := len(g) + m.others(g, lo.Add(-b.slack), tmax)
		need := max(2, int(math.Floor(m.cfg.MaxRemovalFraction*float64(known)))+1)
		if len(g) < need {
			continue
		}
		start := g[need-1].at.Add(b.hyst + b.slack)
		names := make([]string, len(g))
		for k, s := range g {
			names[k] = s.server
		}
		when := "at " + r.rel(first.at)
		if last := g[len(g)-1].at; last.After(first.at) {
			when = "from " + r.rel(first.at) + " to " + r.rel(last)
		}
		if len(names) > 4 {
			names = append(names[:4], "...")
		}
		episode := fmt.Sprintf("%d of %d servers went silent %s (%s); held until %s at least",
			len(g), known, when, strings.Join(names, " "), r.rel(end))
		for _, s := range g {
			for _, sink := range m.sinks {
				from, to := m.readsIn(sink, start, earlier(end, s.back))
				for k := from; k < to; k++ {
					rd := m.ok[sink][k]
					h, listed := rd.r.Servers[s.server]
					switch {
					case !listed:
						r.readFail(MassSilenceHeld, sink, k, rd.at, s.server, "", "absent: "+episode)
					case h != Passing && b.heldReady:
						r.readFail(MassSilenceHeld, sink, k, rd.at, s.server, "", "critical: "+episode)
					}
				}
			}
		}
	}
	if skipped > 0 {
		r.note("%s: %d candidate silence episodes not checked: the leader or the registry changed during them", MassSilenceHeld, skipped)
	}
}

// oneLeader reports whether one stretch of a term acting with the registry
// up covers [from, to], with no term start and no wipe in it.
func (m *model) oneLeader(from, to time.Time) bool {
	k := m.stretch.find(from)
	if k < 0 || m.stretch[k].to.Before(to) {
		return false
	}
	for _, l := range [][]time.Time{m.termStarts, m.wipes} {
		if t, ok := lastAt(l, to); ok && t.After(from) {
			return false
		}
	}
	return true
}

// others counts the servers outside g the leader could count as known in
// [from, to]: supported then, or listed by a read then (unknown servers
// too).
func (m *model) others(g []silence, from, to time.Time) int {
	in := map[string]bool{}
	for _, s := range g {
		in[s.server] = true
	}
	counted := map[string]bool{}
	for _, s := range m.servers {
		if !in[s] && m.support[s].overlaps(from, to) {
			counted[s] = true
		}
	}
	for _, sink := range m.sinks {
		i, j := m.readsIn(sink, from, to.Add(1))
		for _, rd := range m.ok[sink][i:j] {
			for s := range rd.r.Servers {
				if !in[s] {
					counted[s] = true
				}
			}
		}
	}
	return len(counted)
}
