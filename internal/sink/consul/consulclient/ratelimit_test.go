package consulclient

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulRefusal is Consul's 429 message (agent/consul/rate.ErrRetryElsewhere).
const consulRefusal = "rate limit exceeded, try again later or against a different server"

func refused(retryAfter time.Duration) error {
	return &RateLimitError{Status: 429, RetryAfter: retryAfter, Err: errors.New("Failed request: " + consulRefusal)}
}

func TestParseRetryAfter(t *testing.T) {
	date := "Wed, 21 Oct 2015 07:28:00 GMT"
	for _, tc := range []struct {
		v, date string
		want    time.Duration
	}{
		{"", date, 0},
		{"3", "", 3 * time.Second},
		{" 0 ", "", 0},
		{"120", "", maxRetryAfter},
		{"-1", "", 0},
		{"soon", "", 0},
		{"Wed, 21 Oct 2015 07:28:05 GMT", date, 5 * time.Second},
		{"Wed, 21 Oct 2015 07:27:00 GMT", date, 0}, // in the past
		{"Wed, 21 Oct 2015 07:28:05 GMT", "", 0},   // no Date to measure from
		{"Wed, 21 Oct 2015 09:00:00 GMT", date, maxRetryAfter},
	} {
		if got := parseRetryAfter(tc.v, tc.date); got != tc.want {
			t.Errorf("parseRetryAfter(%q, %q) = %s, want %s", tc.v, tc.date, got, tc.want)
		}
	}
}

func TestRateLimited(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
		ra   time.Duration
	}{
		{"nil", nil, false, 0},
		{"typed", refused(2 * time.Second), true, 2 * time.Second},
		{"wrapped", fmt.Errorf("consul txn: %w", refused(0)), true, 0},
		{"agent status", api.StatusError{Code: 429, Body: consulRefusal}, true, 0},
		{"leader only", errors.New("Unexpected response code: 503 (rate limit exceeded for operation that can only be performed by the leader, try again later)"), true, 0},
		{"no leader", api.StatusError{Code: 503, Body: "No cluster leader"}, false, 0},
		{"permission", api.StatusError{Code: 403, Body: "Permission denied"}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra, ok := RateLimited(tc.err)
			if ok != tc.ok || ra != tc.ra {
				t.Errorf("RateLimited(%v) = %s, %v; want %s, %v", tc.err, ra, ok, tc.ra, tc.ok)
			}
		})
	}
}
