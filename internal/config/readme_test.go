package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeTable matches a generated key table of the README: a start marker
// naming the keys' title, the table, and the end marker.
var readmeTable = regexp.MustCompile(`(?s)(<!-- keys: ([^>]+?) \(generated: go test ./internal/config -run README -update\) -->\n)(.*?)(<!-- end of keys -->)`)

// TestREADMEKeyTables keeps the README's key tables generated from the key
// table (Schema.MarkdownTable), as bridge.example.yaml is.
func TestREADMEKeyTables(t *testing.T) {
	const file = "../../README.md"
	schema, _ := testSchema()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tables := readmeTable.FindAllSubmatch(b, -1)
	if len(tables) < 3 {
		t.Fatalf("README has %d generated key tables, want the global, discovery and sidecar ones at least", len(tables))
	}
	want := readmeTable.ReplaceAllFunc(b, func(m []byte) []byte {
		sm := readmeTable.FindSubmatch(m)
		return []byte(string(sm[1]) + schema.MarkdownTable(string(sm[2])) + string(sm[4]))
	})
	if *update {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(want) != string(b) {
		for _, m := range tables {
			if got, w := string(m[3]), schema.MarkdownTable(string(m[2])); got != w {
				t.Errorf("README table %q differs from the key table (go test ./internal/config -run README -update):\n got %s\nwant %s", m[2], got, w)
			}
		}
		if !t.Failed() && !strings.Contains(string(b), "<!-- end of keys -->") {
			t.Error("README differs")
		}
	}
}
