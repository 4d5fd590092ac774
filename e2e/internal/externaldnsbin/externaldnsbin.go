// Package externaldnsbin provides the external-dns binary for end-to-end
// tests, built from its Go module (sigs.k8s.io/external-dns, its stock main
// package with every source and provider) and cached between runs.
//
// The binary is built in the nested module ./toolmod, which pins
// sigs.k8s.io/external-dns at Version with the dependency versions it was
// released with, so its Kubernetes and cloud SDK trees never move the e2e
// module's. Two facts of the module proxy shape that module:
//
//   - external-dns v0.23.0 needs Go 1.27: only ./toolmod's go.mod says so,
//     and the build sets GOTOOLCHAIN=Toolchain, which the go command fetches
//     from the module proxy once (about 76 MB). Run `go mod tidy` there with
//     the same GOTOOLCHAIN exported.
//   - The proxy refuses two of its dependencies at the versions it names
//     (github.com/civo/civogo v0.7.3 and github.com/openshift/api
//     v0.0.0-20260819011109-af5c920502e2: "This module version is not
//     available"), so ./toolmod replaces them with the nearest served ones
//     (civogo v0.7.2; openshift/api v0.0.0-20261002101753-2d7b24ada488).
//     Neither is on the path the tests use (the crd source and the rfc2136
//     provider).
package externaldnsbin

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

// Version is the external-dns version built and cached.
const Version = "v0.23.0"

// Toolchain is the Go toolchain the build uses: external-dns v0.23.0's
// go.mod needs Go 1.27.
const Toolchain = "go1.27.3"

// Path returns the path of the cached binary (external-dns-<Version> in
// toolbuild.CacheDir), building it on first use with `CGO_ENABLED=0 go build
// sigs.k8s.io/external-dns` in the pinning module, with the version variable
// external-dns's release build sets, under a file lock so that parallel test
// binaries build it once. Failures are fatal to t.
func Path(t testing.TB) string {
	t.Helper()
	tl := toolbuild.Tool{
		Name:    "external-dns",
		Version: Version,
		ModDir:  "internal/externaldnsbin/toolmod",
		Package: "sigs.k8s.io/external-dns",
		LDFlags: "-s -w -X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=" + Version,
		Env:     []string{"GOTOOLCHAIN=" + Toolchain},
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		tl.SrcDir = filepath.Dir(file)
	}
	return tl.Path(t)
}
