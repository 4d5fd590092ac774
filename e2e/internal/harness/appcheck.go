package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/promsd"
)

// The app check of every bridge here: GET /healthz every second, rise 2,
// fall 3, a 0.5 s timeout and no jitter (every check on its beat, so that
// the bounds below need no jitter term).
const (
	AppInterval = time.Second
	AppTimeout  = 500 * time.Millisecond
	AppRise     = 2
	AppFall     = 3
	AppPath     = "/healthz"
	// AppPort is the port the responders announce (their default) and the
	// apps listen on.
	AppPort = 8000
)

// AppCheckFlags are AppInterval... as `bridge run` flags.
var AppCheckFlags = []string{"--app-check", "http", "--app-check-path", AppPath,
	"--app-check-interval", AppInterval.String(), "--app-check-timeout", AppTimeout.String(),
	"--app-check-rise", strconv.Itoa(AppRise), "--app-check-fall", strconv.Itoa(AppFall), "--app-check-jitter", "0"}

// AppWrite is the margin for a sink to show a transition once the bridge
// decided it: the runner posts it at once, but catalog mode goes through
// the bridge's observation and the leader's merge and transaction, on a
// machine shared with a Consul cluster.
const AppWrite = 8 * time.Second

// AppBound is the longest n checks in a row can take to flip a server and
// a sink to show it: the check in flight when the app changed (up to an
// interval and a timeout), n more of an interval and a timeout each, a
// round (1 s) for good measure, and the write.
func AppBound(n int) time.Duration {
	return time.Duration(n+1)*(AppInterval+AppTimeout) + time.Second + AppWrite
}

// SDTargets returns the targets of the http_sd list the bridge serves at
// addr in ns, each with its labels.
func SDTargets(ns, addr string) (map[string]map[string]string, error) {
	code, body, err := NSGet(ns, "http://"+addr+"/sd/prometheus")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /sd/prometheus: %d %s", code, body)
	}
	var groups []promsd.Group
	if err := json.Unmarshal([]byte(body), &groups); err != nil {
		return nil, fmt.Errorf("http_sd %q: %w", body, err)
	}
	out := map[string]map[string]string{}
	for _, g := range groups {
		for _, tg := range g.Targets {
			out[tg] = g.Labels
		}
	}
	return out, nil
}

// AppSteady polls cond every 100 ms for the whole window and fails the
// test the first time it does not hold. A poll whose reads failed (err)
// judges nothing, but more than half of them failing fails the test. It
// returns how many polls judged.
func AppSteady(t testing.TB, window time.Duration, what string, cond func() (ok bool, detail string, err error)) int {
	t.Helper()
	judged, unread := 0, 0
	var lastErr error
	for start := time.Now(); time.Since(start) < window; {
		switch ok, detail, err := cond(); {
		case err != nil:
			unread++
			lastErr = err
		case !ok:
			t.Fatalf("%s: broken %s into the %s window: %s", what, time.Since(start).Round(10*time.Millisecond), window, detail)
		default:
			judged++
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended during %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if unread > judged {
		t.Fatalf("%s: %d polls of %d could not read what they judge (last: %v)", what, unread, judged+unread, lastErr)
	}
	return judged
}
