package tlsroots_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/tlsroots"
)

// The system pool is loaded once per process, so each case runs in a child
// process whose SSL_CERT_FILE and SSL_CERT_DIR say what the system holds.
const childEnv = "TLSROOTS_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "none":
		// A system without roots (the FROM scratch image): the bundle.
		p, err := tlsroots.Pool()
		fb, ferr := tlsroots.Fallback()
		if err != nil || ferr != nil || !p.Equal(fb) || p.Equal(x509.NewCertPool()) {
			println("want the embedded bundle:", err, ferr)
			os.Exit(1)
		}
	case "own":
		// A system with roots of its own: those, not the bundle.
		p, err := tlsroots.Pool()
		want := x509.NewCertPool()
		b, _ := os.ReadFile(os.Getenv("SSL_CERT_FILE"))
		want.AppendCertsFromPEM(b)
		if err != nil || !p.Equal(want) {
			println("want the system's one root:", err)
			os.Exit(1)
		}
	}
	os.Exit(0)
}

func child(t *testing.T, mode, certFile string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "SSL_CERT_FILE="+certFile, "SSL_CERT_DIR="+filepath.Join(t.TempDir(), "none"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mode, err, out)
	}
}

func TestPoolWithoutSystemRootsIsTheBundle(t *testing.T) {
	child(t, "none", filepath.Join(t.TempDir(), "absent.pem"))
}

func TestPoolPrefersTheSystemRoots(t *testing.T) {
	f := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(f, selfSigned(t), 0o600); err != nil {
		t.Fatal(err)
	}
	child(t, "own", f)
}

func TestFallbackHoldsTheBundle(t *testing.T) {
	p, err := tlsroots.Fallback()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Subjects()); n < 100 { //nolint:staticcheck // a counted, non-system pool
		t.Fatalf("bundle has %d roots, want > 100", n)
	}
}

func TestFillLeavesGivenRootsAndInsecureAlone(t *testing.T) {
	own := x509.NewCertPool()
	for _, tc := range []struct {
		name     string
		cfg      *tls.Config
		wantNil  bool
		wantSame bool
	}{
		{"roots given", &tls.Config{RootCAs: own}, false, true},
		{"verification off", &tls.Config{InsecureSkipVerify: true}, true, false},
		{"none given", &tls.Config{}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tlsroots.Fill(tc.cfg); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantNil && tc.cfg.RootCAs != nil:
				t.Fatal("RootCAs set although verification is off")
			case !tc.wantNil && tc.cfg.RootCAs == nil:
				t.Fatal("RootCAs still nil")
			case tc.wantSame && tc.cfg.RootCAs != own:
				t.Fatal("the given roots were replaced")
			}
		})
	}
	if err := tlsroots.Fill(nil); err != nil {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "udb test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
