package history

import (
	"fmt"
	"strconv"
)

func singleWriter(m *model, r *report) {
	slack := m.b.slack
	for i, a := range m.bridges {
		for _, b := range m.bridges[i+1:] {
			for _, o := range intersect(m.eff[a], m.eff[b]) {
				if d := o.to.Sub(o.from); d > slack {
					how := "for " + d.String()
					if !o.to.Before(m.forever) {
						how = "until the end"
					}
					r.fail(Violation{Invariant: SingleWriter, At: o.from, Bridge: a + "," + b,
						Why: fmt.Sprintf("both led from %s %s (more than the slack, %s)", r.rel(o.from), how, slack)})
				}
			}
		}
	}
	for _, w := range m.writes {
		b, t := w.w.Bridge, w.at
		if !m.raw[b].overlaps(t.Add(-slack), t.Add(slack)) {
			r.fail(Violation{Invariant: SingleWriter, At: t, Bridge: b,
				Why: fmt.Sprintf("wrote %d operations outside its terms", w.w.Ops)})
		}
		for _, o := range m.bridges {
			k := m.eff[o].find(t)
			if o == b || k < 0 {
				continue
			}
			if x := m.eff[o][k]; !t.Before(x.from.Add(slack)) && t.Before(x.to.Add(-slack)) {
				r.fail(Violation{Invariant: SingleWriter, At: t, Bridge: b + "," + o,
					Why: fmt.Sprintf("%s wrote %d operations while %s led (since %s)", b, w.w.Ops, o, r.rel(x.from))})
			}
		}
	}
}

func foreignUntouched(m *model, r *report, sink string) {
	base := map[string]uint64{}
	wi := 0
	for i, rd := range m.ok[sink] {
		for ; wi < len(m.wipes) && !m.wipes[wi].After(rd.at); wi++ {
			base = map[string]uint64{} // wiped: the runner may write them again
		}
		if rd.r.Foreign == nil {
			continue
		}
		for _, name := range sortedKeys(base) {
			was := base[name]
			switch got, ok := rd.r.Foreign[name]; {
			case !ok:
				r.readFail(ForeignUntouched, sink, i, rd.at, name, "", "foreign entry gone (its modify index was "+strconv.FormatUint(was, 10)+")")
				delete(base, name)
			case got != was:
				r.readFail(ForeignUntouched, sink, i, rd.at, name, "", fmt.Sprintf("foreign entry's modify index went from %d to %d", was, got))
				base[name] = got
			}
		}
		for name, idx := range rd.r.Foreign {
			if _, ok := base[name]; !ok {
				base[name] = idx
			}
		}
	}
}

func quietNoWrites(m *model, r *report) {
	var windows []span // where a write breaks the invariant
	for _, sink := range m.sinks {
		reads := m.ok[sink]
		run := -1 // the first read of the current quiet run
		for i, rd := range reads {
			last, changed := lastAt(m.changes, rd.at)
			quiet := (!changed || rd.at.Sub(last) >= m.b.quiet) && settled(m, rd)
			if quiet && run >= 0 && !last.After(reads[i-1].at) {
				if was, now := reads[i-1].r.Index, rd.r.Index; was != 0 && now != 0 && was != now {
					since := m.start
					if changed {
						since = last
					}
					r.readFail(QuietNoWrites, sink, i, rd.at, "", "",
						fmt.Sprintf("the index went from %d to %d, though nothing happened since %s and nothing was due", was, now, r.rel(since)))
				}
				continue
			}
			if run >= 0 {
				windows = append(windows, span{reads[run].at.Add(m.b.slack), reads[i-1].at})
			}
			run = -1
			if quiet {
				run = i
			}
		}
		if run >= 0 {
			windows = append(windows, span{reads[run].at.Add(m.b.slack), reads[len(reads)-1].at})
		}
	}
	quiet := norm(windows)
	for _, w := range m.writes {
		if w.w.Ops > 0 && quiet.contains(w.at) {
			r.fail(Violation{Invariant: QuietNoWrites, At: w.at, Bridge: w.w.Bridge,
				Why: fmt.Sprintf("wrote %d operations while nothing happened and nothing was due", w.w.Ops)})
		}
	}
}

// settled reports whether read rd lists exactly the seen servers, all
// passing: nothing is due.
func settled(m *model, rd readAt) bool {
	for s, h := range rd.r.Servers {
		if h != Passing || !m.seen[s].contains(rd.at) {
			return false
		}
	}
	for _, s := range m.servers {
		if _, ok := rd.r.Servers[s]; !ok && m.seen[s].contains(rd.at) {
			return false
		}
	}
	return true
}
