package k8s_test

import (
	"os"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/dockerimg"
)

// TestMain removes the bridge binaries and the image built for this test
// binary, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	dockerimg.Cleanup()
	bridgebin.Cleanup()
	os.Exit(code)
}
