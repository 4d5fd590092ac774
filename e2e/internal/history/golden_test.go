package history

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.verdict.txt from Check")

// TestFixtures checks every history in testdata (the hand-written ones and
// those SaveFixture kept) against its golden verdict.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".jsonl")
		t.Run(name, func(t *testing.T) {
			events := readFile(t, file)
			v := Check(events)
			golden := strings.TrimSuffix(file, ".jsonl") + ".verdict.txt"
			if *update {
				if err := os.WriteFile(golden, []byte(v.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got := v.String(); got != string(want) {
				t.Errorf("verdict of %s:\n%s\nwant (%s):\n%s", file, got, golden, want)
			}
			// Each violating fixture is named after the invariant it
			// breaks, and breaks only that one.
			if name == "clean" {
				if !v.OK() {
					t.Errorf("the clean history has violations:\n%s", v)
				}
				return
			}
			for inv := range v.Summary.Violations {
				if inv != name && !strings.HasPrefix(name, "robustness-") {
					t.Errorf("%s breaks %s", name, inv)
				}
			}
			if v.Summary.Violations[name] == 0 && !strings.HasPrefix(name, "robustness-") {
				t.Errorf("%s does not break %s:\n%s", name, name, v)
			}
		})
	}
}

func readFile(t *testing.T, file string) []Event {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	events, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return events
}

func TestSaveFixture(t *testing.T) {
	dir := t.TempDir() + "/testdata"
	events := testHist().steady().reads(3, 5, 1, all).events()
	v := Check(events)
	if err := SaveFixture(dir, "robustness-issue0001", events, v); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dir + "/robustness-issue0001.verdict.txt"); err != nil || string(b) != v.String() {
		t.Errorf("verdict file %q, %v; want %q", b, err, v.String())
	}
	got := readFile(t, dir+"/robustness-issue0001.jsonl")
	if Check(got).String() != v.String() {
		t.Errorf("the saved history judges differently:\n%s\nwant\n%s", Check(got), v)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if err := SaveFixture(dir, bad, events, v); err == nil {
			t.Errorf("SaveFixture(%q): no error", bad)
		}
	}
}
