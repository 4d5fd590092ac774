package history

import (
	"fmt"
	"testing"
)

// sp is a set from pairs of seconds: sp(1, 2, 5, 6) is [1,2) ∪ [5,6).
func sp(secs ...float64) spans {
	var out []span
	for i := 0; i+1 < len(secs); i += 2 {
		out = append(out, span{at(secs[i]), at(secs[i+1])})
	}
	return norm(out)
}

func (s spans) String() string {
	out := ""
	for _, x := range s {
		out += fmt.Sprintf("[%s,%s)", rel(t0, x.from), rel(t0, x.to))
	}
	return out
}

func TestSpans(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want spans
	}{
		{"norm merges touching and overlapping", sp(5, 6, 1, 2, 2, 3, 2.5, 4, 7, 7), sp(1, 4, 5, 6)},
		{"union", union(sp(1, 2, 5, 6), sp(1.5, 3), nil), sp(1, 3, 5, 6)},
		{"intersect", intersect(sp(1, 4, 5, 9), sp(0, 2, 3, 6, 8, 10)), sp(1, 2, 3, 4, 5, 6, 8, 9)},
		{"intersect nothing", intersect(sp(1, 2), sp(2, 3)), nil},
		{"minus", minus(sp(0, 10, 12, 14), sp(1, 2, 3, 4, 9, 13)), sp(0, 1, 2, 3, 4, 9, 13, 14)},
		{"minus all", minus(sp(1, 2), sp(0, 3)), nil},
		{"minus nothing", minus(sp(1, 2), sp(2, 3)), sp(1, 2)},
		{"extend merges", sp(1, 2, 3, 4).extend(sec(1)), sp(1, 5)},
	} {
		if tc.got.String() != tc.want.String() {
			t.Errorf("%s: %s; want %s", tc.name, tc.got, tc.want)
		}
	}
	s := sp(1, 2, 5, 6)
	for _, tc := range []struct {
		sec      float64
		contains bool
		lastEnd  string
	}{{0.5, false, "none"}, {1, true, "none"}, {2, false, "+2s"}, {5.5, true, "+2s"}, {6, false, "+6s"}} {
		end, ok := s.lastEnd(at(tc.sec))
		got := "none"
		if ok {
			got = rel(t0, end)
		}
		if s.contains(at(tc.sec)) != tc.contains || got != tc.lastEnd {
			t.Errorf("at %gs: contains %v, last end %s; want %v, %s", tc.sec, s.contains(at(tc.sec)), got, tc.contains, tc.lastEnd)
		}
	}
	if !s.overlaps(at(2), at(5)) || s.overlaps(at(2), at(4.9)) {
		t.Errorf("overlaps: [2,5] should meet %s, [2,4.9] not", s)
	}
}
