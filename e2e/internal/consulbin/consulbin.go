// Package consulbin provides the Consul binary for end-to-end tests, built
// from Consul's Go module and cached between runs.
//
// The binary is built in the nested module ./toolmod, which pins
// github.com/hashicorp/consul at Version with the dependency versions Consul
// was released with. It cannot be built in the e2e module itself: that
// module also requires the bridge, whose newer consul/api (and its
// consul/sdk) no longer compiles with Consul 1.20's sources.
package consulbin

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

// Version is the Consul version built and cached.
const Version = "v1.20.6"

// Path returns the path of a cached Consul binary (consul-<Version> in
// toolbuild.CacheDir), building it on first use with `CGO_ENABLED=0 go
// build github.com/hashicorp/consul` in the pinning module, under a file
// lock so that parallel test binaries build it once. Failures are fatal to t.
func Path(t testing.TB) string {
	t.Helper()
	return tool().Path(t)
}

// CacheDir returns the cache directory Path uses.
func CacheDir() (string, error) { return toolbuild.CacheDir() }

func tool() toolbuild.Tool {
	tl := toolbuild.Tool{
		Name:    "consul",
		Version: Version,
		ModDir:  "internal/consulbin/toolmod",
		Package: "github.com/hashicorp/consul",
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		tl.SrcDir = filepath.Dir(file)
	}
	return tl
}
