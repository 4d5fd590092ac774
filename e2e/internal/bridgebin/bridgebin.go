// Package bridgebin provides the `bridge` binary under test: built once per test
// binary from the root module's ./cmd/bridge, or taken from env BRIDGE_BIN;
// and, for the container image, a static one built like `make build`.
package bridgebin

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// EnvBin names a prebuilt binary to test instead of building one.
const EnvBin = "BRIDGE_BIN"

// rootModule is the module path of the product, whose go.mod marks the
// directory to build in.
const rootModule = "github.com/udp-discovery-bridge/bridge"

// build is the one build per test binary; tests share its result. It is the only
// package state, by design: building per test would cost seconds each.
var build struct {
	once sync.Once
	dir  string // temp dir holding the built binary, removed by Cleanup
	path string
	err  error
}

// Path returns the absolute path of the bridge binary: BRIDGE_BIN, or else
// one built as `make build` builds what ships (static, CGO_ENABLED=0,
// -trimpath, -tags urfave_cli_no_docs, stripped, version "e2e"), in the
// root module, so the binary links exactly the root go.mod's dependency
// versions, not the e2e module's. The first call builds it; later calls
// reuse it. A build failure fails every caller.
func Path(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.path, build.err = resolve() })
	if build.err != nil {
		t.Fatalf("bridge binary: %v", build.err)
	}
	return build.path
}

// static is the one static build per test binary (see Static).
var static struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Static returns the path of a bridge binary built exactly as `make build`
// builds bin/bridge for the container image: CGO_ENABLED=0, -trimpath,
// -tags urfave_cli_no_docs, stripped (-s -w), version "e2e". It is built
// once per test binary and ignores BRIDGE_BIN (that binary need not be
// static).
func Static(t testing.TB) string {
	t.Helper()
	static.once.Do(func() { static.dir, static.path, static.err = buildStatic() })
	if static.err != nil {
		t.Fatalf("static bridge binary: %v", static.err)
	}
	return static.path
}

func buildStatic() (dir, path string, err error) {
	root, err := Root()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "bridge-e2e-static-")
	if err != nil {
		return "", "", fmt.Errorf("temp dir for the static bridge binary: %w", err)
	}
	path = filepath.Join(dir, "bridge")
	if err := shippedBuild(root, path); err != nil {
		return dir, "", err
	}
	return dir, path, nil
}

// Tags are the build tags of `make build`: urfave_cli_no_docs leaves out
// urfave/cli's markdown and man page generators, which the bridge does not
// use (a smaller binary is fewer resident pages in every process).
const Tags = "urfave_cli_no_docs"

// shippedBuild builds ./cmd/bridge of the module at root into path as
// `make build` does.
func shippedBuild(root, path string) error {
	cmd := exec.Command(goBin(), "build", "-trimpath", "-tags", Tags, "-ldflags", "-s -w -X main.version=e2e", "-o", path, "./cmd/bridge")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("CGO_ENABLED=0 go build -tags %s ./cmd/bridge in %s: %w\n%s", Tags, root, err, out)
	}
	return nil
}

// Root returns the directory of the root module (the repository), found by
// walking up from the working directory.
func Root() (string, error) { return findRoot() }

func goBin() string {
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		return "go"
	}
	return gobin
}

// Cleanup removes the built binaries; call it from TestMain after m.Run.
func Cleanup() {
	for _, d := range []string{build.dir, static.dir} {
		if d != "" {
			_ = os.RemoveAll(d)
		}
	}
}

func resolve() (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s=%q: %w", EnvBin, p, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("%s=%q: %w", EnvBin, p, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s=%q: not an executable file", EnvBin, p)
		}
		return abs, nil
	}
	root, err := findRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "bridge-e2e-")
	if err != nil {
		return "", fmt.Errorf("temp dir for the bridge binary: %w", err)
	}
	build.dir = dir
	out := filepath.Join(dir, "bridge")
	if err := shippedBuild(root, out); err != nil {
		return "", err
	}
	return out, nil
}

// findRoot walks up from the working directory (the test's package directory)
// to the directory whose go.mod declares the root module.
func findRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if mod, err := modulePath(filepath.Join(dir, "go.mod")); err == nil && mod == rootModule {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod of module %s above %s", rootModule, wd)
		}
	}
}

func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", errors.New(gomod + ": no module line")
}
