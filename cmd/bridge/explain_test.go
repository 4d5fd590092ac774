package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/explain"
)

func TestExplainCommand(t *testing.T) {
	reports := map[string]explain.Report{
		"10.1.0.5": {Query: "10.1.0.5", Bridge: "node-a", Round: 7, Servers: []explain.Server{{Address: "10.1.0.5:8000", State: "ready", Ready: true,
			Sinks: []explain.Sink{{Sink: "consul", State: "written", Detail: "passing"}}}}},
		"10.1.0.6": {Query: "10.1.0.6", Bridge: "node-a", Round: 7, Servers: []explain.Server{{Address: "10.1.0.6:8000", State: "failing",
			Check: &explain.Check{Kind: "http", State: "failing", Output: "HTTP GET /healthz: 503 in 4 ms", Fails: 3, Fall: 3, Rise: 2}}}},
		"10.1.0.7": {Query: "10.1.0.7", Bridge: "node-a", Servers: []explain.Server{}, Note: "this bridge holds no server at 10.1.0.7"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != explain.Path || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(reports[r.URL.Query().Get("server")])
	}))
	defer srv.Close()
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"explain", "--url", srv.URL, "--token-file", tokFile, "10.1.0.5"}, 0, "10.1.0.5:8000: ready (ready)"},
		{[]string{"explain", "--url", srv.URL, "--token-file", tokFile, "10.1.0.6"}, exitNone, "HTTP GET /healthz: 503 in 4 ms"},
		{[]string{"explain", "--url", srv.URL, "--token-file", tokFile, "10.1.0.7"}, exitNone, "not held"},
		{[]string{"explain", "--url", srv.URL, "--token-file", tokFile, "--json", "10.1.0.6"}, exitNone, `"state":"failing"`},
		{[]string{"explain", "--url", srv.URL, "10.1.0.5"}, exitInternal, "401"},
		{[]string{"explain", "--url", srv.URL, "nonsense"}, exitUsage, `"nonsense"`},
		{[]string{"explain", "--url", srv.URL}, exitUsage, "want one server"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[3:], " "), func(t *testing.T) {
			code, out, stderr := runCLI(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(out+stderr, tt.out) {
				t.Errorf("exit %d, want %d; want %q in\n%s%s", code, tt.code, tt.out, out, stderr)
			}
		})
	}
}
