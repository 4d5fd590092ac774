// Package dockerimg builds the product's container image for end-to-end tests
// and runs the docker and docker-compose CLIs.
//
// Build runs the repository's Dockerfile, with the legacy builder, on a
// context holding the static binary at bin/bridge (where `make image` puts
// it) and the repository's .dockerignore, once per test binary, under a tag
// of its own; Cleanup removes the tag. Containers a test starts are removed
// by the test (by name), never by pattern.
package dockerimg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Repo is the image name `make image` tags.
const Repo = "udp-discovery-bridge"

// Require skips the test (fails it with CI=true, as netns.Require) unless it
// runs as root with a docker CLI whose daemon answers.
func Require(t testing.TB) {
	t.Helper()
	netns.Require(t)
	if _, err := exec.LookPath("docker"); err != nil {
		netns.SkipOrFail(t, "docker tests need the docker CLI: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		netns.SkipOrFail(t, "docker daemon not reachable: %v: %s", err, bytes.TrimSpace(out))
	}
}

// RequireCompose is Require plus docker-compose (v1 or the v2 standalone
// binary); it returns the command's path.
func RequireCompose(t testing.TB) string {
	t.Helper()
	Require(t)
	p, err := exec.LookPath("docker-compose")
	if err != nil {
		netns.SkipOrFail(t, "compose tests need docker-compose (scripts/test.sh installs it as root): %v", err)
	}
	return p
}

// Image is the built image.
type Image struct {
	Tag         string // repo:tag
	BinaryBytes int64  // size of bin/bridge
	// ContextBytes is what the legacy builder reported sending as the build
	// context (-1 when its output did not say).
	ContextBytes int64
	Output       string // docker build's output
}

var build struct {
	once sync.Once
	img  Image
	err  error
}

// Build returns the image, building it on first use. A failure fails every
// caller.
func Build(t testing.TB) Image {
	t.Helper()
	bin := bridgebin.Static(t)
	build.once.Do(func() { build.img, build.err = buildImage(bin) })
	if build.err != nil {
		t.Fatalf("dockerimg: %v", build.err)
	}
	return build.img
}

// Cleanup removes the image's tag (the layers go with it unless another tag
// shares them); call it from TestMain after m.Run.
func Cleanup() {
	if build.img.Tag != "" {
		_ = exec.Command("docker", "rmi", "-f", build.img.Tag).Run()
	}
}

var contextLine = regexp.MustCompile(`Sending build context to Docker daemon\s+([0-9.]+)([kMG]?B)`)

func buildImage(bin string) (Image, error) {
	root, err := bridgebin.Root()
	if err != nil {
		return Image{}, err
	}
	ctxDir, err := os.MkdirTemp("", "bridge-e2e-image-")
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(ctxDir)
	if err := os.MkdirAll(filepath.Join(ctxDir, "bin"), 0o755); err != nil {
		return Image{}, err
	}
	if err := copyFile(bin, filepath.Join(ctxDir, "bin", "bridge"), 0o755); err != nil {
		return Image{}, err
	}
	if err := copyFile(filepath.Join(root, ".dockerignore"), filepath.Join(ctxDir, ".dockerignore"), 0o644); err != nil {
		return Image{}, err
	}
	// Something .dockerignore must keep out of the context, as a checkout
	// would have (sources, .git): 8 MiB that would show in ContextBytes.
	if err := os.WriteFile(filepath.Join(ctxDir, "not-in-context"), make([]byte, 8<<20), 0o644); err != nil {
		return Image{}, err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return Image{}, err
	}
	img := Image{Tag: Repo + ":e2e-" + randomHex(4), BinaryBytes: st.Size(), ContextBytes: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "build", "-f", filepath.Join(root, "Dockerfile"),
		"--build-arg", "VERSION=e2e", "--build-arg", "REVISION=e2e", "-t", img.Tag, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0") // as `make image`
	out, err := cmd.CombinedOutput()
	img.Output = string(out)
	if err != nil {
		return Image{}, fmt.Errorf("docker build: %w\n%s", err, out)
	}
	if m := contextLine.FindStringSubmatch(img.Output); m != nil {
		f, _ := strconv.ParseFloat(m[1], 64)
		mult := map[string]float64{"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[m[2]]
		img.ContextBytes = int64(f * mult)
	}
	return img, nil
}

// Docker runs `docker args...` (2 minutes at most) and returns its trimmed
// stdout, failing t with stderr on error.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := Run(t.Context(), "docker", args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// Run runs name args... with a 2-minute bound and returns trimmed stdout,
// stderr and the error.
func Run(ctx context.Context, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return strings.TrimSpace(stdout.String()), stderr.String(), err
}

// RandomName returns prefix followed by 8 hex digits.
func RandomName(prefix string) string { return prefix + randomHex(4) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode)
}
