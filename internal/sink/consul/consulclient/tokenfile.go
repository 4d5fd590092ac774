package consulclient

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tokenFile is an ACL token kept in a file that may be replaced while the
// bridge runs (Vault Agent, a CSI driver, a Kubernetes Secret volume, which
// swaps a ..data symlink): every request stats the file (it follows
// symlinks) and re-reads it when its device, inode, size or mtime changed.
// A file that is missing, unreadable or empty for a moment keeps the last
// good token. It never logs or returns the token in an error.
type tokenFile struct {
	key, path string

	mu    sync.Mutex
	token string
	stamp fileStamp
	seen  []string // every token read, for redaction
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino //nolint:unconvert // Dev is int32 on some platforms
	}
	return s
}

// maxSeenTokens bounds the tokens remembered for redaction.
const maxSeenTokens = 8

// newTokenFile reads the token at path; key names the setting in errors.
func newTokenFile(key, path string) (*tokenFile, error) {
	t, err := readTokenFile(key, path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &tokenFile{key: key, path: path, token: t, stamp: stampOf(fi), seen: []string{t}}, nil
}

// current returns the token, re-reading the file first when it changed.
func (f *tokenFile) current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err == nil && stampOf(fi) != f.stamp {
		f.readLocked(stampOf(fi))
	}
	return f.token
}

// reload re-reads the file whatever its stamp (Consul said "ACL not
// found": the file may have been rewritten within one mtime tick) and
// reports whether the token changed.
func (f *tokenFile) reload() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.token
	if fi, err := os.Stat(f.path); err == nil {
		f.readLocked(stampOf(fi))
	}
	return f.token != old
}

func (f *tokenFile) readLocked(st fileStamp) {
	t, err := readTokenFile(f.key, f.path)
	if err != nil {
		return // half-written or gone for a moment: keep the last good token
	}
	f.stamp = st
	if t != f.token {
		f.token = t
		f.seen = append(f.seen, t)
		if len(f.seen) > maxSeenTokens {
			f.seen = f.seen[len(f.seen)-maxSeenTokens:]
		}
	}
}

// secrets are the tokens read so far (for redaction).
func (f *tokenFile) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// tokenTransport sets X-Consul-Token from a tokenFile on every request, and
// after a 403 "ACL not found" re-reads the file and, when the token
// changed, sends the request once more with the new one.
type tokenTransport struct {
	base http.RoundTripper
	file *tokenFile
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := t.file.current()
	resp, err := t.base.RoundTrip(withToken(req, tok))
	if err != nil || resp.StatusCode != http.StatusForbidden {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil || !strings.Contains(string(body), "ACL not found") || !t.file.reload() {
		return resp, nil //nolint:nilerr // no retry: the caller gets the response as it came
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // the body cannot be sent again
	}
	again := withToken(req, t.file.current())
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return resp, nil //nolint:nilerr // no retry: the caller gets the first response
		}
		again.Body = b
	}
	return t.base.RoundTrip(again)
}

// withToken is a copy of req carrying token (a RoundTripper must not change
// its request).
func withToken(req *http.Request, token string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("X-Consul-Token", token)
	return r
}
