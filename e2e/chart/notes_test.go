package chart_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// renderNotes renders templates/NOTES.txt, which `helm template` leaves
// out (and `helm install --dry-run` renders only with a cluster): it copies
// the chart, adds the notes as a file and a template that passes them
// through tpl, and renders only that template.
func renderNotes(t *testing.T, args ...string) string {
	t.Helper()
	src := chartDir(t)
	dst := filepath.Join(t.TempDir(), "udp-discovery-bridge")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(src, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "notes-under-test.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := "notes: |\n{{ tpl (.Files.Get \"notes-under-test.txt\") . | indent 2 }}\n"
	if err := os.WriteFile(filepath.Join(dst, "templates", "zz-notes.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := helm(t, append([]string{"template", "r", dst, "--namespace", "udb", "--show-only", "templates/zz-notes.yaml"}, args...)...)
	if err != nil {
		t.Fatalf("rendering NOTES.txt %v: %v\n%s", args, err, errOut)
	}
	var doc struct {
		Notes string `json:"notes"`
	}
	if err := yaml.Unmarshal([]byte(strings.TrimPrefix(out, "---\n# Source: udp-discovery-bridge/templates/zz-notes.yaml\n")), &doc); err != nil {
		t.Fatalf("rendered notes: %v\n%s", err, out)
	}
	return doc.Notes
}

func TestChartNotes(t *testing.T) {
	const warn = "WARNING: no interface rule is set and interfaces_skip_container is off"
	const note = "Interfaces: every LAN interface of a node that is up"
	notes := renderNotes(t)
	for _, want := range []string{note, "catalog mode, at consul-server.consul.svc:8500", "No Consul token configured"} {
		if !strings.Contains(notes, want) {
			t.Errorf("default NOTES lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, warn) {
		t.Errorf("default NOTES warn though container interfaces are skipped:\n%s", notes)
	}
	if notes := renderNotes(t, "--set", "config.interfaces_skip_container=false"); !strings.Contains(notes, warn) {
		t.Errorf("NOTES do not warn with interfaces_skip_container off and no rule:\n%s", notes)
	}
	for _, set := range []string{"config.interfaces_regex=eth[0-9]+", "config.interfaces_can_reach=10.0.0.1", "config.interfaces_cidrs={10.0.0.0/8}"} {
		if notes := renderNotes(t, "--set", "config.interfaces_skip_container=false", "--set", set); strings.Contains(notes, warn) || strings.Contains(notes, note) {
			t.Errorf("NOTES warn about interfaces though %s chooses them:\n%s", set, notes)
		}
	}
	notes = renderNotes(t, "--set", "config.interfaces_whitelist={eth1}", "--set", "config.consul_mode=agent", "--set", "consulToken.value=x")
	if strings.Contains(notes, warn) || strings.Contains(notes, note) {
		t.Errorf("NOTES warn about the interfaces though the whitelist is set:\n%s", notes)
	}
	for _, want := range []string{"agent mode, through the client agent of each node at $(HOST_IP):8500", "helm get values r"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}
}
