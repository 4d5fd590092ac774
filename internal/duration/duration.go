// Package duration parses durations as the upstream django-udp-discovery
// client takes them: seconds as a plain number ("5", "0.5") or a Go
// duration ("500ms", "1m30s"). The CLI's configuration and the library's
// environment loader share it, so both accept and refuse the same values.
package duration

import (
	"errors"
	"math"
	"strconv"
	"time"
)

const want = "want seconds (5, 0.5) or a duration (500ms, 1m)"

// Parse parses s. Negative values are returned as parsed; callers decide
// what they accept.
func Parse(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) {
			return 0, errors.New(want)
		}
		if f > float64(1<<62)/float64(time.Second) || f < -float64(1<<62)/float64(time.Second) {
			return 0, errors.New("duration out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(want)
	}
	return d, nil
}
