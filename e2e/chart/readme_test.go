package chart_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the values table of the chart README from values.yaml")

const (
	tableStart = "<!-- values-table:start (generated from values.yaml: cd e2e && go test ./chart -run TestChartReadmeValues -update) -->"
	tableEnd   = "<!-- values-table:end -->"
)

var (
	paramLine   = regexp.MustCompile(`^\s*## @param (\S+) (.+)$`)
	sectionLine = regexp.MustCompile(`^\s*## @section (.+)$`)
)

// valuesTable builds the README's values table from the `## @param` and
// `## @section` comments of values.yaml and the values themselves, and
// checks that the comments cover every value and name only real ones.
func valuesTable(t *testing.T) string {
	t.Helper()
	values := chartValues(t)
	f, err := os.Open(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	documented := map[string]bool{}
	open := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := sectionLine.FindStringSubmatch(sc.Text()); m != nil {
			fmt.Fprintf(&b, "\n### %s\n\n| Name | Description | Default |\n|---|---|---|\n", m[1])
			open = true
			continue
		}
		m := paramLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if !open {
			t.Fatalf("values.yaml: @param %s before any @section", m[1])
		}
		v, ok := lookup(values, m[1])
		if !ok {
			t.Errorf("values.yaml: @param %s names no value", m[1])
			continue
		}
		if documented[m[1]] {
			t.Errorf("values.yaml: @param %s twice", m[1])
		}
		documented[m[1]] = true
		def, _ := json.Marshal(v)
		fmt.Fprintf(&b, "| `%s` | %s | `%s` |\n", m[1], cell(m[2]), cell(string(def)))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, leaf := range leaves(values, "") {
		if !covered(documented, leaf) {
			missing = append(missing, leaf)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("values.yaml: %s has no ## @param comment (on itself or a parent)", p)
	}
	return strings.TrimPrefix(b.String(), "\n")
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func lookup(v map[string]any, path string) (any, bool) {
	var cur any = v
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// leaves lists the paths of the values that are not non-empty maps.
func leaves(v map[string]any, prefix string) []string {
	var out []string
	for k, x := range v {
		p := prefix + k
		if m, ok := x.(map[string]any); ok && len(m) > 0 {
			out = append(out, leaves(m, p+".")...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func covered(documented map[string]bool, path string) bool {
	for p := path; ; {
		if documented[p] {
			return true
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// TestChartReadmeValues fails when the chart README's values table differs
// from what values.yaml's comments generate; -update rewrites it.
func TestChartReadmeValues(t *testing.T) {
	table := valuesTable(t)
	path := filepath.Join(chartDir(t), "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, tableStart), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q ... %q", path, tableStart, tableEnd)
	}
	want := readme[:i] + tableStart + "\n\n" + table + "\n" + tableEnd + readme[j+len(tableEnd):]
	if want == readme {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the values table of %s", path)
		return
	}
	t.Errorf("the values table of %s is out of step with values.yaml: run\n\tcd e2e && go test ./chart -run TestChartReadmeValues -update", path)
}
