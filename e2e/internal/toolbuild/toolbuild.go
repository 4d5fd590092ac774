// Package toolbuild builds the tool binaries of the end-to-end tests (Consul,
// Helm) from their Go modules and caches them between runs.
//
// Each tool is built in a nested module of its own (a toolmod directory with
// its own go.mod) that pins the tool at its release's dependency versions, so
// a tool's dependency tree never moves the e2e module's (or the bridge's).
package toolbuild

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

// Tool says what to build and where it is cached.
type Tool struct {
	Name    string // file name prefix in the cache: <Name>-<Version>
	Version string // the pinned version
	ModDir  string // the pinning module, relative to the e2e module root
	SrcDir  string // fallback: the caller's source directory, holding "toolmod"
	Package string // the main package to build
	LDFlags string // -ldflags (empty: none)
	// Env is added to the build's environment after the caller's, e.g.
	// GOTOOLCHAIN=go1.27.3 for a tool whose module needs a newer Go than
	// the project's: only that pinning module's go.mod names it.
	Env []string
}

// Path returns the path of the cached binary, building it on first use: the
// cache directory is $UDB_CACHE, else $XDG_CACHE_HOME/udp-discovery-bridge,
// else ~/.cache/udp-discovery-bridge, and the file <Name>-<Version>. When
// the file is missing it runs `CGO_ENABLED=0 go build -trimpath` of Package
// in the pinning module and renames the result into place atomically. A
// file lock on the cache makes parallel test binaries wait for one build
// instead of building twice. Failures are fatal to tb.
func (t Tool) Path(tb testing.TB) string {
	tb.Helper()
	dir, err := CacheDir()
	if err != nil {
		tb.Fatalf("%s: %v", t.Name, err)
	}
	bin := filepath.Join(dir, t.Name+"-"+t.Version)
	if IsExecutable(bin) {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("%s: create cache dir: %v", t.Name, err)
	}
	unlock, err := LockFile(filepath.Join(dir, t.Name+"-"+t.Version+".lock"))
	if err != nil {
		tb.Fatalf("%s: %v", t.Name, err)
	}
	defer unlock()
	if IsExecutable(bin) { // built by another process while we waited
		return bin
	}
	modDir, err := t.findMod()
	if err != nil {
		tb.Fatalf("%s: %v", t.Name, err)
	}
	tb.Logf("%s: building %s %s in %s (first run only; takes a few minutes)", t.Name, t.Package, t.Version, modDir)
	start := time.Now()
	if err := t.build(modDir, dir, bin); err != nil {
		tb.Fatalf("%s: %v", t.Name, err)
	}
	tb.Logf("%s: built %s in %s", t.Name, bin, time.Since(start).Round(time.Second))
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

// IsExecutable reports whether p is a regular file with an execute bit.
func IsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// LockFile takes an exclusive flock on path, blocking until it is free, and
// returns the function that releases it.
func LockFile(path string) (func(), error) {
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

// findMod locates the pinning module: walking up from the working directory
// to the e2e module root, falling back to the caller's source directory.
func (t Tool) findMod() (string, error) {
	wd, err := os.Getwd()
	if err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			for _, cand := range []string{filepath.Join(d, t.ModDir), filepath.Join(d, "e2e", t.ModDir)} {
				if _, err := os.Stat(filepath.Join(cand, "go.mod")); err == nil {
					return cand, nil
				}
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if t.SrcDir != "" {
		cand := filepath.Join(t.SrcDir, "toolmod")
		if _, err := os.Stat(filepath.Join(cand, "go.mod")); err == nil {
			return cand, nil
		}
	}
	return "", fmt.Errorf("cannot find %s from %s", t.ModDir, wd)
}

// build compiles the tool into a temporary file in dir and renames it to bin.
func (t Tool) build(modDir, dir, bin string) error {
	tmp, err := os.CreateTemp(dir, "."+t.Name+"-build-*")
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
	args := []string{"build", "-trimpath"}
	if t.LDFlags != "" {
		args = append(args, "-ldflags", t.LDFlags)
	}
	args = append(args, "-o", tmpName, t.Package)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	cmd.Env = append(cmd.Env, t.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", t.Package, modDir, err, out.String())
	}
	if err := os.Chmod(tmpName, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, bin); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmpName, bin, err)
	}
	return nil
}
