package prombin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPromBinaries builds (or finds cached) the Prometheus server and
// promtool and checks both are the pinned version. scripts/test.sh runs it
// in a step of its own before the end-to-end tests, so the first,
// minutes-long build does not compete with timing-sensitive tests for the
// CPU.
func TestPromBinaries(t *testing.T) {
	for name, bin := range map[string]string{"prometheus": Prometheus(t), "promtool": Promtool(t)} {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", bin, err, out)
		}
		if want := name + ", version " + Version[1:]; !strings.Contains(string(out), want) {
			t.Errorf("%s --version printed %q, want %q", bin, out, want)
		}
	}
}
