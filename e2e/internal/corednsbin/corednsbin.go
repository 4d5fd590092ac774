// Package corednsbin provides a CoreDNS binary for end-to-end tests, built
// from CoreDNS's Go module and cached between runs: the main package of the
// nested module ./toolmod, which pins github.com/coredns/coredns at Version
// and links only the plugins of Plugins.
package corednsbin

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

// Version is the CoreDNS version built and cached.
const Version = "v1.15.0"

// Plugins are the plugins toolmod links, in the order of its plugin chain
// (its imports and dnsserver.Directives; TestCoreDNSBinary checks the built
// binary has each). They name the cached binary, so that one built with
// another set (before hosts joined them, say) is never used.
var Plugins = []string{"errors", "log", "hosts", "kubernetes"}

// Path returns the path of the cached binary
// (coredns-<Plugins...>-<Version> in toolbuild.CacheDir), building it on
// first use under a file lock. Failures are fatal to t.
func Path(t testing.TB) string {
	t.Helper()
	tl := toolbuild.Tool{
		Name:    "coredns-" + strings.Join(Plugins, "-"),
		Version: Version,
		ModDir:  "internal/corednsbin/toolmod",
		Package: "github.com/udp-discovery-bridge/bridge/e2e/internal/corednsbin/toolmod",
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		tl.SrcDir = filepath.Dir(file)
	}
	return tl.Path(t)
}
