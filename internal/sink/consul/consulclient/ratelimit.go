package consulclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Consul's servers, with limits { request_limits { mode = "enforcing" } },
// refuse requests beyond their rate with 429 ("rate limit exceeded, try
// again later or against a different server") or, for writes that only the
// raft leader can do, 503 ("rate limit exceeded for operation that can only
// be performed by the leader, try again later"): agent/consul/rate's
// ErrRetryElsewhere and ErrRetryLater, mapped in agent/http.go. Consul 1.20
// sends no Retry-After; a proxy in front of it may, and it is honoured.
//
// consul/api loses the status of some answers ("Unexpected response code:
// 429" for a session renewal, "Failed request: <body>" for a transaction),
// so the HTTP client's transport notes a rate-limit answer in the request's
// context (NoteRateLimit) and the catalog API turns it into a
// *RateLimitError.

// rateLimitText is in the body of both of Consul's rate-limit answers.
const rateLimitText = "rate limit exceeded"

// RateLimitError is a request Consul refused for its rate limit. RetryAfter
// is the server's Retry-After (0 when it sent none).
type RateLimitError struct {
	Status     int
	RetryAfter time.Duration
	Err        error
}

func (e *RateLimitError) Error() string {
	s := fmt.Sprintf("consul rate limit exceeded (HTTP %d", e.Status)
	if e.RetryAfter > 0 {
		s += ", Retry-After " + e.RetryAfter.String()
	}
	return s + "): " + e.Err.Error()
}

// Unwrap returns the request's error.
func (e *RateLimitError) Unwrap() error { return e.Err }

// RateLimited reports whether err is a rate-limit answer of Consul, and the
// Retry-After it came with (0: none). Errors that lost their type on the
// way (an agent forwarding a server's refusal, consul/api's flattened
// errors) are recognised by Consul's message.
func RateLimited(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	if rl, ok := errors.AsType[*RateLimitError](err); ok {
		return rl.RetryAfter, true
	}
	return 0, strings.Contains(err.Error(), rateLimitText)
}

// RateLimitNote collects what the client's transport saw of one request
// (see NoteRateLimit).
type RateLimitNote struct {
	mu         sync.Mutex
	status     int
	retryAfter time.Duration
}

type rateLimitKey struct{}

// NoteRateLimit returns a context whose requests, sent by a Client, record
// a rate-limit answer in the returned note.
func NoteRateLimit(ctx context.Context) (context.Context, *RateLimitNote) {
	n := &RateLimitNote{}
	return context.WithValue(ctx, rateLimitKey{}, n), n
}

// Wrap returns err as a *RateLimitError when the request was refused for
// the rate limit (by the note, or by Consul's message), else err.
func (n *RateLimitNote) Wrap(err error) error {
	if err == nil {
		return nil
	}
	n.mu.Lock()
	status, ra := n.status, n.retryAfter
	n.mu.Unlock()
	if status == 0 {
		if !strings.Contains(err.Error(), rateLimitText) {
			return err
		}
		status = http.StatusTooManyRequests
	}
	return &RateLimitError{Status: status, RetryAfter: ra, Err: err}
}

// rateLimitTransport notes rate-limit answers (429, or 503 whose body says
// so) in the note of the request's context, if it has one.
type rateLimitTransport struct{ base http.RoundTripper }

func (t rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	n, _ := req.Context().Value(rateLimitKey{}).(*RateLimitNote)
	if err != nil || n == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	// Error bodies are short; read a bounded prefix and hand it back.
	head, rerr := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if rerr != nil || (resp.StatusCode == http.StatusServiceUnavailable && !bytes.Contains(head, []byte(rateLimitText))) {
		return resp, nil //nolint:nilerr // the response goes to the caller as it came; a short body read is not this transport's error
	}
	n.mu.Lock()
	n.status = resp.StatusCode
	n.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), resp.Header.Get("Date"))
	n.mu.Unlock()
	return resp, nil
}

// maxRetryAfter bounds a Retry-After, so that a wrong one cannot stop the
// bridge for long.
const maxRetryAfter = time.Minute

// parseRetryAfter parses a Retry-After value: delay-seconds, or an
// HTTP-date taken relative to the answer's Date (the server's clock, so no
// local clock is needed; no Date: not usable). Unusable values give 0.
func parseRetryAfter(v, date string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	now, err := http.ParseTime(date)
	if err != nil || !at.After(now) {
		return 0
	}
	return min(at.Sub(now), maxRetryAfter)
}

// RateLimitQuiet is how long without a refusal ends a rate-limit episode.
const RateLimitQuiet = 30 * time.Second

// RateLimitLog logs rate limiting once per episode: a WARN at the first
// refusal, an INFO with the count at the first success after RateLimitQuiet
// without one. Safe for concurrent use.
type RateLimitLog struct {
	clock clock.Clock
	log   zerolog.Logger

	mu       sync.Mutex
	active   bool
	start    time.Time
	last     time.Time
	rejected int
}

// NewRateLimitLog returns a RateLimitLog on clk (nil: the real clock)
// writing to log.
func NewRateLimitLog(clk clock.Clock, log zerolog.Logger) *RateLimitLog {
	return &RateLimitLog{clock: clock.OrReal(clk), log: log}
}

// Reject records a refusal of op.
func (l *RateLimitLog) Reject(op string, err error) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejected++
	l.last = now
	if l.active {
		return
	}
	l.active, l.start, l.rejected = true, now, 1
	l.log.Warn().Err(err).Str("op", op).
		Msg("consul is rate-limiting this bridge's writes (request_limits): slowing down; session renewals go first")
}

// Succeeded records a successful write.
func (l *RateLimitLog) Succeeded() {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active || now.Sub(l.last) < RateLimitQuiet {
		return
	}
	l.active = false
	l.log.Info().Int("rejected", l.rejected).Str("lasted", l.last.Sub(l.start).Round(time.Millisecond).String()).
		Msg("consul rate limiting over: writes go through again")
}
