package duration

import (
	"math"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "5", want: 5 * time.Second},
		{in: "0.5", want: 500 * time.Millisecond},
		{in: "0", want: 0},
		{in: "-1", want: -time.Second},
		{in: "1e-3", want: time.Millisecond},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "-2s", want: -2 * time.Second},
		{in: "", wantErr: "empty duration"},
		{in: "5 s", wantErr: "want seconds (5, 0.5) or a duration (500ms, 1m)"},
		{in: "ten", wantErr: "want seconds (5, 0.5) or a duration (500ms, 1m)"},
		{in: "1e300", wantErr: "duration out of range"},
		{in: "-1e300", wantErr: "duration out of range"},
		{in: "NaN", wantErr: "want seconds (5, 0.5) or a duration (500ms, 1m)"},
		{in: "Inf", wantErr: "duration out of range"},
		{in: "9999999999999h", wantErr: "want seconds (5, 0.5) or a duration (500ms, 1m)"},
	} {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Parse(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"5", "0.5", "500ms", "1m30s", "", "NaN", "1e300", "-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if d == math.MinInt64 {
			t.Fatalf("Parse(%q) = minimum duration: overflowed", s)
		}
	})
}
