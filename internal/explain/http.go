package explain

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/promsd"
)

// Path is where a bridge serves reports, on metrics_addr, when
// debug_endpoint is on: GET Path?server=<ip[:port]>.
const Path = "/debug/explain"

// maxReport bounds a report read by Fetch: a handful of servers at one
// address, each with 16 check results.
const maxReport = 1 << 20

// Handler serves the Board's reports at Path. With token non-nil a request
// must carry "Authorization: Bearer <token>" (401 otherwise; 500 when the
// token cannot be read). A bad query is a 400 naming it.
func (b *Board) Handler(token func() (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if token != nil {
			want, err := token()
			if err != nil {
				http.Error(w, "bearer token unavailable", http.StatusInternalServerError)
				return
			}
			if !promsd.Authorized(w, r, want) {
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		rep, err := b.Report(ctx, r.URL.Query().Get("server"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	})
}

// Fetch asks the bridge whose metrics_addr is base ("http://127.0.0.1:9108")
// for its report on server, with token as bearer when not empty. It returns
// the report and its JSON as served.
func Fetch(ctx context.Context, c *http.Client, base, server, token string) (Report, []byte, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + Path)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Report{}, nil, fmt.Errorf("bridge URL %q: want http://host:port of a bridge's metrics_addr", base)
	}
	u.RawQuery = url.Values{"server": {server}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Report{}, nil, fmt.Errorf("explain request to %s: %w", u.Redacted(), err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return Report{}, nil, fmt.Errorf("explain: ask the bridge at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReport+1))
	if err != nil {
		return Report{}, nil, fmt.Errorf("explain: read the answer of %s: %w", base, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Report{}, nil, fmt.Errorf("explain: %s has no %s: turn debug_endpoint on (--debug-endpoint, DISCOVERY_CLIENT_DEBUG_ENDPOINT=true) on that bridge", base, Path)
	case resp.StatusCode == http.StatusUnauthorized:
		return Report{}, nil, fmt.Errorf("explain: %s refused the request (401): pass the bridge's prometheus_sd token with --token-file", base)
	case resp.StatusCode != http.StatusOK:
		return Report{}, nil, fmt.Errorf("explain: %s answered %s: %s", base, resp.Status, strings.TrimSpace(string(body[:min(len(body), 512)])))
	case len(body) > maxReport:
		return Report{}, nil, fmt.Errorf("explain: the answer of %s exceeds %d bytes", base, maxReport)
	}
	var rep Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return Report{}, nil, fmt.Errorf("explain: the answer of %s is not a report: %w", base, err)
	}
	return rep, body, nil
}
