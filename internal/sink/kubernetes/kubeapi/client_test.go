package kubeapi

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A kubeconfig with a tokenFile: the token is read on every request, so a
// rotated token is used at the next one without a restart, and no error
// carries it.
func TestKubeconfigTokenFileRotation(t *testing.T) {
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"kind":"Status","reason":"Forbidden","message":"leases is forbidden","code":403}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	kc := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ` + srv.URL + `
    certificate-authority-data: ` + base64.StdEncoding.EncodeToString(ca) + `
users:
- name: u
  user:
    tokenFile: token
contexts:
- name: x
  context: {cluster: c, user: u, namespace: lab}
current-context: x
`
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("kubeconfig", kc)
	write("token", "first-secret\n")
	c, err := NewClient(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "lab" {
		t.Errorf("namespace %q, want the context's lab", c.Namespace)
	}
	o := c.Objects("lab")
	var l Lease
	err = o.Get(context.Background(), Leases, "x", &l)
	write("token", "second-secret\n")
	err2 := o.Get(context.Background(), Leases, "x", &l)
	if want := []string{"Bearer first-secret", "Bearer second-secret"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("authorization headers %q, want %q", seen, want)
	}
	for _, e := range []error{err, err2} {
		if e == nil || strings.Contains(e.Error(), "secret") || !strings.Contains(e.Error(), "403") {
			t.Errorf("error %v: want the 403, never the token", e)
		}
	}
}

// In a pod: the service account's token, CA and namespace; outside one
// (no KUBERNETES_SERVICE_HOST) a clear error naming --kubeconfig.
func TestInCluster(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for name, v := range map[string][]byte{"ca.crt": ca, "token": []byte("tok"), "namespace": []byte("bridges\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
	c, err := inCluster(func(k string) string { return env[k] }, dir)
	if err != nil || c.Namespace != "bridges" || c.base.Host != "10.96.0.1:443" {
		t.Fatalf("in-cluster client %+v, %v", c, err)
	}
	if _, err := inCluster(func(string) string { return "" }, dir); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("outside a cluster: %v", err)
	}
}

// Exec and auth-provider plugins are refused with a clear error: the image
// has no programs to run.
func TestKubeconfigExecRefused(t *testing.T) {
	dir := t.TempDir()
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]
users: [{name: u, user: {exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	p := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(p); err == nil || !strings.Contains(err.Error(), "exec") {
		t.Fatalf("kubeconfig with an exec plugin: %v, want refused", err)
	}
}
