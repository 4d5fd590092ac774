package consulclient

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTokenFileRotation: the token is re-read when the file is replaced
// the ways rotators replace it; a file gone or empty for a moment keeps
// the last good token.
func TestTokenFileRotation(t *testing.T) {
	tests := []struct {
		name   string
		rotate func(t *testing.T, dir, path string) // makes path hold "new-token" (or not, see want)
		want   string
	}{
		{"rename over (Vault Agent, CSI)", func(t *testing.T, dir, path string) {
			writeFile(t, filepath.Join(dir, "tmp"), "new-token\n")
			if err := os.Rename(filepath.Join(dir, "tmp"), path); err != nil {
				t.Fatal(err)
			}
		}, "new-token"},
		{"rewritten in place", func(t *testing.T, dir, path string) { writeFile(t, path, "new-token-2") }, "new-token-2"},
		{"Kubernetes ..data symlink swap", nil, "new-token"},
		{"emptied for a moment", func(t *testing.T, dir, path string) { writeFile(t, path, "") }, "old-token"},
		{"removed for a moment", func(t *testing.T, dir, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "old-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "token")
			rotate := tt.rotate
			if rotate == nil { // a Secret volume: token -> ..data/token, ..data -> ..v1
				for _, v := range []string{"..v1", "..v2"} {
					if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
						t.Fatal(err)
					}
				}
				writeFile(t, filepath.Join(dir, "..v1", "token"), "old-token")
				writeFile(t, filepath.Join(dir, "..v2", "token"), "new-token")
				if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("..data/token", path); err != nil {
					t.Fatal(err)
				}
				rotate = func(t *testing.T, dir, path string) {
					if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				writeFile(t, path, "old-token\n")
			}
			f, err := newTokenFile("consul_token_file", path)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.current(); got != "old-token" {
				t.Fatalf("first token %q", got)
			}
			rotate(t, dir, path)
			if got := f.current(); got != tt.want {
				t.Errorf("token after rotation %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTokenTransport: every request carries the file's current token; a
// 403 "ACL not found" re-reads the file and retries once with a new token,
// body included; a 403 for a missing rule is returned as it is.
func TestTokenTransport(t *testing.T) {
	var mu sync.Mutex
	valid := "new-token"
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tok := r.Header.Get("X-Consul-Token")
		mu.Lock()
		seen = append(seen, tok+" "+string(body))
		ok := tok == valid
		mu.Unlock()
		switch {
		case r.URL.Path == "/denied":
			http.Error(w, "Permission denied: token lacks permission 'key:write' on \"x\"", http.StatusForbidden)
		case !ok:
			http.Error(w, "ACL not found", http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "token")
	writeFile(t, path, "old-token")
	f, err := newTokenFile("consul_token_file", path)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &tokenTransport{base: http.DefaultTransport, file: f}}
	put := func(p string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, srv.URL+p, strings.NewReader("body"))
		req.Header.Set("X-Consul-Token", "stale-from-consul-api")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put("/"); code != http.StatusForbidden {
		t.Fatalf("old token: %d, want 403", code)
	}
	// Rewritten within the same mtime tick and size: only the 403 makes
	// the transport look again.
	fi, _ := os.Stat(path)
	writeFile(t, path, "new-token")
	_ = os.Chtimes(path, fi.ModTime(), fi.ModTime())
	if code := put("/"); code != http.StatusOK {
		t.Fatalf("after rotation: %d, want 200", code)
	}
	if code := put("/denied"); code != http.StatusForbidden {
		t.Fatalf("denied: %d, want 403", code)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"old-token body", "old-token body", "new-token body", "new-token body"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("requests %q, want %q", seen, want)
	}
	if s := f.secrets(); len(s) != 2 {
		t.Errorf("secrets for redaction %d, want 2", len(s))
	}
}
