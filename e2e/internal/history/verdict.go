package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Verdict is what Check found in a history.
type Verdict struct {
	// Start is the history's first event, which the text form counts
	// times from.
	Start      time.Time   `json:"start"`
	Violations []Violation `json:"violations,omitempty"`
	Summary    Summary     `json:"summary"`
	// Notes say what could not be checked, and why.
	Notes []string `json:"notes,omitempty"`
}

// OK reports whether the history broke no invariant.
func (v Verdict) OK() bool { return len(v.Violations) == 0 }

// Violation is one breach of an invariant. A breach that consecutive reads
// of a sink show is one violation: At is the first read, Until the last,
// Reads how many.
type Violation struct {
	Invariant string    `json:"invariant"`
	At        time.Time `json:"at"`
	Sink      string    `json:"sink,omitempty"`
	// Server is the server (or foreign entry) concerned, Bridge the
	// bridge(s), comma-separated.
	Server string    `json:"server,omitempty"`
	Bridge string    `json:"bridge,omitempty"`
	Why    string    `json:"why"`
	Reads  int       `json:"reads,omitempty"`
	Until  time.Time `json:"until,omitzero"`
}

// Summary counts a history's faults, reads and violations, and measures
// its disruption.
type Summary struct {
	Length     time.Duration  `json:"length"`
	Reads      int            `json:"reads"`
	ReadErrors int            `json:"read_errors"`
	Faults     map[string]int `json:"faults,omitempty"`     // starts by kind
	Violations map[string]int `json:"violations,omitempty"` // by invariant
	Disruption []Disruption   `json:"disruption,omitempty"` // by fault kind
	// Terms counts the leader terms that started, Writes the leader
	// writes of at least one operation and WriteOps their operations:
	// a run whose bridges' logs were not read shows 0 terms.
	Terms    int `json:"terms"`
	Writes   int `json:"writes"`
	WriteOps int `json:"write_ops"`
}

// Disruption is how long live servers (answering a live bridge of their
// segment for a round and the slack) were missing from a sink or not
// passing in it, during faults of kind Kind or within the convergence
// bound after them ("" for gaps no fault explains). A gap runs from the
// first read that shows it to the first that does not.
type Disruption struct {
	Kind        string        `json:"kind"`
	Total       time.Duration `json:"total"`
	Gaps        int           `json:"gaps"`
	Worst       time.Duration `json:"worst"`
	WorstServer string        `json:"worst_server"`
	WorstAt     time.Time     `json:"worst_at"`
}

// String is the verdict as text, times counted from Start: the golden
// form of fixtures.
func (v Verdict) String() string {
	var b strings.Builder
	rel := func(t time.Time) string { return rel(v.Start, t) }
	if v.OK() {
		b.WriteString("verdict: ok\n")
	} else {
		fmt.Fprintf(&b, "verdict: FAIL, %d violation%s\n", len(v.Violations), plural(len(v.Violations)))
	}
	for _, x := range v.Violations {
		fmt.Fprintf(&b, "violation %s %s", x.Invariant, rel(x.At))
		if x.Reads > 1 {
			fmt.Fprintf(&b, "..%s (%d reads)", rel(x.Until), x.Reads)
		}
		for _, kv := range [][2]string{{"sink", x.Sink}, {"server", x.Server}, {"bridge", x.Bridge}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
			}
		}
		fmt.Fprintf(&b, ": %s\n", x.Why)
	}
	s := v.Summary
	fmt.Fprintf(&b, "history: %s, %d reads, %d failed\n", ms(s.Length), s.Reads, s.ReadErrors)
	fmt.Fprintf(&b, "faults:%s\n", counts(s.Faults))
	fmt.Fprintf(&b, "leaders: %d term%s, %d write%s of %d operation%s\n", s.Terms, plural(s.Terms), s.Writes, plural(s.Writes), s.WriteOps, plural(s.WriteOps))
	fmt.Fprintf(&b, "violations:%s\n", counts(s.Violations))
	for _, d := range s.Disruption {
		kind := cmp.Or(d.Kind, "(no fault)")
		fmt.Fprintf(&b, "disruption %s: %s in %d gaps, worst %s (%s at %s)\n", kind, ms(d.Total), d.Gaps, ms(d.Worst), d.WorstServer, rel(d.WorstAt))
	}
	for _, n := range v.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return " none"
	}
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, " %s=%d", k, m[k])
	}
	return b.String()
}

// rel spells t as an offset from start, "+12.5s".
func rel(start, t time.Time) string { return "+" + ms(t.Sub(start)) }

// ms spells d to the millisecond.
func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// hit is one read showing a breach; merge folds consecutive ones into a
// violation.
type hit struct {
	inv, sink, server, bridge, why string
	idx                            int // among the sink's ok reads
	at                             time.Time
}

// report collects the violations of one Check.
type report struct {
	start time.Time
	hits  []hit
	out   []Violation
	notes []string
}

// readFail records that read idx of sink, at at, breaks inv for server.
func (r *report) readFail(inv, sink string, idx int, at time.Time, server, bridge, why string) {
	r.hits = append(r.hits, hit{inv, sink, server, bridge, why, idx, at})
}

func (r *report) fail(v Violation) { r.out = append(r.out, v) }

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// rel spells t from the history's start.
func (r *report) rel(t time.Time) string { return rel(r.start, t) }

// violations folds the hits (once per invariant, sink, server and read;
// the first explanation kept) and sorts everything by time.
func (r *report) violations() []Violation {
	key := func(h hit) string { return h.inv + "\x00" + h.sink + "\x00" + h.server }
	hs := slices.Clone(r.hits)
	slices.SortStableFunc(hs, func(a, b hit) int {
		return cmp.Or(strings.Compare(key(a), key(b)), cmp.Compare(a.idx, b.idx))
	})
	out := slices.Clone(r.out)
	for i := 0; i < len(hs); {
		h, j := hs[i], i+1
		last := h
		for ; j < len(hs) && key(hs[j]) == key(h) && hs[j].idx <= last.idx+1; j++ {
			last = hs[j] // the next read, or the same one again
		}
		n := last.idx - h.idx + 1
		out = append(out, Violation{Invariant: h.inv, At: h.at, Sink: h.sink, Server: h.server, Bridge: h.bridge, Why: h.why, Reads: n, Until: last.at})
		i = j
	}
	slices.SortStableFunc(out, func(a, b Violation) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.Invariant, b.Invariant), strings.Compare(a.Sink, b.Sink),
			strings.Compare(a.Server, b.Server), strings.Compare(a.Bridge, b.Bridge))
	})
	return out
}
