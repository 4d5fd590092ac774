package config_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// keyTable matches a generated key table of the documentation: a start
// marker naming the keys' title, the table, and the end marker. The marker
// may name any generating command (an older one included): the test
// rewrites it to keyTableCmd.
var keyTable = regexp.MustCompile(`(?s)(<!-- keys: ([^>]+?) \(generated: [^)]*\) -->\n)(.*?)(<!-- end of keys -->)`)

// keyTableCmd is the command the start marker names.
const keyTableCmd = "go test ./internal/config -run KeyTables -update"

// keyTableDocs are the pages that may hold key tables: README.md and every
// page under docs/.
func keyTableDocs(t *testing.T) []string {
	t.Helper()
	files := []string{"../../README.md"}
	err := filepath.WalkDir("../../docs", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDocsKeyTables keeps the documentation's key tables generated from the
// key table (Schema.MarkdownTable), as bridge.example.yaml is, and wants
// every title of keys (Global, Discovery, Sidecar, each sink's) to have its
// table in a page under docs/.
func TestDocsKeyTables(t *testing.T) {
	schema, _ := testSchema()
	var titles []string
	for _, k := range schema.Keys() {
		if !slices.Contains(titles, k.Title()) {
			titles = append(titles, k.Title())
		}
	}
	documented := map[string]bool{}
	for _, file := range keyTableDocs(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tables := keyTable.FindAllSubmatch(b, -1)
		want := keyTable.ReplaceAllFunc(b, func(m []byte) []byte {
			sm := keyTable.FindSubmatch(m)
			return []byte("<!-- keys: " + string(sm[2]) + " (generated: " + keyTableCmd + ") -->\n" +
				schema.MarkdownTable(string(sm[2])) + string(sm[4]))
		})
		for _, m := range tables {
			title := string(m[2])
			if !slices.Contains(titles, title) {
				t.Errorf("%s: key table %q: no key has that title (want one of %s)", file, title, strings.Join(titles, ", "))
			}
			if strings.HasPrefix(file, "../../docs/") {
				documented[title] = true
			}
		}
		if string(want) == string(b) {
			continue
		}
		if *update {
			if err := os.WriteFile(file, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, m := range tables {
			if got, w := string(m[3]), schema.MarkdownTable(string(m[2])); got != w {
				t.Errorf("%s: key table %q differs from the key table (%s, or make generate):\n got %s\nwant %s", file, m[2], keyTableCmd, got, w)
			}
		}
		if !t.Failed() {
			t.Errorf("%s: a key table's marker does not name %q (%s, or make generate)", file, keyTableCmd, keyTableCmd)
		}
	}
	for _, title := range titles {
		if !documented[title] {
			t.Errorf("no page under docs/ has the key table %q: add `<!-- keys: %s (generated: %s) -->` and `<!-- end of keys -->` where its keys are explained, then run it", title, title, keyTableCmd)
		}
	}
}
