package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHealthURL(t *testing.T) {
	tests := []struct {
		addr, want string
		wantErr    bool
	}{
		{":9108", "http://127.0.0.1:9108/healthz", false},
		{"0.0.0.0:9108", "http://127.0.0.1:9108/healthz", false},
		{"[::]:9108", "http://[::1]:9108/healthz", false},
		{"10.0.0.5:9200", "http://10.0.0.5:9200/healthz", false},
		{"localhost:1", "http://localhost:1/healthz", false},
		{"", "", true},
		{"9108", "", true},
	}
	for _, tc := range tests {
		got, err := healthURL(tc.addr)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q, error %v", tc.addr, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	// What the server answers and what it was asked, shared with its
	// handler goroutine.
	// stall, when set, is called as a request arrives, which then waits
	// until the client gives up.
	var (
		mu     sync.Mutex
		status = http.StatusOK
		path   string
		stall  func()
	)
	set := func(st int, stalled func()) { mu.Lock(); status, path, stall = st, "", stalled; mu.Unlock() }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		path = r.URL.Path
		st, stalled := status, stall
		mu.Unlock()
		if stalled != nil {
			stalled()
			<-r.Context().Done() // until the client gives up
		}
		w.WriteHeader(st)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	// A closed port: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		status   int
		wantCode int
		wantErr  string
	}{
		{"healthy", nil, []string{"--metrics-addr", addr}, http.StatusOK, 0, ""},
		{"wildcard host probes loopback", nil, []string{"--metrics-addr", ":" + port}, http.StatusOK, 0, ""},
		{"address from env", map[string]string{"DISCOVERY_CLIENT_METRICS_ADDR": addr}, nil, http.StatusOK, 0, ""},
		{"flag wins over env", map[string]string{"DISCOVERY_CLIENT_METRICS_ADDR": closed}, []string{"--metrics-addr", addr}, http.StatusOK, 0, ""},
		{"stalled loop", nil, []string{"--metrics-addr", addr}, http.StatusServiceUnavailable, 1, "503 Service Unavailable"},
		{"nothing listening", nil, []string{"--metrics-addr", closed}, http.StatusOK, 1, "connection refused"},
		{"endpoint disabled", map[string]string{"DISCOVERY_CLIENT_METRICS_ADDR": ""}, nil, http.StatusOK, 1, "disabled"},
		{"bad address", nil, []string{"--metrics-addr", "nine"}, http.StatusOK, 1, `metrics_addr "nine"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.status, nil)
			code, stdout, stderr := runCLI(t, tc.env, append([]string{"healthcheck"}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if tc.wantErr == "" {
				mu.Lock()
				asked := path
				mu.Unlock()
				if stderr != "" || asked != "/healthz" {
					t.Errorf("stderr %q, path %q; want no output and a GET of /healthz", stderr, asked)
				}
				return
			}
			if !strings.Contains(stderr, tc.wantErr) || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "bridge: healthcheck: ") {
				t.Errorf("stderr %q: want one line `bridge: healthcheck: ...` containing %q", stderr, tc.wantErr)
			}
		})
	}

	// The command arms --timeout as its deadline, and gives up when that
	// passes. Nothing is timed: the test sees the duration armed, and the
	// deadline passes once the endpoint holds the request, which it
	// never answers.
	t.Run("hung endpoint times out", func(t *testing.T) {
		dl := &firedDeadline{done: make(chan struct{})}
		var armed time.Duration
		healthDeadline = func(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
			armed, dl.Context = d, parent
			return dl, func() {}
		}
		defer func() { healthDeadline = context.WithTimeout }()
		set(http.StatusOK, dl.fire)
		defer set(http.StatusOK, nil)
		code, _, stderr := runCLI(t, nil, "healthcheck", "--metrics-addr", addr, "--timeout", "200ms")
		if armed != 200*time.Millisecond {
			t.Errorf("armed a %v deadline, want --timeout's 200ms", armed)
		}
		if code != 1 || !strings.Contains(stderr, "context deadline exceeded") {
			t.Errorf("exit %d, stderr %q; want 1 and a deadline error", code, stderr)
		}
	})
}

// firedDeadline is a context whose deadline passes when fire is called:
// then Done is closed and Err is context.DeadlineExceeded.
type firedDeadline struct {
	context.Context // the parent, for values
	done            chan struct{}
	once            sync.Once
}

func (c *firedDeadline) fire() { c.once.Do(func() { close(c.done) }) }

func (c *firedDeadline) Done() <-chan struct{} { return c.done }

func (c *firedDeadline) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
