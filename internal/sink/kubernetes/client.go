package kubernetes

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/udp-discovery-bridge/bridge/internal/secretfile"
	"github.com/udp-discovery-bridge/bridge/internal/tlsroots"
)

// The in-cluster service account's files (mounted when
// automountServiceAccountToken is true).
const (
	saDir = "/var/run/secrets/kubernetes.io/serviceaccount"
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

// StatusError is a request the API server refused: its HTTP code and the
// reason and message of its Status object.
type StatusError struct {
	Method, Path string
	Code         int
	Reason       string
	Message      string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("kubernetes %s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, e.Message)
}

// IsConflict reports a failed resourceVersion precondition (409 Conflict) or the
// object already exists (409 AlreadyExists).
func IsConflict(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusConflict
}

// IsNotFound reports that the object does not exist.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// NewClient connects with the kubeconfig at path, or in-cluster (the
// service account's token and CA, KUBERNETES_SERVICE_HOST/PORT) when path is
// empty.
func NewClient(path string) (*Client, error) {
	if path == "" {
		return inCluster(os.Getenv, saDir)
	}
	return fromKubeconfig(path)
}

func inCluster(getenv func(string) string, dir string) (*Client, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("kubernetes: not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): set kubeconfig (--kubeconfig) to run outside one")
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("kubernetes in-cluster CA: %w (is automountServiceAccountToken on?)", err)
	}
	tokenFile := filepath.Join(dir, "token")
	if _, err := readToken(tokenFile); err != nil {
		return nil, err
	}
	ns, _ := os.ReadFile(filepath.Join(dir, "namespace"))
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tlsCfg.RootCAs, err = pool(ca, "in-cluster ca.crt"); err != nil {
		return nil, err
	}
	c, err := newClient("https://"+net.JoinHostPort(host, port), tlsCfg)
	if err != nil {
		return nil, err
	}
	c.token = func() (string, error) { return readToken(tokenFile) }
	c.Namespace = strings.TrimSpace(string(ns))
	return c, nil
}

// readToken reads a bearer token file; the error names the file, never its
// content.
func readToken(path string) (string, error) {
	return secretfile.Read("kubernetes token file", path)
}

func pool(pem []byte, what string) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kubernetes %s: no PEM certificate in it", what)
	}
	return p, nil
}

func newClient(server string, tlsCfg *tls.Config) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("kubernetes server %q: not a URL", server)
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4,
		IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second, ForceAttemptHTTP2: true}
	return &Client{base: u, http: &http.Client{Transport: tr}}, nil
}

// kubeconfig is the part of a kubeconfig file this client reads.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Contexts       []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster   string `yaml:"cluster"`
			User      string `yaml:"user"`
			Namespace string `yaml:"namespace"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Clusters []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server        string `yaml:"server"`
			CA            string `yaml:"certificate-authority"`
			CAData        string `yaml:"certificate-authority-data"`
			Insecure      bool   `yaml:"insecure-skip-tls-verify"`
			TLSServerName string `yaml:"tls-server-name"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Cert      string `yaml:"client-certificate"`
			CertData  string `yaml:"client-certificate-data"`
			Key       string `yaml:"client-key"`
			KeyData   string `yaml:"client-key-data"`
			Token     string `yaml:"token"`
			TokenFile string `yaml:"tokenFile"`
			Exec      any    `yaml:"exec"`
			Auth      any    `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// fromKubeconfig reads the current context of the kubeconfig at path:
// server, CA, client certificate or token (file). Exec and auth-provider
// plugins are refused: the image has no programs to run.
func fromKubeconfig(path string) (*Client, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("kubeconfig %s: "+format, append([]any{path}, a...)...)
	}
	ctxName := kc.CurrentContext
	if ctxName == "" && len(kc.Contexts) == 1 {
		ctxName = kc.Contexts[0].Name
	}
	ci := -1
	for i, c := range kc.Contexts {
		if c.Name == ctxName {
			ci = i
		}
	}
	if ci < 0 {
		return nil, bad("no context %q", ctxName)
	}
	kctx := kc.Contexts[ci].Context
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	data := func(inline, file, what string) ([]byte, error) {
		if inline != "" {
			b, err := base64.StdEncoding.DecodeString(inline)
			if err != nil {
				return nil, bad("%s-data: %w", what, err)
			}
			return b, nil
		}
		if file == "" {
			return nil, nil
		}
		b, err := os.ReadFile(rel(file))
		if err != nil {
			return nil, bad("%s: %w", what, err)
		}
		return b, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	var server string
	found := false
	for _, cl := range kc.Clusters {
		if cl.Name != kctx.Cluster {
			continue
		}
		found, server = true, cl.Cluster.Server
		ca, err := data(cl.Cluster.CAData, cl.Cluster.CA, "certificate-authority")
		if err != nil {
			return nil, err
		}
		if ca != nil {
			if tlsCfg.RootCAs, err = pool(ca, "kubeconfig certificate-authority"); err != nil {
				return nil, err
			}
		}
		tlsCfg.InsecureSkipVerify = cl.Cluster.Insecure
		tlsCfg.ServerName = cl.Cluster.TLSServerName
	}
	if !found {
		return nil, bad("context %q names cluster %q, which is not in the file", ctxName, kctx.Cluster)
	}
	var token func() (string, error)
	for _, u := range kc.Users {
		if u.Name != kctx.User {
			continue
		}
		if u.User.Exec != nil || u.User.Auth != nil {
			return nil, bad("user %q uses an exec or auth-provider plugin; use a client certificate, a token or a tokenFile", u.Name)
		}
		cert, err := data(u.User.CertData, u.User.Cert, "client-certificate")
		if err != nil {
			return nil, err
		}
		key, err := data(u.User.KeyData, u.User.Key, "client-key")
		if err != nil {
			return nil, err
		}
		if cert != nil || key != nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, bad("client certificate of user %q: %w", u.Name, err)
			}
			tlsCfg.Certificates = []tls.Certificate{pair}
		}
		switch {
		case u.User.TokenFile != "":
			f := rel(u.User.TokenFile)
			token = func() (string, error) { return readToken(f) }
		case u.User.Token != "":
			t := u.User.Token
			token = func() (string, error) { return t, nil }
		}
	}
	if strings.HasPrefix(server, "https://") {
		// No certificate-authority: the system's roots, else the embedded
		// bundle (the FROM scratch image has no /etc/ssl/certs).
		if err := tlsroots.Fill(tlsCfg); err != nil {
			return nil, bad("%w", err)
		}
	}
	c, err := newClient(server, tlsCfg)
	if err != nil {
		return nil, bad("%w", err)
	}
	c.token, c.Namespace = token, kctx.Namespace
	return c, nil
}

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
