package helmbin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHelmBinary builds (or finds cached) the Helm binary and checks it is
// the pinned version. scripts/test.sh runs it before the end-to-end tests so
// the first, minutes-long build does not compete with timing-sensitive tests
// for the CPU.
func TestHelmBinary(t *testing.T) {
	bin := Path(t)
	out, err := exec.Command(bin, "version", "--short").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	if !strings.HasPrefix(strings.TrimSpace(string(out)), Version) {
		t.Fatalf("%s version --short printed %q, want %s", bin, out, Version)
	}
}
