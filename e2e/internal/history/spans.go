package history

import (
	"slices"
	"sort"
	"time"
)

// span is the half-open interval [from, to).
type span struct{ from, to time.Time }

// spans is a set of instants: sorted, disjoint spans, none empty, none
// touching the next.
type spans []span

// norm makes a set of any spans.
func norm(in []span) spans {
	in = slices.DeleteFunc(slices.Clone(in), func(s span) bool { return !s.from.Before(s.to) })
	slices.SortFunc(in, func(a, b span) int { return a.from.Compare(b.from) })
	var out spans
	for _, s := range in {
		if n := len(out); n > 0 && !s.from.After(out[n-1].to) {
			if s.to.After(out[n-1].to) {
				out[n-1].to = s.to
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// find returns the index of the span holding t, or -1.
func (s spans) find(t time.Time) int {
	i := sort.Search(len(s), func(i int) bool { return s[i].to.After(t) })
	if i < len(s) && !s[i].from.After(t) {
		return i
	}
	return -1
}

func (s spans) contains(t time.Time) bool { return s.find(t) >= 0 }

// lastEnd is the end of the last span over by t, if any.
func (s spans) lastEnd(t time.Time) (time.Time, bool) {
	i := sort.Search(len(s), func(i int) bool { return s[i].to.After(t) })
	if i == 0 {
		return time.Time{}, false
	}
	return s[i-1].to, true
}

// overlaps reports whether s holds an instant of [from, to].
func (s spans) overlaps(from, to time.Time) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].to.After(from) })
	return i < len(s) && !s[i].from.After(to)
}

// extend lengthens every span's end by d.
func (s spans) extend(d time.Duration) spans {
	out := make([]span, len(s))
	for i, x := range s {
		out[i] = span{x.from, x.to.Add(d)}
	}
	return norm(out)
}

func union(sets ...spans) spans {
	var all []span
	for _, s := range sets {
		all = append(all, s...)
	}
	return norm(all)
}

func intersect(a, b spans) spans {
	var out spans
	for i, j := 0, 0; i < len(a) && j < len(b); {
		from, to := later(a[i].from, b[j].from), earlier(a[i].to, b[j].to)
		if from.Before(to) {
			out = append(out, span{from, to})
		}
		if a[i].to.Before(b[j].to) {
			i++
		} else {
			j++
		}
	}
	return out
}

// minus is a without the instants of b.
func minus(a, b spans) spans {
	var out spans
	j := 0
	for _, x := range a {
		from := x.from
		for j < len(b) && !b[j].to.After(from) {
			j++
		}
		k := j
		for ; k < len(b) && b[k].from.Before(x.to); k++ {
			if b[k].from.After(from) {
				out = append(out, span{from, b[k].from})
			}
			from = later(from, b[k].to)
		}
		if from.Before(x.to) {
			out = append(out, span{from, x.to})
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// cond records the spans a condition holds, from its changes in time
// order.
type cond struct {
	on    bool
	since time.Time
	out   []span
}

func (f *cond) set(t time.Time, on bool) {
	if on == f.on {
		return
	}
	if on {
		f.since = t
	} else {
		f.out = append(f.out, span{f.since, t})
	}
	f.on = on
}

// spans returns the condition's set, an open span closed at end.
func (f *cond) spans(end time.Time) spans {
	out := f.out
	if f.on {
		out = append(slices.Clone(out), span{f.since, end})
	}
	return norm(out)
}
