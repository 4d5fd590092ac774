package kubeapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/udp-discovery-bridge/bridge/internal/secretfile"
	"github.com/udp-discovery-bridge/bridge/internal/tlsroots"
)

// This file is where a Client's server, TLS and credentials come from: the
// in-cluster service account or a kubeconfig file.

// The in-cluster service account's files (mounted when
// automountServiceAccountToken is true).
const (
	saDir = "/var/run/secrets/kubernetes.io/serviceaccount"
)

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
	c, err := NewClientAt("https://"+net.JoinHostPort(host, port), tlsCfg)
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
	c, err := NewClientAt(server, tlsCfg)
	if err != nil {
		return nil, bad("%w", err)
	}
	c.token, c.Namespace = token, kctx.Namespace
	return c, nil
}
