package robustness_test

import (
	"os"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
)

// TestMain removes the bridge binary built for this test binary, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	bridgebin.Cleanup()
	os.Exit(code)
}
