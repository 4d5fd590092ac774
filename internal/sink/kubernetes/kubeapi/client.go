package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client is a small REST client of the Kubernetes API: JSON over HTTPS with
// a bearer token re-read from its file on every request (a projected
// service-account token is rotated under a running pod) or a client
// certificate. It never logs or returns the token.
type Client struct {
	base  *url.URL
	http  *http.Client
	token func() (string, error) // nil: no bearer token
	// Namespace is the namespace of the kubeconfig's context or of the
	// service account ("" when neither names one).
	Namespace string
}

// NewClientAt is a client of the API server at server (a URL) with no
// credentials and tlsCfg for https (nil: Go's defaults): for a test's
// server or a local proxy (kubectl proxy).
func NewClientAt(server string, tlsCfg *tls.Config) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("kubernetes server %q: not a URL", server)
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4,
		IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second, ForceAttemptHTTP2: true}
	return &Client{base: u, http: &http.Client{Transport: tr}}, nil
}

// Host is the API server's host and port.
func (c *Client) Host() string { return c.base.Host }

// maxBody bounds a response body read into memory.
const maxBody = 64 << 20

// do sends one request: body (nil: none) as contentType, the JSON answer
// decoded into out (nil: discarded). A non-2xx answer is a *StatusError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) error {
	return c.doAccept(ctx, "application/json", method, path, query, contentType, body, out)
}

// doAccept is do asking for the answer as accept.
func (c *Client) doAccept(ctx context.Context, accept, method, path string, query url.Values, contentType string, body []byte, out any) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("kubernetes %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "udp-discovery-bridge")
	if c.token != nil {
		t, err := c.token()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL carries no secret, but the method and path say it already
		}
		return fmt.Errorf("kubernetes %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("kubernetes %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Method: method, Path: path, Code: resp.StatusCode}
		var st struct{ Reason, Message string }
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			se.Reason, se.Message = st.Reason, st.Message
		} else {
			se.Reason, se.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return se
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("kubernetes %s %s: decode answer: %w", method, path, err)
	}
	return nil
}
