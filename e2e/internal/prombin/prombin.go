// Package prombin provides the Prometheus server and promtool binaries for
// end-to-end tests, built from Prometheus's Go module and cached between
// runs.
//
// Both are built in the nested module ./toolmod, which pins
// github.com/prometheus/prometheus at Version (Go module versions v0.3xx.y
// are Prometheus releases 3.xx.y) as tool dependencies, with the
// dependency versions Prometheus was released with, so its large
// dependency tree (Kubernetes and cloud SDKs for its service discoveries)
// never moves the e2e module's. The server is built without the web UI's
// assets (no builtinassets tag): the tests use its HTTP API only.
package prombin

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

// Version is the github.com/prometheus/prometheus module version built and
// cached.
const Version = "v0.316.0"

// Prometheus returns the path of a cached Prometheus server binary
// (prometheus-<Version> in toolbuild.CacheDir), building it on first use
// under a file lock. Failures are fatal to t.
func Prometheus(t testing.TB) string {
	t.Helper()
	return tool("prometheus").Path(t)
}

// Promtool returns the path of a cached promtool binary
// (promtool-<Version>), building it on first use. Failures are fatal to t.
func Promtool(t testing.TB) string {
	t.Helper()
	return tool("promtool").Path(t)
}

// tool is the build of cmd/<name> of the pinned module, stamped with
// Version as Prometheus's release build does (--version prints it).
func tool(name string) toolbuild.Tool {
	tl := toolbuild.Tool{
		Name:    name,
		Version: Version,
		ModDir:  "internal/prombin/toolmod",
		Package: "github.com/prometheus/prometheus/cmd/" + name,
		LDFlags: "-s -w -X github.com/prometheus/common/version.Version=" + Version[1:],
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		tl.SrcDir = filepath.Dir(file)
	}
	return tl
}
