package consulclient

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// TestFailoverDialer: the dialer skips an address that refuses, sticks to
// the one that answered, and names every failure when none answers.
func TestFailoverDialer(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more: connections are refused
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	f := &failoverDialer{addrs: []string{deadAddr, live.Addr().String()}}
	for range 2 {
		c, err := f.DialContext(context.Background(), "tcp", "ignored:8500")
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if c.RemoteAddr().String() != live.Addr().String() {
			t.Errorf("connected to %s, want %s", c.RemoteAddr(), live.Addr())
		}
		c.Close()
	}
	if f.good != 1 {
		t.Errorf("preferred address index = %d, want 1 (the one that answered)", f.good)
	}
	f = &failoverDialer{addrs: []string{deadAddr, deadAddr}}
	if _, err := f.DialContext(context.Background(), "tcp", "x:1"); err == nil {
		t.Fatal("dial succeeded with no live address")
	}
}

func TestClientConfigSeveralAddrs(t *testing.T) {
	ac, _, _, err := ClientConfig{Addr: "10.0.0.1:8500, 10.0.0.2:8500"}.apiConfig()
	if err != nil || ac.Address != "10.0.0.1:8500" || ac.Transport == nil || ac.Transport.DialContext == nil {
		t.Fatalf("apiConfig = %+v, %v", ac, err)
	}
	if _, _, _, err := (ClientConfig{Addr: "https://a:8501,https://b:8501"}).apiConfig(); err == nil {
		t.Fatal("URLs in a list accepted")
	}
}

// TestFillRoots: an https client without a CA file gets roots (the
// system's or the embedded bundle), one with a CA file keeps its own, and a
// plain-http client loads none.
func TestFillRoots(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	own := x509.NewCertPool()
	own.AddCert(srv.Certificate())
	for _, tc := range []struct {
		name, scheme, addr, caFile string
		want                       func(*x509.CertPool) bool
	}{
		{"https, no CA file", "https", "127.0.0.1:8501", "", func(p *x509.CertPool) bool { return p != nil && !p.Equal(x509.NewCertPool()) }},
		{"https address, no CA file", "http", "https://127.0.0.1:8501", "", func(p *x509.CertPool) bool { return p != nil }},
		{"https, CA file", "https", "127.0.0.1:8501", ca, func(p *x509.CertPool) bool { return p.Equal(own) }},
		{"http", "http", "127.0.0.1:8500", "", func(p *x509.CertPool) bool { return p == nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac := api.DefaultNonPooledConfig()
			ac.Scheme, ac.Address, ac.TLSConfig.CAFile = tc.scheme, tc.addr, tc.caFile
			hc, err := api.NewHttpClient(ac.Transport, ac.TLSConfig)
			if err != nil {
				t.Fatal(err)
			}
			if err := fillRoots(hc.Transport, ac); err != nil {
				t.Fatal(err)
			}
			if got := hc.Transport.(*http.Transport).TLSClientConfig.RootCAs; !tc.want(got) {
				t.Fatalf("RootCAs: %v", got)
			}
		})
	}
}

func TestConsulTokenFile(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  s3cr3t-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cfg       ClientConfig
		env       map[string]string
		wantToken string
		wantErr   string
	}{
		{"token file", ClientConfig{TokenFile: good}, nil, "s3cr3t-token", ""},
		{"token file wins over token", ClientConfig{TokenFile: good, Token: "other"}, nil, "s3cr3t-token", ""},
		{"token", ClientConfig{Token: "tok"}, nil, "tok", ""},
		{"env token file", ClientConfig{}, map[string]string{"CONSUL_HTTP_TOKEN_FILE": good, "CONSUL_HTTP_TOKEN": "envtok"}, "s3cr3t-token", ""},
		{"env token", ClientConfig{}, map[string]string{"CONSUL_HTTP_TOKEN": "envtok"}, "envtok", ""},
		{"option beats env", ClientConfig{Token: "tok"}, map[string]string{"CONSUL_HTTP_TOKEN_FILE": good}, "tok", ""},
		{"missing file", ClientConfig{TokenFile: filepath.Join(dir, "nope")}, nil, "", "consul_token_file"},
		{"empty file", ClientConfig{TokenFile: empty}, nil, "", "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ac, tok, _, err := tt.cfg.apiConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("apiConfig() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok != tt.wantToken || ac.Token != tt.wantToken || ac.TokenFile != "" {
				t.Errorf("token = %q (api %q, file %q), want %q", tok, ac.Token, ac.TokenFile, tt.wantToken)
			}
		})
	}
}

func TestConsulRedact(t *testing.T) {
	base := errors.New(`Put "http://127.0.0.1:8500/v1/agent/service/register?token=s3cr3t": dial tcp: refused`)
	r := redactor{secrets: func() []string { return []string{"s3cr3t"} }}
	got := r.err(base)
	if strings.Contains(got.Error(), "s3cr3t") {
		t.Errorf("redacted error still has the secret: %v", got)
	}
	if !strings.Contains(got.Error(), "[redacted]") {
		t.Errorf("redacted error = %v, want [redacted]", got)
	}
	if !errors.Is(got, base) {
		t.Errorf("redacted error does not unwrap to the original")
	}
	clean := errors.New("connection refused")
	if r.err(clean) != clean { //nolint:errorlint // the very same error value, unwrapped
		t.Errorf("an error without the secret must be returned unchanged")
	}
	if (redactor{}).err(base) != base { //nolint:errorlint // the very same error value, unwrapped
		t.Errorf("an empty secret must not redact")
	}
	if r.err(nil) != nil {
		t.Errorf("nil must stay nil")
	}
}
