package consulclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/secretfile"
	"github.com/udp-discovery-bridge/bridge/internal/tlsroots"
)

// ClientConfig says how to reach Consul. Empty fields fall back to
// consul/api's defaults, which honour CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT,
// CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME and CONSUL_HTTP_SSL_VERIFY.
type ClientConfig struct {
	// Addr is the HTTP address (host:port, or a URL with scheme;
	// consul_addr). Several comma-separated host:port addresses (Consul
	// servers, in catalog mode) are tried in turn: a connection goes to the
	// last one that answered, and on to the next when it does not. A name
	// with several addresses gets the same from Go's dialer. SSL
	// (consul_ssl) switches to https.
	Addr string
	SSL  bool
	// Token is the ACL token (consul_token); TokenFile a file holding it
	// (consul_token_file; it wins over Token, like consul's -token-file).
	// Neither ever appears in logs or errors.
	Token     string
	TokenFile string
	// TLS: consul_cacert, consul_client_cert, consul_client_key,
	// consul_tls_server_name. InsecureSkipVerify is for Go callers only.
	CACert             string
	ClientCert         string
	ClientKey          string
	TLSServerName      string
	InsecureSkipVerify bool
	// Datacenter, Namespace and Partition are passed through to Consul
	// (consul_datacenter, consul_namespace, consul_partition).
	Datacenter string
	Namespace  string
	Partition  string
}

// Client is a consul/api client with the token it sends, so that every
// error it returns can be redacted.
type Client struct {
	API *api.Client
	// Addr is the address the client talks to, for messages.
	Addr string
	red  redactor
}

// NewClient builds the client: api.DefaultConfig (the CONSUL_* environment)
// overridden by the non-empty fields of c. A token file is read here, so
// that a missing or empty one is an error naming the path (never the
// content), and then by every request whenever it changed (rotation, see
// tokenFile), so a rotated token is used without a restart. It makes no
// network call.
func (c ClientConfig) NewClient() (*Client, error) {
	ac, token, tf, err := c.apiConfig()
	if err != nil {
		return nil, err
	}
	red := redactor{secrets: func() []string { return []string{token} }}
	// Rate-limit answers are noted for the requests that ask (see
	// rateLimitTransport); consul/api would lose their status.
	hc, err := api.NewHttpClient(ac.Transport, ac.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", ac.Address, red.err(err))
	}
	if err := fillRoots(hc.Transport, ac); err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", ac.Address, err)
	}
	hc.Transport = rateLimitTransport{base: hc.Transport}
	if tf != nil && !strings.HasPrefix(ac.Address, "unix://") {
		hc.Transport = &tokenTransport{base: hc.Transport, file: tf}
		red = redactor{secrets: tf.secrets}
	}
	hc.Transport = streamTransport{base: hc.Transport} // catalog reads entry by entry (StreamArray)
	ac.HttpClient = hc
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", ac.Address, red.err(err))
	}
	return &Client{API: client, Addr: ac.Address, red: red}, nil
}

// fillRoots gives an https client without --consul-cacert the system's
// roots, else the embedded bundle (the FROM scratch image has no
// /etc/ssl/certs); a plain-http client loads no roots at all.
func fillRoots(tr http.RoundTripper, ac *api.Config) error {
	t, ok := tr.(*http.Transport)
	if !ok || (ac.Scheme != "https" && !strings.HasPrefix(ac.Address, "https://")) {
		return nil
	}
	return tlsroots.Fill(t.TLSClientConfig)
}

// Redact returns err with the token, should it appear, replaced by
// "[redacted]"; errors.Is/As still see the original.
func (c *Client) Redact(err error) error { return c.red.err(err) }

// apiConfig builds the consul/api configuration and returns the resolved
// token, and the token file it came from (nil when none).
func (c ClientConfig) apiConfig() (*api.Config, string, *tokenFile, error) {
	ac := api.DefaultConfig()
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	addrs := splitAddrs(c.Addr)
	if len(addrs) > 0 {
		ac.Address = addrs[0]
	}
	// Keep as many idle connections as writes in flight (the default keeps
	// GOMAXPROCS+1 and closes the rest after each request).
	if ac.Transport == nil {
		ac.Transport = cleanhttp.DefaultPooledTransport()
	}
	ac.Transport.MaxIdleConnsPerHost = 16
	if len(addrs) > 1 {
		for _, a := range addrs {
			if strings.Contains(a, "://") {
				return nil, "", nil, fmt.Errorf("consul_addr %q: several addresses must be host:port (use consul_ssl for https)", c.Addr)
			}
		}
		ac.Transport.DialContext = (&failoverDialer{addrs: addrs}).DialContext
	}
	if c.SSL {
		ac.Scheme = "https"
	}
	set(&ac.Datacenter, c.Datacenter)
	set(&ac.Namespace, c.Namespace)
	set(&ac.Partition, c.Partition)
	set(&ac.TLSConfig.CAFile, c.CACert)
	set(&ac.TLSConfig.CertFile, c.ClientCert)
	set(&ac.TLSConfig.KeyFile, c.ClientKey)
	set(&ac.TLSConfig.Address, c.TLSServerName)
	if c.InsecureSkipVerify {
		ac.TLSConfig.InsecureSkipVerify = true
	}

	// Token precedence, as in the consul CLI: token file option, token
	// option, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_TOKEN.
	token := ac.Token // CONSUL_HTTP_TOKEN
	var tf *tokenFile
	var err error
	switch {
	case c.TokenFile != "":
		tf, err = newTokenFile("consul_token_file", c.TokenFile)
	case c.Token != "":
		token = c.Token
	case ac.TokenFile != "":
		tf, err = newTokenFile(api.HTTPTokenFileEnvName, ac.TokenFile)
	}
	if err != nil {
		return nil, "", nil, err
	}
	if tf != nil {
		token = tf.current()
	}
	ac.Token = token
	ac.TokenFile = ""
	return ac, token, tf, nil
}

// splitAddrs splits a comma-separated address list, dropping empty parts.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// failoverDialer dials the first of addrs that answers, starting with the
// last one that did, whatever address the HTTP client asked for.
type failoverDialer struct {
	addrs []string
	mu    sync.Mutex
	good  int
}

// failoverAttempt bounds one connection attempt, so a server that is gone
// (no RST, packets dropped) costs at most this before the next is tried.
const failoverAttempt = 2 * time.Second

func (f *failoverDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	f.mu.Lock()
	start := f.good
	f.mu.Unlock()
	var errs []error
	for i := range f.addrs {
		k := (start + i) % len(f.addrs)
		actx, cancel := context.WithTimeout(ctx, failoverAttempt)
		conn, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(actx, network, f.addrs[k])
		cancel()
		if err == nil {
			f.mu.Lock()
			f.good = k
			f.mu.Unlock()
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no consul address answered: %w", errors.Join(errs...))
}

// readTokenFile reads a token from path; key names the setting for errors.
func readTokenFile(key, path string) (string, error) {
	return secretfile.Read(key, path)
}

// redactor hides secrets (every token the client used) in error strings.
type redactor struct{ secrets func() []string }

// redactedError carries the redacted message of an error and still unwraps
// to it, so errors.Is/As keep working.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// err returns err with every occurrence of the secret replaced by
// "[redacted]". consul/api sends the token in a header, so it should never
// appear in an error; this is the belt to those braces.
func (r redactor) err(err error) error {
	if err == nil || r.secrets == nil {
		return err
	}
	msg := err.Error()
	red := msg
	for _, s := range r.secrets() {
		if s != "" {
			red = strings.ReplaceAll(red, s, "[redacted]")
		}
	}
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}
