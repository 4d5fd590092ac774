package runner_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestChangesSummarizedPerRound: a round that adds 1,000 servers logs one
// info line with the counts and the first five addresses, not a line per
// server; each server is at debug with its fields. The round that removes
// them likewise.
func TestChangesSummarizedPerRound(t *testing.T) {
	const n = 1000
	servers := make([]string, 0, n)
	ip := netip.MustParseAddr("10.1.0.1")
	for range n {
		servers = append(servers, netip.AddrPortFrom(ip, 8000).String())
		ip = ip.Next()
	}
	for _, level := range []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel} {
		t.Run(level.String(), func(t *testing.T) {
			h := newHarness(t, roundScript{servers: servers}, roundScript{})
			s := newSink("file")
			cfg := h.config(s)
			cfg.MissedRounds = 1
			cfg.Log = zerolog.New(h.logs).Level(level)
			h.start(cfg)
			for round := uint64(1); round <= 2; round++ {
				if round > 1 {
					h.clock.Advance(10 * time.Second)
				}
				h.d.nextRound(t)
				s.nextApply(t)
				h.idle()
			}
			h.stop()

			first := fmt.Sprint(servers[:5])
			changed := h.logs.lines(t, "info", "endpoints changed")
			if len(changed) != 2 ||
				changed[0]["round"] != float64(1) || changed[0]["added"] != float64(n) || changed[0]["removed"] != float64(0) ||
				changed[0]["held"] != float64(n) || fmt.Sprint(changed[0]["added_first"]) != first ||
				changed[1]["round"] != float64(2) || changed[1]["added"] != float64(0) || changed[1]["removed"] != float64(n) ||
				changed[1]["held"] != float64(0) || fmt.Sprint(changed[1]["removed_first"]) != first {
				t.Errorf("endpoints changed lines = %v, want round 1 adding %d and round 2 removing them, first %s", changed, n, first)
			}
			added, removed := h.logs.lines(t, "debug", "endpoint added"), h.logs.lines(t, "debug", "endpoint removed")
			want := 0
			if level == zerolog.DebugLevel {
				want = n
			}
			if len(added) != want || len(removed) != want {
				t.Fatalf("at %s: %d endpoint added and %d endpoint removed lines, want %d each", level, len(added), len(removed), want)
			}
			if want > 0 {
				var ips []string
				for _, l := range added {
					ips = append(ips, fmt.Sprintf("%v:%v", l["ip"], l["port"]))
				}
				if !slices.Equal(ips, servers) || added[0]["source"] != "10.1.0.1:9999" || added[0]["interface"] != "eth0" {
					t.Errorf("endpoint added lines: %v ... (%d), want one per server with its fields", added[0], len(added))
				}
			}
			for _, lvl := range []string{"info", "warn"} {
				if l := h.logs.lines(t, lvl, "endpoint added"); len(l) > 0 {
					t.Errorf("endpoint added at %s: %d lines", lvl, len(l))
				}
			}
		})
	}
}

// TestStartLineSaysEncryption: the start-up line reports whether the
// probes are encrypted.
func TestStartLineSaysEncryption(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, roundScript{})
		cfg := h.config()
		cfg.Encryption = on
		h.start(cfg)
		h.d.nextRound(t)
		h.idle()
		h.stop()
		start := h.logs.lines(t, "info", "loop started")
		if len(start) != 1 || start[0]["encryption"] != on {
			t.Errorf("loop started lines = %v, want one with encryption=%v", start, on)
		}
	}
}
