package appcheck_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// testCA is a CA made for one test, and the PEM file of its certificate.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return testCA{cert: cert, key: key, file: file}
}

// leaf issues a server certificate for the IP 127.0.0.1 and the DNS name
// app.test.
func (ca testCA) leaf(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "app.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"app.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsServer serves 200 over TLS with a leaf of ca, recording the SNI and
// Host header of the last request.
func tlsServer(t *testing.T, ca testCA) (*httptest.Server, *atomic.Value, *atomic.Value) {
	t.Helper()
	var sni, host atomic.Value
	sni.Store("")
	host.Store("")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.leaf(t)},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni.Store(h.ServerName)
			return nil, nil
		},
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are what the test provokes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &sni, &host
}

func TestHTTPS(t *testing.T) {
	ca, other := newCA(t, "ca"), newCA(t, "other")
	srv, sni, host := tlsServer(t, ca)
	addr := serverAddr(t, srv)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()

	tests := []struct {
		name     string
		edit     func(*appcheck.Options)
		plain    bool
		ok       bool
		status   int
		reason   string
		wantSNI  string
		wantHost string
	}{
		{name: "CA file, verified by IP", edit: func(o *appcheck.Options) { o.CAFile = ca.file },
			ok: true, status: 200, reason: "200 OK", wantSNI: "", wantHost: addr.String()},
		{name: "CA file and server name", edit: func(o *appcheck.Options) { o.CAFile, o.TLSServerName = ca.file, "app.test" },
			ok: true, status: 200, reason: "200 OK", wantSNI: "app.test", wantHost: "app.test"},
		{name: "server name the certificate lacks", edit: func(o *appcheck.Options) { o.CAFile, o.TLSServerName = ca.file, "other.test" },
			reason: "certificate is not valid for other.test"},
		{name: "wrong CA", edit: func(o *appcheck.Options) { o.CAFile = other.file },
			reason: "certificate signed by unknown authority"},
		{name: "system roots", reason: "certificate signed by unknown authority"},
		{name: "insecure opt-in", edit: func(o *appcheck.Options) { o.InsecureSkipVerify = true },
			ok: true, status: 200, reason: "200 OK"},
		{name: "plain HTTP server", edit: func(o *appcheck.Options) { o.CAFile = ca.file }, plain: true,
			reason: "not a TLS server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sni.Store("-")
			host.Store("-")
			c := newChecker(t, appcheck.HTTPS, tt.edit)
			target := addr
			if tt.plain {
				target = serverAddr(t, plain)
			}
			r := c.Check(t.Context(), target)
			checkResult(t, r, tt.ok, tt.status, tt.reason, "HTTPS GET /")
			if !tt.ok || tt.plain {
				return
			}
			if got := sni.Load(); tt.wantHost != "" && got != tt.wantSNI {
				t.Errorf("SNI %q, want %q", got, tt.wantSNI)
			}
			if got := host.Load(); tt.wantHost != "" && got != tt.wantHost {
				t.Errorf("Host header %q, want %q", got, tt.wantHost)
			}
		})
	}
}

// TestHTTPSRedirectByName: a redirect to the TLS server name on the same
// port is the same server: followed, and still connected to the address
// checked (app.test resolves nowhere).
func TestHTTPSRedirectByName(t *testing.T) {
	ca := newCA(t, "ca")
	var paths []string
	var srv *httptest.Server
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if r.URL.Path == "/" {
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			http.Redirect(w, r, "https://app.test:"+port+"/login", http.StatusFound)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t)}}
	srv.StartTLS()
	defer srv.Close()
	c := newChecker(t, appcheck.HTTPS, func(o *appcheck.Options) { o.CAFile, o.TLSServerName = ca.file, "app.test" })
	r := c.Check(t.Context(), serverAddr(t, srv))
	checkResult(t, r, true, 200, "200 OK", "HTTPS GET /")
	if strings.Join(paths, ",") != "/,/login" {
		t.Errorf("requests %v, want / then /login", paths)
	}
}

func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pem"), "app_check_ca_file \"" + filepath.Join(dir, "missing.pem") + "\": open"},
		{empty, "app_check_ca_file \"" + empty + "\": no PEM certificate in it"},
	} {
		o := appcheck.DefaultOptions()
		o.Kind, o.CAFile = appcheck.HTTPS, tt.file
		if _, err := appcheck.New(o); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("New with CA file %s = %v, want %q...", tt.file, err, tt.want)
		}
	}
}

// TestHTTPCanceled: the caller's context ending cuts an exchange short,
// over plain HTTP and over TLS, long before the check's deadline.
func TestHTTPCanceled(t *testing.T) {
	ca := newCA(t, "ca")
	for _, kind := range []appcheck.Kind{appcheck.HTTP, appcheck.HTTPS} {
		t.Run(string(kind), func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-r.Context().Done()
			}))
			edit := func(o *appcheck.Options) { o.Timeout, o.Interval = time.Minute, time.Minute }
			if kind == appcheck.HTTPS {
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t)}}
				srv.StartTLS()
				edit = func(o *appcheck.Options) { o.Timeout, o.Interval, o.CAFile = time.Minute, time.Minute, ca.file }
			} else {
				srv.Start()
			}
			defer srv.Close()
			c := newChecker(t, kind, edit)
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				<-arrived
				cancel()
			}()
			r := c.Check(ctx, serverAddr(t, srv))
			checkResult(t, r, false, 0, "canceled", strings.ToUpper(string(kind))+" GET /")
		})
	}
}
