// Package helmbin provides the Helm binary for end-to-end tests, built from
// Helm's Go module and cached between runs.
//
// The binary is built in the nested module ./toolmod, which pins
// helm.sh/helm/v3 at Version with the dependency versions Helm was released
// with, so Helm's Kubernetes dependency tree never moves the e2e module's.
package helmbin

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"
)

// Version is the Helm version built and cached.
const Version = "v3.19.5"

// The Kubernetes version of Helm's client libraries (k8s.io/client-go v0.34
// in Helm 3.19): `helm template` reports it as .Capabilities.KubeVersion and
// `helm lint` checks API deprecations against it. Helm's release build sets
// these with -ldflags, as build does here.
const (
	kubeMajor = "1"
	kubeMinor = "34"
)

// Path returns the path of a cached Helm binary (helm-<Version> in
// toolbuild.CacheDir), building it on first use with `CGO_ENABLED=0 go
// build helm.sh/helm/v3/cmd/helm` in the pinning module with the version
// variables of Helm's release build, under a file lock so that parallel
// test binaries build it once. Failures are fatal to t.
func Path(t testing.TB) string {
	t.Helper()
	return tool().Path(t)
}

func tool() toolbuild.Tool {
	tl := toolbuild.Tool{
		Name:    "helm",
		Version: Version,
		ModDir:  "internal/helmbin/toolmod",
		Package: "helm.sh/helm/v3/cmd/helm",
		LDFlags: "-s -w" +
			" -X helm.sh/helm/v3/internal/version.version=" + Version +
			" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=" + kubeMajor +
			" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=" + kubeMinor +
			" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=" + kubeMajor +
			" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=" + kubeMinor,
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		tl.SrcDir = filepath.Dir(file)
	}
	return tl
}
