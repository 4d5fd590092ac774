package source_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/relay"
	"github.com/udp-discovery-bridge/bridge/internal/relay/source"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// addrs parses "ip:port" strings.
func addrs(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

// spell spells targets as "ip[:port]".
func spell(ts []relay.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

// logLines decodes the JSON lines of buf, each as a map.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	buf.Reset()
	return out
}

// messages are the "level: message" of lines.
func messages(lines []map[string]any) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l["level"].(string) + ": " + l["message"].(string)
	}
	return out
}

func newKeeper(clk *clocktest.Clock, buf *bytes.Buffer) *source.Keeper {
	return source.NewKeeper(source.Options{Name: "consul", Period: 10 * time.Second, MaxStale: 30 * time.Second,
		Clock: clk, Log: zerolog.New(buf).Level(zerolog.DebugLevel)})
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name string
		in   []netip.AddrPort
		want []string
	}{
		{"empty", nil, []string{}},
		{"sorted, port 0 is none", addrs("10.2.0.5:8000", "10.1.0.9:0", "10.1.0.9:8000"), []string{"10.1.0.9", "10.1.0.9:8000", "10.2.0.5:8000"}},
		{"duplicates once", addrs("10.1.0.9:8000", "10.1.0.9:8000"), []string{"10.1.0.9:8000"}},
		{"mapped unmapped, IPv6 left out", addrs("[::ffff:10.1.0.9]:8000", "[2001:db8::1]:8000"), []string{"10.1.0.9:8000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spell(source.Targets(tt.in)); !slices.Equal(got, tt.want) {
				t.Errorf("Targets = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestKeeperAge: a set is relayed until it is older than Period +
// MaxStale, failed reads or not; a successful read makes it fresh again;
// before any read there is nothing, stale once MaxAge passed since start.
func TestKeeperAge(t *testing.T) {
	boom := errors.New("connection refused")
	type step struct {
		advance time.Duration
		good    []netip.AddrPort // a successful read (nil: none)
		fail    error            // a failed read
		// want after the step
		read    bool
		size    int
		age     time.Duration
		stale   bool
		lastErr string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"nothing read: not stale until MaxAge", []step{
			{advance: 40 * time.Second},
			{advance: time.Second, stale: true},
		}},
		{"read, then aging to the limit and past it", []step{
			{good: addrs("10.1.0.9:8000"), read: true, size: 1},
			{advance: 40 * time.Second, read: true, size: 1, age: 40 * time.Second},
			{advance: time.Nanosecond, read: true, size: 1, age: 40*time.Second + time.Nanosecond, stale: true},
		}},
		{"failures keep the set while it is young", []step{
			{good: addrs("10.1.0.9:8000", "10.2.0.5:8000"), read: true, size: 2},
			{advance: 5 * time.Second, fail: boom, read: true, size: 2, age: 5 * time.Second, lastErr: "connection refused"},
			{advance: 30 * time.Second, fail: boom, read: true, size: 2, age: 35 * time.Second, lastErr: "connection refused"},
			{advance: 6 * time.Second, fail: boom, read: true, size: 2, age: 41 * time.Second, stale: true, lastErr: "connection refused"},
		}},
		{"a read after stale: fresh, error gone", []step{
			{good: addrs("10.1.0.9:8000"), read: true, size: 1},
			{advance: time.Minute, fail: boom, read: true, size: 1, age: time.Minute, stale: true, lastErr: "connection refused"},
			{good: addrs(), read: true, size: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(t0)
			k := newKeeper(clk, &bytes.Buffer{})
			if got := k.MaxAge(); got != 40*time.Second {
				t.Fatalf("MaxAge = %s, want 40s", got)
			}
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				switch {
				case s.good != nil:
					k.Good(s.good)
				case s.fail != nil:
					k.Failed(s.fail)
				}
				st := k.State()
				gotErr := ""
				if st.LastError != nil {
					gotErr = st.LastError.Error()
				}
				if st.Read != s.read || st.Size != s.size || st.Age != s.age || st.Stale != s.stale || gotErr != s.lastErr {
					t.Errorf("step %d: State = %+v, want read %v size %d age %s stale %v last error %q", i, st, s.read, s.size, s.age, s.stale, s.lastErr)
				}
				set, age, ok := k.Targets()
				if ok != s.read || len(set) != s.size || (ok && age != s.age) {
					t.Errorf("step %d: Targets = %d targets, %s, %v", i, len(set), age, ok)
				}
			}
		})
	}
}

// TestKeeperLogs: a change of the set is one info line with its size,
// counts and the first few addresses of each kind; the first failure is a
// warn, the next ones debug; turning stale is one warn (Check, or a
// failure); reading again is one info line.
func TestKeeperLogs(t *testing.T) {
	var buf bytes.Buffer
	clk := clocktest.New(t0)
	k := newKeeper(clk, &buf)

	k.Good(addrs("10.1.0.9:8000", "10.1.0.8:8000"))
	lines := logLines(t, &buf)
	if got := messages(lines); !slices.Equal(got, []string{"info: relayed set changed"}) {
		t.Fatalf("first read logged %q", got)
	}
	if l := lines[0]; l["size"] != 2.0 || l["added"] != 2.0 || l["removed"] != 0.0 || l["source"] != "consul" {
		t.Errorf("first read: %v", l)
	}

	k.Good(addrs("10.1.0.8:8000", "10.1.0.9:8000")) // the same set
	if got := messages(logLines(t, &buf)); len(got) != 0 {
		t.Errorf("the same set logged %q", got)
	}

	var many []netip.AddrPort
	for i := range 12 {
		many = append(many, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, 0, byte(i + 1)}), 8000))
	}
	k.Good(many)
	lines = logLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("12 new logged %d lines", len(lines))
	}
	l := lines[0]
	if l["added"] != 12.0 || l["removed"] != 2.0 || len(l["added_first"].([]any)) != 6 || l["added_first"].([]any)[5] != "..." {
		t.Errorf("a change of 14: %v", l)
	}
	if got := l["removed_first"].([]any); len(got) != 2 || got[0] != "10.1.0.8:8000" {
		t.Errorf("removed_first = %v", got)
	}

	k.Failed(errors.New("refused"))
	k.Failed(errors.New("refused"))
	if got := messages(logLines(t, &buf)); !slices.Equal(got, []string{"warn: relay source not read: relaying the last set read until it is stale", "debug: relay source not read"}) {
		t.Errorf("two failures logged %q", got)
	}
	clk.Advance(40 * time.Second)
	k.Check()
	if got := messages(logLines(t, &buf)); len(got) != 0 {
		t.Errorf("at MaxAge logged %q", got)
	}
	clk.Advance(time.Second)
	k.Check()
	k.Check()
	lines = logLines(t, &buf)
	if got := messages(lines); !slices.Equal(got, []string{"warn: relay source stale: answering no probes until it is read again"}) {
		t.Fatalf("stale logged %q", got)
	}
	if lines[0]["last_error"] != "refused" || lines[0]["size"] != 12.0 {
		t.Errorf("stale line: %v", lines[0])
	}
	k.Failed(errors.New("refused"))
	if got := messages(logLines(t, &buf)); !slices.Equal(got, []string{"debug: relay source not read"}) {
		t.Errorf("a failure while stale logged %q", got)
	}
	k.Good(many)
	lines = logLines(t, &buf)
	if got := messages(lines); !slices.Equal(got, []string{"info: relay source read again"}) {
		t.Fatalf("recovery logged %q", got)
	}
	if lines[0]["was_stale"] != true {
		t.Errorf("recovery line: %v", lines[0])
	}
}

// TestReadyNotes: a note before the first read and while stale, naming
// the source, the age, the bounds and the last error; none while the set
// is relayed, failures or not.
func TestReadyNotes(t *testing.T) {
	clk := clocktest.New(t0)
	k := newKeeper(clk, &bytes.Buffer{})
	if got := k.ReadyNotes(); !slices.Equal(got, []string{"source consul: no set read yet; answering no probes"}) {
		t.Errorf("before any read: %q", got)
	}
	k.Failed(errors.New("403 Permission denied"))
	if got := k.ReadyNotes(); !slices.Equal(got, []string{"source consul: no set read yet; last error: 403 Permission denied; answering no probes"}) {
		t.Errorf("before any read, failing: %q", got)
	}
	k.Good(addrs("10.1.0.9:8000"))
	if got := k.ReadyNotes(); got != nil {
		t.Errorf("fresh: %q", got)
	}
	clk.Advance(20 * time.Second)
	k.Failed(errors.New("connection refused"))
	if got := k.ReadyNotes(); got != nil {
		t.Errorf("failing, young: %q", got)
	}
	clk.Advance(25 * time.Second)
	want := "source consul stale: its set of 1 was read 45s ago, more than 40s (its period 10s + relay_max_stale 30s); last error: connection refused; answering no probes"
	if got := k.ReadyNotes(); !slices.Equal(got, []string{want}) {
		t.Errorf("stale: %q, want %q", got, want)
	}
}
