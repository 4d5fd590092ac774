package k8slab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/toolbuild"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulbin"
)

// KubernetesVersion is the k8s.io/kubernetes release the control plane, the
// kubelet and kubectl are built from (toolmod/go.mod pins it; toolmod/gen.sh
// regenerates that file for another version).
const KubernetesVersion = "v1.34.4"

// EtcdVersion is the go.etcd.io/etcd/server/v3 release etcd is built from
// (etcdmod/go.mod pins it).
const EtcdVersion = "v3.6.16"

// cniPackage is the Debian package the CNI loopback plugin is taken from.
const cniPackage = "containernetworking-plugins"

// kubeCommands are the k8s.io/kubernetes/cmd/ packages built, one binary each.
var kubeCommands = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"}

// Binaries are the programs of the lab, all cached under CacheDir.
type Binaries struct {
	APIServer         string
	ControllerManager string
	Scheduler         string
	Kubelet           string
	Kubectl           string
	Etcd              string
	CNIBinDir         string // holds the CNI plugin `loopback`

	// Built names what this call had to build or fetch (empty when all came
	// from the cache) and BuildTime how long that took.
	Built     []string
	BuildTime time.Duration
}

// Build returns the lab's binaries, building the missing ones first: the
// Kubernetes ones and etcd from their Go modules (in the wrapper modules
// toolmod and etcdmod), the CNI loopback plugin out of Debian's
// containernetworking-plugins .deb (downloaded with apt-get download, never
// installed). The three run in parallel; each cache entry has its own file
// lock, so parallel test binaries wait for one build. Failures are fatal to
// t.
func Build(t testing.TB) Binaries {
	t.Helper()
	dir, err := consulbin.CacheDir()
	if err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("k8slab: create cache dir: %v", err)
	}
	var (
		b    Binaries
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	start := time.Now()
	run := func(name string, f func(log func(string, ...any)) (bool, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			built, err := f(func(format string, args ...any) { t.Logf("k8slab: "+format, args...) })
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			if built {
				b.Built = append(b.Built, name)
			}
		}()
	}
	run("kubernetes-"+KubernetesVersion, func(log func(string, ...any)) (bool, error) {
		d, built, err := cachedDir(dir, "kubernetes-"+KubernetesVersion, kubeCommands, log, buildKubernetes)
		if err == nil {
			b.APIServer = filepath.Join(d, "kube-apiserver")
			b.ControllerManager = filepath.Join(d, "kube-controller-manager")
			b.Scheduler = filepath.Join(d, "kube-scheduler")
			b.Kubelet = filepath.Join(d, "kubelet")
			b.Kubectl = filepath.Join(d, "kubectl")
		}
		return built, err
	})
	run("etcd-"+EtcdVersion, func(log func(string, ...any)) (bool, error) {
		d, built, err := cachedDir(dir, "etcd-"+EtcdVersion, []string{"etcd"}, log, buildEtcd)
		if err == nil {
			b.Etcd = filepath.Join(d, "etcd")
		}
		return built, err
	})
	run("cni-loopback", func(log func(string, ...any)) (bool, error) {
		d, built, err := cniLoopback(dir, log)
		if err == nil {
			b.CNIBinDir = d
		}
		return built, err
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("k8slab: %v", err)
	}
	if len(b.Built) > 0 {
		b.BuildTime = time.Since(start)
		sort.Strings(b.Built)
		t.Logf("k8slab: built %s in %s (cache %s)", strings.Join(b.Built, ", "), b.BuildTime.Round(time.Second), dir)
	}
	return b
}

// cachedDir returns cache/name when it holds every one of files as an
// executable; otherwise, under cache/name.lock, it has fill populate a fresh
// temporary directory and renames that to cache/name. built reports whether
// fill ran.
func cachedDir(cache, name string, files []string, log func(string, ...any),
	fill func(tmp string, log func(string, ...any)) error) (dir string, built bool, err error) {
	dir = filepath.Join(cache, name)
	complete := func() bool {
		for _, f := range files {
			if !toolbuild.IsExecutable(filepath.Join(dir, f)) {
				return false
			}
		}
		return true
	}
	if complete() {
		return dir, false, nil
	}
	unlock, err := toolbuild.LockFile(dir + ".lock")
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if complete() { // built by another process while we waited
		return dir, false, nil
	}
	tmp, err := os.MkdirTemp(cache, "."+name+".tmp-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	if err := fill(tmp, log); err != nil {
		return "", false, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, err
	}
	_ = os.RemoveAll(dir) // an incomplete earlier entry
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, err
	}
	return dir, true, nil
}

// kubeLDFlags stamps the release version into the binaries, which otherwise
// report a development version (and kubectl warns about skew).
func kubeLDFlags() string {
	major, minor := "1", ""
	if parts := strings.SplitN(strings.TrimPrefix(KubernetesVersion, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+KubernetesVersion,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean",
		)
	}
	return strings.Join(flags, " ")
}

func buildKubernetes(out string, log func(string, ...any)) error {
	modDir, err := findDir("toolmod")
	if err != nil {
		return err
	}
	log("building %s of k8s.io/kubernetes %s in %s (first run only; 7 to 9 minutes on 2 cores)",
		strings.Join(kubeCommands, ", "), KubernetesVersion, modDir)
	args := []string{"build", "-trimpath", "-ldflags", kubeLDFlags(), "-o", out + string(filepath.Separator)}
	for _, c := range kubeCommands {
		args = append(args, "k8s.io/kubernetes/cmd/"+c)
	}
	return goCmd(modDir, args...)
}

func buildEtcd(out string, log func(string, ...any)) error {
	modDir, err := findDir("etcdmod")
	if err != nil {
		return err
	}
	log("building etcd %s in %s (first run only; under a minute)", EtcdVersion, modDir)
	return goCmd(modDir, "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(out, "etcd"), ".")
}

// buildPause builds the pause program (./pause, in the e2e module) as a
// static binary at out.
func buildPause(out string) error {
	dir, err := findDir("pause")
	if err != nil {
		return err
	}
	return goCmd(dir, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
}

func goCmd(dir string, args ...string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out.String())
	}
	return nil
}

// cniLoopback returns a directory holding Debian's CNI loopback plugin: the
// newest cache/cni-loopback-<debian version> there is, else one made by
// downloading the containernetworking-plugins .deb and extracting that one
// file.
func cniLoopback(cache string, log func(string, ...any)) (string, bool, error) {
	find := func() string {
		m, _ := filepath.Glob(filepath.Join(cache, "cni-loopback-*", "loopback"))
		sort.Strings(m)
		for i := len(m) - 1; i >= 0; i-- {
			if toolbuild.IsExecutable(m[i]) {
				return filepath.Dir(m[i])
			}
		}
		return ""
	}
	if d := find(); d != "" {
		return d, false, nil
	}
	unlock, err := toolbuild.LockFile(filepath.Join(cache, "cni-loopback.lock"))
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if d := find(); d != "" {
		return d, false, nil
	}
	log("fetching the CNI loopback plugin from Debian's %s", cniPackage)
	work, err := os.MkdirTemp(cache, ".cni-download-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(work)
	// apt-get download drops privileges to _apt, which must be able to write here.
	if err := os.Chmod(work, 0o777); err != nil {
		return "", false, err
	}
	download := func() error {
		cmd := exec.Command("apt-get", "download", "-q", cniPackage)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get download %s: %w\n%s", cniPackage, err, out)
		}
		return nil
	}
	if err := download(); err != nil {
		log("%v; running apt-get update and retrying", err)
		if out, err := exec.Command("apt-get", "update", "-q").CombinedOutput(); err != nil {
			return "", false, fmt.Errorf("apt-get update: %w\n%s", err, out)
		}
		if err := download(); err != nil {
			return "", false, err
		}
	}
	debs, _ := filepath.Glob(filepath.Join(work, cniPackage+"_*.deb"))
	if len(debs) != 1 {
		return "", false, fmt.Errorf("apt-get download left %v in %s", debs, work)
	}
	ver, err := exec.Command("dpkg-deb", "-f", debs[0], "Version").Output()
	if err != nil {
		return "", false, fmt.Errorf("dpkg-deb -f %s Version: %w", debs[0], err)
	}
	x := filepath.Join(work, "x")
	if out, err := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" ./usr/lib/cni/loopback`,
		"sh", debs[0], mkdir(x)).CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("extract loopback from %s: %w\n%s", debs[0], err, out)
	}
	dir := filepath.Join(cache, "cni-loopback-"+strings.ReplaceAll(strings.TrimSpace(string(ver)), ":", "_"))
	tmp := filepath.Join(work, "out")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", false, err
	}
	if err := os.Rename(filepath.Join(x, "usr/lib/cni/loopback"), filepath.Join(tmp, "loopback")); err != nil {
		return "", false, err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, err
	}
	return dir, true, nil
}

func mkdir(p string) string {
	_ = os.MkdirAll(p, 0o755)
	return p
}

// findDir locates a directory of this package (toolmod, etcdmod, pause):
// walking up from the working directory to the e2e module root, falling back
// to this source file's directory.
func findDir(name string) (string, error) {
	rel := filepath.Join("internal", "k8slab", name)
	wd, err := os.Getwd()
	if err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			for _, cand := range []string{filepath.Join(d, rel), filepath.Join(d, "e2e", rel)} {
				if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
					return cand, nil
				}
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		cand := filepath.Join(filepath.Dir(file), name)
		if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
			return cand, nil
		}
	}
	return "", fmt.Errorf("cannot find %s from %s", rel, wd)
}
