// Package k8sh holds what the end-to-end tests do with the chart in the
// Kubernetes lab (e2e/internal/k8slab): run the built Helm, import the
// bridge's image, find the pods' bridge processes on the machine.
package k8sh

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/helmbin"
)

// Helm runs the built helm with args against the cluster of kubeconfig kc,
// with its caches in the test's temporary directories.
func Helm(t testing.TB, kc string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmbin.Path(t), append(args, "--kubeconfig", kc)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ImportImage puts the image with tag, as `docker save` writes it, into the
// lab's containerd (every node's, in a multi-node lab).
func ImportImage(ctx context.Context, t testing.TB, into interface {
	ImportImage(context.Context, io.Reader) error
}, tag string) {
	t.Helper()
	archive, err := exec.CommandContext(ctx, "docker", "save", tag).Output()
	if err != nil {
		t.Fatalf("docker save %s: %v", tag, err)
	}
	if err := into.ImportImage(ctx, bytes.NewReader(archive)); err != nil {
		t.Fatalf("import the image: %v", err)
	}
}

// BridgeProcs returns the /proc status of every process running the
// image's /bridge (the pod's container; nothing else runs that path),
// with its PID under "pid".
func BridgeProcs() []map[string]string {
	ents, _ := os.ReadDir("/proc")
	var out []map[string]string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmdline, []byte("/bridge\x00run")) {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		m := map[string]string{"pid": e.Name()}
		for _, line := range strings.Split(string(status), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				m[k] = strings.TrimSpace(v)
			}
		}
		out = append(out, m)
	}
	return out
}

// NetNSInode is the inode of a network namespace file (/run/netns/<name>,
// /proc/<pid>/ns/net): two are the same namespace when their inodes are
// equal. 0 when it cannot be read.
func NetNSInode(path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Ino
}

// BridgePIDs maps each of the named network namespaces (node name → the
// namespace's name under /run/netns) to the PIDs of the bridge processes
// running in it.
func BridgePIDs(nsOf map[string]string) map[string][]int {
	node := map[uint64]string{}
	for n, ns := range nsOf {
		node[NetNSInode("/run/netns/"+ns)] = n
	}
	by := map[string][]int{}
	for _, p := range BridgeProcs() {
		pid, _ := strconv.Atoi(p["pid"])
		if n, ok := node[NetNSInode("/proc/"+p["pid"]+"/ns/net")]; ok {
			by[n] = append(by[n], pid)
		}
	}
	return by
}
