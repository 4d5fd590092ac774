package config_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite bridge.example.yaml from the key table")

// TestExampleFileDocumentsEveryKey keeps bridge.example.yaml in step with
// Keys(): every key appears, and the file with every key uncommented loads
// to the defaults.
func TestExampleFileDocumentsEveryKey(t *testing.T) {
	const file = "../../bridge.example.yaml"
	schema0, _ := testSchema()
	if *update {
		if err := os.WriteFile(file, schema0.Example(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, schema0.Example()) {
		t.Errorf("%s is not what the key table generates; run: go test ./internal/config -run Example -update", file)
	}
	schema, _ := testSchema()
	keys := schema.Keys()
	var uncommented []string
	found := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range keys {
			if strings.HasPrefix(line, "# "+k.Name+": ") {
				found[k.Name] = true
				uncommented = append(uncommented, strings.TrimPrefix(line, "# "))
			}
		}
	}
	for _, k := range keys {
		if !found[k.Name] {
			t.Errorf("bridge.example.yaml does not document %s", k.Name)
		}
	}
	path := filepath.Join(t.TempDir(), "all.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(uncommented, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	schema, sec := testSchema()
	fromFile, err := schema.Load(Inputs{File: path})
	if err != nil {
		t.Fatalf("the example, uncommented, does not load: %v", err)
	}
	fileDereg := sec.Config().DeregisterAfter
	defaults, _ := schema.Load(Inputs{})
	if !reflect.DeepEqual(fromFile.Discovery, defaults.Discovery) || fromFile.Interval != defaults.Interval ||
		fileDereg != sec.Config().DeregisterAfter || len(fromFile.Sinks) != 1 {
		t.Errorf("example values differ from the defaults: %+v", fromFile)
	}
}
