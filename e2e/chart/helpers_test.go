// Package chart_test tests the Helm chart charts/udp-discovery-bridge with a
// real helm binary (internal/helmbin): lint, strict decoding of every
// rendered document into the Kubernetes API types, the values schema, the
// environment variable names against the bridge's key table, and the
// chart README's values table.
package chart_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/helmbin"
)

// repoRoot is the root of the bridge repository (two levels above this
// package's directory, where `go test` runs it).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bridge.example.yaml")); err != nil {
		t.Fatalf("repository root not found from the test's directory: %v", err)
	}
	return root
}

func chartDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "charts", "udp-discovery-bridge")
}

// helm runs the helm binary with its state directories in a temporary
// directory, so the user's repositories and plugins play no part.
func helm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := helmbin.Path(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// template renders the chart as release "r" in namespace "udb" with the
// given extra helm arguments (--set ..., -f ...), failing t on an error.
func template(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := helm(t, append([]string{"template", "r", chartDir(t), "--namespace", "udb"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// splitDocs splits a multi-document YAML stream into JSON documents,
// skipping empty ones.
func splitDocs(t testing.TB, stream string) [][]byte {
	t.Helper()
	var docs [][]byte
	for _, part := range strings.Split("\n"+stream, "\n---") {
		js, err := yaml.YAMLToJSON([]byte(part))
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, part)
		}
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
			continue
		}
		docs = append(docs, js)
	}
	return docs
}

// decodeStrict decodes js into v, failing on any field v's type does not
// have and on trailing data.
func decodeStrict(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return &json.SyntaxError{}
	}
	return nil
}

// writeValues writes a values file into a temporary directory.
func writeValues(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
