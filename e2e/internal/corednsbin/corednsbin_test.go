package corednsbin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDNSBinary builds (or finds cached) the CoreDNS binary and checks
// it is the pinned version with every plugin of Plugins. scripts/test.sh
// runs it before the end-to-end tests so the first build does not compete
// with them for the CPU.
func TestCoreDNSBinary(t *testing.T) {
	bin := Path(t)
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -version: %v\n%s", bin, err, out)
	}
	if want := "CoreDNS-" + strings.TrimPrefix(Version, "v"); !strings.Contains(string(out), want) {
		t.Fatalf("%s -version printed %q, want %s", bin, out, want)
	}
	out, err = exec.Command(bin, "-plugins").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -plugins: %v\n%s", bin, err, out)
	}
	linked := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		linked[l] = true
	}
	for _, p := range Plugins {
		if !linked[p] {
			t.Errorf("%s -plugins:\n%s\nwant the %s plugin", bin, out, p)
		}
	}
}
