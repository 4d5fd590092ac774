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

// shipped is the one build per test binary, and chosen the binary Path
// returns; tests share them. They are the only package state, by design:
// building per test would cost seconds each.
var (
	shipped struct {
		once sync.Once
		dir  string // temp dir holding the built binary, removed by Cleanup
		path string
		err  error
	}
	chosen struct {
		once sync.Once
		path string
		err  error
	}
)

// Path returns the absolute path of the bridge binary: BRIDGE_BIN, or else
// the one Static builds. A build failure fails every caller.
func Path(t testing.TB) string {
	t.Helper()
	chosen.once.Do(func() { chosen.path, chosen.err = resolve() })
	if chosen.err != nil {
		t.Fatalf("bridge binary: %v", chosen.err)
	}
	return chosen.path
}

// Static returns the path of a bridge binary built exactly as `make build`
// builds bin/bridge for the container image: CGO_ENABLED=0, -trimpath,
// -tags urfave_cli_no_docs, stripped (-s -w), version "e2e", in the root
// module, so the binary links exactly the root go.mod's dependency
// versions, not the e2e module's. It is built once per test binary and
// ignores BRIDGE_BIN (that binary need not be static).
func Static(t testing.TB) string {
	t.Helper()
	p, err := static()
	if err != nil {
		t.Fatalf("static bridge binary: %v", err)
	}
	return p
}

func static() (string, error) {
	shipped.once.Do(func() { shipped.dir, shipped.path, shipped.err = buildShipped() })
	return shipped.path, shipped.err
}

// tags are the build tags of `make build`: urfave_cli_no_docs leaves out
// urfave/cli's markdown and man page generators, which the bridge does not
// use (a smaller binary is fewer resident pages in every process).
const tags = "urfave_cli_no_docs"

func buildShipped() (dir, path string, err error) {
	root, err := Root()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "bridge-e2e-")
	if err != nil {
		return "", "", fmt.Errorf("temp dir for the bridge binary: %w", err)
	}
	path = filepath.Join(dir, "bridge")
	cmd := exec.Command(goBin(), "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w -X main.version=e2e", "-o", path, "./cmd/bridge")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, "", fmt.Errorf("CGO_ENABLED=0 go build -tags %s ./cmd/bridge in %s: %w\n%s", tags, root, err, out)
	}
	return dir, path, nil
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

// Cleanup removes the built binary; call it from TestMain after m.Run.
func Cleanup() {
	if shipped.dir != "" {
		_ = os.RemoveAll(shipped.dir)
	}
}

func resolve() (string, error) {
	p := os.Getenv(EnvBin)
	if p == "" {
		return static()
	}
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
