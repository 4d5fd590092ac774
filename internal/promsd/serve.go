package promsd

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/secretfile"
)

// Path is where the metrics server serves the http_sd list.
const Path = "/sd/prometheus"

// Targets holds what the http_sd endpoint serves: the newest desired set
// and whether the rounds complete. The runner feeds it (Round, Arrived,
// Failed); Handler serves it. It is safe for concurrent use; a nil
// *Targets records nothing.
type Targets struct {
	id  Identity
	sel Selection

	mu       sync.Mutex
	snap     endpoint.Snapshot
	complete bool  // a round completed since start
	err      error // the latest round failed with this error
}

// NewTargets returns Targets listing the servers sel names, every group
// labelled with id.
func NewTargets(id Identity, sel Selection) *Targets { return &Targets{id: id, sel: sel} }

// Round records the snapshot of a completed round: the list becomes s and
// the endpoint answers 200.
func (t *Targets) Round(s endpoint.Snapshot) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snap, t.complete, t.err = s, true, nil
}

// Arrived records a snapshot handed over between round ends (servers that
// just arrived, or a health transition): the list becomes s, the state is
// left as it is.
func (t *Targets) Arrived(s endpoint.Snapshot) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snap = s
}

// Failed records a failed round: the endpoint answers 503 until a round
// completes, so Prometheus keeps the targets it has.
func (t *Targets) Failed(err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.err = err
}

// state returns the list to serve, or why there is none to serve yet.
func (t *Targets) state() ([]Group, error) {
	t.mu.Lock()
	snap, complete, err := t.snap, t.complete, t.err
	t.mu.Unlock()
	switch {
	case err != nil:
		return nil, fmt.Errorf("the latest discovery round failed: %w", err)
	case !complete:
		return nil, errors.New("no discovery round completed yet")
	}
	return Groups(t.id, t.sel, snap.Endpoints), nil
}

// Token returns the bearer token a request must carry. It is called for
// every request, so a token file rotated on disk takes effect at once.
type Token func() (string, error)

// StaticToken returns a Token of the fixed value s.
func StaticToken(s string) Token { return func() (string, error) { return s, nil } }

// TokenFile returns a Token read from path at every call (surrounding
// white space trimmed). An empty file is an error: it would let anyone in.
// Errors name the file, never its content.
func TokenFile(path string) Token {
	return func() (string, error) { return secretfile.Read("prometheus_sd_token_file", path) }
}

// Handler serves GET of the target groups: 200 with the JSON list ([]
// when there are no servers), 503 with a one-line reason before the first
// complete round and while rounds fail. With token non-nil a request
// without "Authorization: Bearer <token>" gets 401; a token that cannot be
// read gets 500, and log an error when that starts and an info line when
// it ends (the token itself is never logged).
func (t *Targets) Handler(token Token, log zerolog.Logger) http.Handler {
	var tokenFailing atomic.Bool // log transitions, not every refresh
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if token != nil {
			want, err := token()
			if err != nil {
				if !tokenFailing.Swap(true) {
					log.Error().Err(err).Msg("prometheus http_sd: bearer token unavailable; refusing every request")
				}
				http.Error(w, "bearer token unavailable", http.StatusInternalServerError)
				return
			}
			if tokenFailing.Swap(false) {
				log.Info().Msg("prometheus http_sd: bearer token readable again")
			}
			if !Authorized(w, r, want) {
				return
			}
		}
		groups, err := t.state()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		b, err := Marshal(groups)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(b, '\n'))
	})
}

// Authorized reports whether r carries "Authorization: Bearer <want>"
// (compared in constant time); when not, it has answered 401 with the
// Bearer challenge. The bridge's endpoints that take the http_sd token
// (/sd/prometheus, /debug/explain) check it this one way.
func Authorized(w http.ResponseWriter, r *http.Request, want string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="udp-discovery-bridge"`)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
	return false
}
