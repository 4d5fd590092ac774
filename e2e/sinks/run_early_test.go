package sinks_test

// End-to-end test of adds as they arrive: the real bridge with the stdout
// sink and a `bridge respond` server on a namespace LAN; nothing in the
// root namespace.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// earlyRound is the round of a log line.
func earlyRound(l map[string]any) int {
	r, _ := l["round"].(float64)
	return int(r)
}

// TestRunEarlyAdd: with `--timeout 5`, a server that starts answering while
// the bridge runs gets its stdout `added` line as its first reply arrives,
// well before the end of the round the reply came in. The proof is in the
// bridge's own fields, not in a wall-time threshold: the reply's arrival
// (the line's first_seen) lies inside round N (its "round complete" time
// minus its duration), and the stdout sink's apply of round N that added
// the server (debug "sink applied", which logs after the line was written
// and flushed) and the early "endpoints changed" line are both earlier than
// round N's end. The round's end reports no second add.
func TestRunEarlyAdd(t *testing.T) {
	t.Parallel()
	l := harness.NewRunLAN(t, 1, false)
	b := harness.StartRun(t, l.Client, "early", "--sink", "stdout", "--interval", "6", "--timeout", "5", "--missed-rounds", "2",
		"--metrics-addr", "", "--log-level", "debug", "--log-format", "json")
	harness.Wait(t, 15*time.Second, "round 1 to complete", func() (bool, string) {
		return len(guardLogLines(t, b, harness.MsgRound)) >= 1, harness.Tail(func() string { _, e := b.Output(); return e }(), 5)
	})
	// Round 2 starts 1 s after round 1's end (interval 6, timeout 5): the
	// server starts about 1 s into it and answers the round's next retry
	// (retries 3: probes at 0, 1.25, 2.5 and 3.75 s), mid-round. Where it
	// lands does not matter to the assertions below, which place it by the
	// bridge's own fields.
	time.Sleep(2 * time.Second)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	started := time.Now()

	var line harness.StdoutEvent
	var seenAt time.Time
	var completedWhenSeen []int
	harness.Wait(t, 20*time.Second, "the added line", func() (bool, string) {
		stdout, stderr := b.Output() // stdout first: what stderr holds was written later
		if !strings.Contains(stdout, `"event":"added"`) {
			return false, harness.Tail(stderr, 5)
		}
		seenAt = time.Now()
		line = harness.StdoutEvents(t, stdout)[0]
		for _, r := range guardLogLines(t, b, harness.MsgRound) {
			completedWhenSeen = append(completedWhenSeen, earlyRound(r))
		}
		return true, ""
	})
	if line.IP != "10.213.1.11" || line.Port != 8000 {
		t.Fatalf("added line %+v, want 10.213.1.11:8000", line)
	}

	// The early hand-over names the round in progress.
	var early map[string]any
	for _, c := range guardLogLines(t, b, harness.MsgChanged) {
		if c["early"] == true && strings.Contains(fmt.Sprint(c["added_first"]), "10.213.1.11:8000") {
			early = c
			break
		}
	}
	if early == nil {
		t.Fatalf("no early endpoints changed line for 10.213.1.11:8000: %v", guardLogLines(t, b, harness.MsgChanged))
	}
	n := earlyRound(early)
	if slices.Contains(completedWhenSeen, n) {
		t.Errorf("round %d had completed when the added line was read (completed: %v)", n, completedWhenSeen)
	}
	var end map[string]any
	harness.Wait(t, 15*time.Second, fmt.Sprintf("round %d to complete", n), func() (bool, string) {
		for _, r := range guardLogLines(t, b, harness.MsgRound) {
			if earlyRound(r) == n {
				end = r
				return true, ""
			}
		}
		return false, ""
	})
	roundEnd := harness.LogTime(t, end)
	took, err := time.ParseDuration(fmt.Sprint(end["duration"]))
	if err != nil {
		t.Fatalf("round complete %v: duration: %v", end, err)
	}
	roundStart := roundEnd.Add(-took)
	var applied time.Time
	for _, a := range guardLogLines(t, b, "sink applied") {
		if a["sink"] == "stdout" && earlyRound(a) == n && a["added"] == float64(1) {
			applied = harness.LogTime(t, a)
			break
		}
	}
	handed := harness.LogTime(t, early)
	switch {
	case applied.IsZero():
		t.Fatalf("no stdout sink apply of round %d adding the server", n)
	case line.FirstSeen.Before(roundStart) || line.FirstSeen.After(roundEnd):
		t.Errorf("first_seen %s outside round %d (%s .. %s)", line.FirstSeen, n, roundStart, roundEnd)
	case !handed.Before(roundEnd) || !applied.Before(roundEnd):
		t.Errorf("early hand-over at %s, stdout apply at %s: want both before round %d's end at %s", handed, applied, n, roundEnd)
	}
	if end["added"] != float64(0) || end["added_early"] != float64(1) {
		t.Errorf("round %d complete: added %v, added_early %v; want 0 and 1", n, end["added"], end["added_early"])
	}
	t.Logf("MEASURED round %d of %s (timeout 5 s): reply at +%s into the round; stdout apply %s after the reply (early hand-over %s after it), %s before the round's end; the test read the line %s after first_seen (polling every 100 ms, %s after the responder started)",
		n, took.Round(time.Millisecond), line.FirstSeen.Sub(roundStart).Round(time.Millisecond),
		applied.Sub(line.FirstSeen).Round(10*time.Microsecond), handed.Sub(line.FirstSeen).Round(10*time.Microsecond),
		roundEnd.Sub(applied).Round(time.Millisecond), seenAt.Sub(line.FirstSeen).Round(time.Millisecond), seenAt.Sub(started).Round(time.Millisecond))

	// The round's end and the next round add nothing more.
	harness.Wait(t, 15*time.Second, fmt.Sprintf("round %d to complete", n+1), func() (bool, string) {
		return slices.ContainsFunc(guardLogLines(t, b, harness.MsgRound), func(r map[string]any) bool { return earlyRound(r) == n+1 }), ""
	})
	stdout, _ := b.Output()
	if evs := harness.StdoutEvents(t, stdout); len(evs) != 1 {
		t.Errorf("%d stdout lines, want the one added line:\n%s", len(evs), stdout)
	}
	if ch := guardLogLines(t, b, harness.MsgChanged); len(ch) != 1 {
		t.Errorf("endpoints changed lines %v, want only the early one", ch)
	}
	if code := b.Sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}
