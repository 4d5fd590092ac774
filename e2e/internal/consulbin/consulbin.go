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
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Version is the Consul version built and cached.
const Version = "v1.20.6"

// toolModDir is the nested module (relative to the e2e module root) that
// pins Consul.
const toolModDir = "internal/consulbin/toolmod"

// Path returns the path of a cached Consul binary, building it on first use:
// the cache directory is $UDB_CACHE, else $XDG_CACHE_HOME/udp-discovery-bridge,
// else ~/.cache/udp-discovery-bridge, and the file consul-<Version>. When
// the file is missing it runs `CGO_ENABLED=0 go build
// github.com/hashicorp/consul` in the pinning module and renames the result
// into place atomically. A file lock on the cache makes parallel test
// binaries wait for one build instead of building twice. Failures are fatal
// to t.
func Path(t testing.TB) string {
	t.Helper()
	dir, err := CacheDir()
	if err != nil {
		t.Fatalf("consulbin: %v", err)
	}
	bin := filepath.Join(dir, "consul-"+Version)
	if isExecutable(bin) {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("consulbin: create cache dir: %v", err)
	}
	unlock, err := lockFile(filepath.Join(dir, "consul-"+Version+".lock"))
	if err != nil {
		t.Fatalf("consulbin: %v", err)
	}
	defer unlock()
	if isExecutable(bin) { // built by another process while we waited
		return bin
	}
	modDir, err := findToolMod()
	if err != nil {
		t.Fatalf("consulbin: %v", err)
	}
	t.Logf("consulbin: building consul %s in %s (first run only; takes a few minutes)", Version, modDir)
	start := time.Now()
	if err := build(modDir, dir, bin); err != nil {
		t.Fatalf("consulbin: %v", err)
	}
	t.Logf("consulbin: built %s in %s", bin, time.Since(start).Round(time.Second))
	return bin
}

// CacheDir returns the cache directory Path uses.
func CacheDir() (string, error) {
	if d := os.Getenv("UDB_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "udp-discovery-bridge"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set UDB_CACHE: %w", err)
	}
	return filepath.Join(home, ".cache", "udp-discovery-bridge"), nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// lockFile takes an exclusive flock on path, blocking until it is free.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// findToolMod locates the pinning module: walking up from the working
// directory to the e2e module root, falling back to this source file's
// directory.
func findToolMod() (string, error) {
	wd, err := os.Getwd()
	if err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			for _, cand := range []string{filepath.Join(d, toolModDir), filepath.Join(d, "e2e", toolModDir)} {
				if _, err := os.Stat(filepath.Join(cand, "go.mod")); err == nil {
					return cand, nil
				}
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		cand := filepath.Join(filepath.Dir(file), "toolmod")
		if _, err := os.Stat(filepath.Join(cand, "go.mod")); err == nil {
			return cand, nil
		}
	}
	return "", fmt.Errorf("cannot find %s from %s", toolModDir, wd)
}

// build compiles Consul into a temporary file in dir and renames it to bin.
func build(modDir, dir, bin string) error {
	tmp, err := os.CreateTemp(dir, ".consul-build-*")
	if err != nil {
		return fmt.Errorf("temp file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName) // no-op after a successful rename

	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", tmpName, "github.com/hashicorp/consul")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build github.com/hashicorp/consul in %s: %w\n%s", modDir, err, out.String())
	}
	if err := os.Chmod(tmpName, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, bin); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmpName, bin, err)
	}
	return nil
}
