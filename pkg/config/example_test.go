package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleFileDocumentsEveryKey keeps bridge.example.yaml in step with
// Keys(): every key appears, and the file with every key uncommented loads
// to the defaults.
func TestExampleFileDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../bridge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var uncommented []string
	found := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range Keys() {
			if strings.HasPrefix(line, "# "+k.Name+": ") {
				found[k.Name] = true
				uncommented = append(uncommented, strings.TrimPrefix(line, "# "))
			}
		}
	}
	for _, k := range Keys() {
		if !found[k.Name] {
			t.Errorf("bridge.example.yaml does not document %s", k.Name)
		}
	}
	path := filepath.Join(t.TempDir(), "all.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(uncommented, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := Load(Inputs{File: path})
	if err != nil {
		t.Fatalf("the example, uncommented, does not load: %v", err)
	}
	defaults, _ := Load(Inputs{})
	if fromFile.Port != defaults.Port || fromFile.Timeout != defaults.Timeout || fromFile.Message != defaults.Message ||
		fromFile.ConsulDeregAfter != defaults.ConsulDeregAfter || len(fromFile.Sinks) != 1 || fromFile.EnableSubnetScan != defaults.EnableSubnetScan {
		t.Errorf("example values differ from the defaults: %+v", fromFile)
	}
}
