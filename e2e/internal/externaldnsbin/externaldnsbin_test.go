package externaldnsbin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestExternalDNSBinary builds (or finds cached) the external-dns binary and
// checks it is the pinned version with the flags the DNSEndpoint tests use.
// scripts/test.sh runs it before the end-to-end tests so the first,
// minutes-long build does not compete with them for the CPU.
func TestExternalDNSBinary(t *testing.T) {
	bin := Path(t)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != Version {
		t.Fatalf("%s --version printed %q, want %s", bin, got, Version)
	}
	out, err = exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	for _, flag := range []string{"--crd-source-apiversion", "--rfc2136-tsig-secret", "--label-filter"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("%s --help lacks %s", bin, flag)
		}
	}
}
