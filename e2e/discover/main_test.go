package discover_test

import (
	"os"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/forge"
)

// TestMain removes the bridge and forger binaries built for this test
// binary, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	bridgebin.Cleanup()
	forge.Cleanup()
	os.Exit(code)
}
