package consultest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// LogBuffer collects zerolog's JSON lines; safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Lines returns every line logged so far.
func (b *LogBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimRight(b.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Grep returns the lines containing s.
func (b *LogBuffer) Grep(s string) []string {
	var out []string
	for _, l := range b.Lines() {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// NewLogger returns a debug-level logger writing to a LogBuffer.
func NewLogger() (zerolog.Logger, *LogBuffer) {
	b := &LogBuffer{}
	return zerolog.New(b).Level(zerolog.DebugLevel).With().Timestamp().Logger(), b
}

// WaitFor waits (real time, 5s at most) until cond holds, and fails the
// test naming what it waited for when it does not.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
