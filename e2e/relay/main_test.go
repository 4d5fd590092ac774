// Package relay_test runs the relay (issue 32) end to end: stock-style
// clients on a segment without a server finding the servers of two
// others, routed segments in network namespaces, a real three-server
// Consul with ACLs on, forged and off-link probes, a flood, encrypted
// mode, and what the kernel does when the relay and a stock server share
// port 9999 on one host.
package relay_test

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
