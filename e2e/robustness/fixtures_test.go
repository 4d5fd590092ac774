package robustness_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/history"
)

// TestRobustnessFixtures judges every history a failing run kept under
// testdata/ (etcd's test-robustness-issueNNNN): the checker's verdict
// must still be the one saved beside it, so a regression a run found stays
// covered without the lab. Removing the bug does not change the verdict of
// its history: the history is what the buggy bridge did.
func TestRobustnessFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		t.Run(name, func(t *testing.T) {
			in, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			events, err := history.Read(in)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".jsonl") + ".verdict.txt")
			if err != nil {
				t.Fatal(err)
			}
			if got := history.Check(events).String(); got != string(want) {
				t.Errorf("%s: verdict changed:\n--- got\n%s\n--- want\n%s", f, got, want)
			}
		})
	}
}
