package history

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeNamesInvariants: the README defines every invariant, under
// its name, in the order of Invariants.
func TestReadmeNamesInvariants(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for _, inv := range Invariants {
		i := strings.Index(string(b), "\n### "+inv+"\n")
		if i < 0 {
			t.Errorf("README.md has no section %q", "### "+inv)
		}
		if i < last {
			t.Errorf("README.md defines %s out of the order of Invariants", inv)
		}
		last = i
	}
}
