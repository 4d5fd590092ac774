package chart_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/externaldnsbin"
)

// crdFile is the chart's copy of external-dns's DNSEndpoint CRD.
const crdFile = "files/dnsendpoints.externaldns.k8s.io.yaml"

// The DNSEndpoint CRD is rendered only when dnsEndpoint.installCRD asks:
// then once, with the copied definition unchanged, the chart's labels, and
// Helm's keep policy.
func TestChartRenderDNSEndpointCRD(t *testing.T) {
	if r := render(t); len(r.crds) != 0 {
		t.Fatalf("default render has %d CRDs, want none", len(r.crds))
	}
	if r := render(t, "--set", "dnsEndpoint.installCRD=false", "--set", "config.sinks={kubernetes}"); len(r.crds) != 0 {
		t.Fatalf("installCRD=false renders %d CRDs, want none", len(r.crds))
	}
	r := render(t, "--set", "dnsEndpoint.installCRD=true")
	checkCommon(t, r, false)
	if len(r.crds) != 1 {
		t.Fatalf("installCRD=true renders %d CRDs, want 1", len(r.crds))
	}
	got := r.crds[0]
	b, err := os.ReadFile(filepath.Join(chartDir(t), crdFile))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got["spec"], want["spec"]) {
		t.Errorf("the rendered CRD's spec differs from %s", crdFile)
	}
	meta, _ := got["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	if meta["name"] != "dnsendpoints.externaldns.k8s.io" || meta["namespace"] != nil {
		t.Errorf("CRD metadata %v: want the cluster-scoped dnsendpoints.externaldns.k8s.io", meta)
	}
	if labels["app.kubernetes.io/managed-by"] != "Helm" || labels["app.kubernetes.io/instance"] != "r" {
		t.Errorf("CRD labels %v, want the chart's", labels)
	}
	if ann["helm.sh/resource-policy"] != "keep" || ann["api-approved.kubernetes.io"] == nil {
		t.Errorf("CRD annotations %v, want helm.sh/resource-policy: keep and external-dns's api-approved", ann)
	}
	if _, errOut, err := helm(t, "template", "r", chartDir(t), "--set", "dnsEndpoint.installCRD=yes"); err == nil {
		t.Error("dnsEndpoint.installCRD=yes (a string) renders, want the schema to refuse it")
	} else if !bytes.Contains([]byte(errOut), []byte("installCRD")) {
		t.Errorf("dnsEndpoint.installCRD=yes: %s, want an error naming the value", errOut)
	}
}

// The chart's copy of the CRD is byte for byte the one external-dns's own
// chart installs, at the version the lab builds (externaldnsbin.Version):
// read from the module's zip, which `go mod download` fetches from the
// module proxy (checked against go.sum's database) or finds in the cache.
func TestChartDNSEndpointCRDIsUpstream(t *testing.T) {
	mod := "sigs.k8s.io/external-dns@" + externaldnsbin.Version
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = t.TempDir() // outside any module
	// Only the zip is needed: the go command of this module's Go refuses to
	// extract a module that needs a newer Go, and must not switch toolchains.
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Zip, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Zip == "" {
		t.Fatalf("go mod download %s: %v %v %s (%s)", mod, err, jerr, out, info.Error)
	}
	zr, err := zip.OpenReader(info.Zip)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	name := mod + "/charts/external-dns/crds/dnsendpoints.externaldns.k8s.io.yaml"
	f, err := zr.Open(name)
	if err != nil {
		t.Fatalf("%s: %v", info.Zip, err)
	}
	upstream, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile(filepath.Join(chartDir(t), crdFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, upstream) {
		t.Errorf("%s differs from %s of %s", crdFile, name, info.Zip)
	}
}
