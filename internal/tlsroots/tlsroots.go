// Package tlsroots gives a TLS client the roots to verify a server against
// when it was given none: the system's, or, where the system has none (the
// FROM scratch container image has no /etc/ssl/certs), Mozilla's bundle as
// embedded by golang.org/x/crypto/x509roots/fallback.
//
// The bundle is parsed only by the client that needs it. Importing the
// fallback package instead would parse its ~150 certificates at start-up in
// every process (about 1 MiB of heap for the process's life), TLS or not.
package tlsroots

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Pool returns the system's roots, or the embedded bundle when the system
// has none (or they cannot be read).
func Pool() (*x509.CertPool, error) {
	if sys, err := x509.SystemCertPool(); err == nil && !sys.Equal(x509.NewCertPool()) {
		return sys, nil
	}
	return Fallback()
}

// Fallback parses the embedded bundle.
func Fallback() (*x509.CertPool, error) {
	p := x509.NewCertPool()
	for c := range bundle.Roots() {
		cert, err := x509.ParseCertificate(c.Certificate)
		if err != nil {
			return nil, fmt.Errorf("embedded root bundle: %w", err)
		}
		if c.Constraint == nil {
			p.AddCert(cert)
		} else {
			p.AddCertWithConstraint(cert, c.Constraint)
		}
	}
	return p, nil
}

// Fill sets cfg.RootCAs to Pool() when cfg verifies the server's
// certificate and names no roots of its own; otherwise it leaves cfg alone.
func Fill(cfg *tls.Config) error {
	if cfg == nil || cfg.RootCAs != nil || cfg.InsecureSkipVerify {
		return nil
	}
	p, err := Pool()
	if err != nil {
		return err
	}
	cfg.RootCAs = p
	return nil
}
