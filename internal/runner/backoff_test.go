package runner

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	r := &runner{cfg: Config{Backoff: BackoffConfig{Min: time.Second, Max: 30 * time.Second}}}
	tests := []struct {
		failures int
		want     time.Duration // upper bound; lower bound is half
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {5, 16 * time.Second},
		{6, 30 * time.Second}, {100, 30 * time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if got := r.backoff(tt.failures); got < tt.want/2 || got > tt.want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tt.failures, got, tt.want/2, tt.want)
			}
		}
	}
}
