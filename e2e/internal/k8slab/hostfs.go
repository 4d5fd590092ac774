package k8slab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is the kubelet's cgroupRoot: the lab's pods live in
// <hierarchy>/udb-k8slab/kubepods/..., apart from any other kubelet's
// kubepods, so the cleanup touches only the lab's. In a multi-node lab each
// node's kubelet has <cgroupRoot>/<node name> as its own.
const cgroupRoot = "udb-k8slab"

// makeCgroupRoot creates the cgroup rel (a relative path, one or more
// levels) in every hierarchy (the kubelet wants its cgroupRoot to exist). A
// v1 cpuset cgroup starts with no CPUs and memory nodes: each level gets its
// parent's.
func makeCgroupRoot(rel string) error {
	hier, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	if len(hier) == 0 { // cgroup v2 only
		hier = []string{"/sys/fs/cgroup/cgroup.procs"}
	}
	for _, h := range hier {
		parent := filepath.Dir(h)
		for _, part := range strings.Split(rel, "/") {
			d := filepath.Join(parent, part)
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("create cgroup %s: %w", d, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					continue
				}
				if cur, _ := os.ReadFile(filepath.Join(d, f)); strings.TrimSpace(string(cur)) != "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					return fmt.Errorf("set %s/%s: %w", d, f, err)
				}
			}
			parent = d
		}
	}
	return nil
}

// cgroupDirs are the cgroup rel of every hierarchy (those that exist).
func cgroupDirs(rel string) []string {
	d1, _ := filepath.Glob("/sys/fs/cgroup/*/" + rel)
	d2, _ := filepath.Glob("/sys/fs/cgroup/" + rel)
	return append(d1, d2...)
}

// kubepodsDirs are the lab's cgroup trees (cgroupRoot) of every hierarchy.
func kubepodsDirs() []string { return cgroupDirs(cgroupRoot) }

// kubepodsPIDs lists the processes in the lab's cgroups.
func kubepodsPIDs() []int { return cgroupPIDs(cgroupRoot) }

// cgroupPIDs lists the processes in the cgroup trees rel of every
// hierarchy.
func cgroupPIDs(rel string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, root := range cgroupDirs(rel) {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] && pid != os.Getpid() {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeKubepods removes the lab's cgroup trees, deepest first.
func removeKubepods() []error {
	var errs []error
	for _, root := range kubepodsDirs() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			var err error
			for i := 0; i < 50; i++ { // a killed process leaves its cgroup a moment later
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errs
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) []error {
	var errs []error
	for pass := 0; pass < 5; pass++ {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, mp := range mps {
			if err := syscall.Unmount(mp, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
				if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
				}
			}
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %v", left))
	}
	return errs
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		mp := unescapeMount(f[1])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	// Deepest first; the same point mounted twice appears once per mount.
	slices.SortStableFunc(mps, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return mps
}

// unescapeMount decodes the octal escapes (\040 for a space) of
// /proc/self/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}
