package harness

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// LogTime is a log line's time field (RFC 3339 with nanoseconds).
func LogTime(t testing.TB, l map[string]any) time.Time {
	t.Helper()
	s, _ := l["time"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("log line %v: time %q: %v", l, s, err)
	}
	return at
}

// Log messages of the bridge's loop (internal/runner) that tests follow.
const (
	// MsgRound ends every round.
	MsgRound = "round complete"
	// MsgChanged sums up a round's changes, at info.
	MsgChanged = "endpoints changed"
)

// StdoutEvent is one line of the stdout sink.
type StdoutEvent struct {
	Event         string    `json:"event"`
	IP            string    `json:"ip"`
	Port          int       `json:"port"`
	SourceAddress string    `json:"source_address"`
	Interface     string    `json:"interface"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
}

// StdoutEvents parses the stdout sink's output; every line must be a JSON
// object with exactly the documented keys.
func StdoutEvents(t testing.TB, out string) []StdoutEvent {
	t.Helper()
	keys := []string{"event", "first_seen", "interface", "ip", "last_seen", "port", "source_address"}
	var evs []StdoutEvent
	for line := range strings.Lines(out) {
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("stdout line %q is not a JSON object: %v", line, err)
		}
		if have := Keys(raw); !slices.Equal(have, keys) {
			t.Errorf("stdout line has keys %v, want %v: %s", have, keys, line)
		}
		var e StdoutEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// FileDoc is the file sink's document.
type FileDoc struct {
	UpdatedAt *time.Time `json:"updated_at"`
	Servers   []struct {
		IP            string    `json:"ip"`
		Port          int       `json:"port"`
		SourceAddress string    `json:"source_address"`
		Interface     string    `json:"interface"`
		FirstSeen     time.Time `json:"first_seen"`
	} `json:"servers"`
}

// ScanReport is the scan report `bridge discover --json` writes to stderr.
type ScanReport struct {
	Hosts       int     `json:"hosts"`
	Scanned     int     `json:"scanned"`
	Percent     float64 `json:"percent"`
	Seconds     float64 `json:"seconds"`
	RateReached float64 `json:"rate_reached"`
	OnLinkRate  float64 `json:"onlink_rate"`
	Complete    bool    `json:"complete"`
	Message     string  `json:"message"`
}

// ScanReportOf returns the first scan report on stderr, failing the test
// when there is none.
func ScanReportOf(t testing.TB, stderr string) ScanReport {
	t.Helper()
	for line := range strings.Lines(stderr) {
		var v struct {
			Scan *ScanReport `json:"scan"`
		}
		if json.Unmarshal([]byte(line), &v) == nil && v.Scan != nil {
			return *v.Scan
		}
	}
	t.Fatalf("no {\"scan\": ...} report on stderr:\n%s", stderr)
	return ScanReport{}
}
