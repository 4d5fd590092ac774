package forge

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// pkgForger is the import path of the helper program.
const pkgForger = "github.com/udp-discovery-bridge/bridge/e2e/internal/forge/cmd/forger"

// built is the one build of the forger per test binary, shared by tests;
// the only package state, by design (a build costs seconds).
var built struct {
	once sync.Once
	dir  string // temp dir holding the binary, removed by Cleanup
	path string
	err  error
}

// Bin returns the path of the forger binary, built on first use with
// `CGO_ENABLED=0 go build` into a temp dir that Cleanup removes (call it
// from TestMain after m.Run). A build failure fails every caller.
func Bin(t testing.TB) string {
	t.Helper()
	built.once.Do(func() { built.dir, built.path, built.err = build() })
	if built.err != nil {
		t.Fatalf("forger binary: %v", built.err)
	}
	return built.path
}

// Cleanup removes the built forger binary.
func Cleanup() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

func build() (dir, path string, err error) {
	dir, err = os.MkdirTemp("", "forger-e2e-")
	if err != nil {
		return "", "", fmt.Errorf("temp dir for the forger binary: %w", err)
	}
	path = filepath.Join(dir, "forger")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	// The working directory of a test is its package directory, inside the
	// e2e module, so the import path resolves there.
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", path, pkgForger)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, "", fmt.Errorf("CGO_ENABLED=0 go build %s: %w\n%s", pkgForger, err, out)
	}
	return dir, path, nil
}
