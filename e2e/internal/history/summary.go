package history

import (
	"slices"
	"strings"
	"time"
)

// summarize counts the history's faults, reads and violations and
// measures its disruption.
func summarize(m *model, vs []Violation) Summary {
	s := Summary{Length: m.end.Sub(m.start), Faults: map[string]int{}, Violations: map[string]int{}}
	for _, f := range m.faults {
		s.Faults[f.kind]++
	}
	for _, v := range vs {
		s.Violations[v.Invariant]++
	}
	for _, sink := range m.sinks {
		s.Reads += len(m.reads[sink])
		s.ReadErrors += len(m.reads[sink]) - len(m.ok[sink])
	}
	s.Disruption = disruption(m)
	s.Terms = len(m.termStarts)
	for _, w := range m.writes {
		if w.w.Ops > 0 {
			s.Writes++
			s.WriteOps += w.w.Ops
		}
	}
	return s
}

type gap struct {
	server   string
	from, to time.Time
}

// live reports whether server s should be passing at t: it has answered a
// live bridge of its segment for a round and the slack.
func (m *model) shouldPass(s string, t time.Time) bool {
	k := m.seen[s].find(t)
	return k >= 0 && !t.Before(m.seen[s][k].from.Add(m.b.round+m.b.slack))
}

// disruption finds the gaps (live servers missing or not passing in
// consecutive ok reads of a sink) and sums them by the kinds of the faults
// open during them or within the convergence bound before.
func disruption(m *model) []Disruption {
	var gaps []gap
	for _, sink := range m.sinks {
		reads := m.ok[sink]
		open := map[string]time.Time{}
		for _, rd := range reads {
			for _, s := range m.servers {
				bad := m.shouldPass(s, rd.at) && rd.r.Servers[s] != Passing
				from, isOpen := open[s]
				switch {
				case bad && !isOpen:
					open[s] = rd.at
				case !bad && isOpen:
					gaps = append(gaps, gap{s, from, rd.at})
					delete(open, s)
				}
			}
		}
		for _, s := range sortedKeys(open) {
			gaps = append(gaps, gap{s, open[s], reads[len(reads)-1].at})
		}
	}
	by := map[string]*Disruption{}
	for _, g := range gaps {
		d := g.to.Sub(g.from)
		if d <= 0 {
			continue
		}
		kinds := map[string]bool{}
		for _, f := range m.faults {
			if !f.from.After(g.to) && !f.to.Add(m.b.conv).Before(g.from) {
				kinds[f.kind] = true
			}
		}
		if len(kinds) == 0 {
			kinds[""] = true
		}
		for k := range kinds {
			x := by[k]
			if x == nil {
				x = &Disruption{Kind: k}
				by[k] = x
			}
			x.Total += d
			x.Gaps++
			if d > x.Worst || (d == x.Worst && g.from.Before(x.WorstAt)) {
				x.Worst, x.WorstServer, x.WorstAt = d, g.server, g.from
			}
		}
	}
	out := make([]Disruption, 0, len(by))
	for _, x := range by {
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b Disruption) int { return strings.Compare(a.Kind, b.Kind) })
	return out
}
