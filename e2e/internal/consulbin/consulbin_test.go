package consulbin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestConsulBinary builds (or finds cached) the Consul binary and checks it
// is the pinned version. scripts/test.sh runs it before the end-to-end tests
// so the first, minutes-long build does not compete with timing-sensitive
// tests for the CPU.
func TestConsulBinary(t *testing.T) {
	bin := Path(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	if want := "Consul " + Version; !strings.Contains(string(out), want) {
		t.Fatalf("%s version printed %q, want %q", bin, out, want)
	}
}
