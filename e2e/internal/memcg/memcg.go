// Package memcg runs lab processes in a fresh cgroup v1 memory cgroup with
// a limit and reads back what they used: memory.usage_in_bytes,
// memory.max_usage_in_bytes, memory.failcnt and the OOM-kill count (the
// oom_kill line of memory.oom_control, kernel 4.13 and later).
//
// A Group is created under the memory cgroup of the test process itself
// (from /proc/self/cgroup), so it also stays within any limit set on the
// test's own cgroup, and its t.Cleanup kills what is left in it (by PID),
// waits for it to empty, and removes it.
//
// Start puts a process in the group before it runs: the command is
// `ip netns exec NS sh -c 'echo $$ > cgroup.procs && exec "$@"' argv...`
// (cgroup.procs reached through /proc/<test PID>/root, since `ip netns
// exec` mounts a fresh /sys), and as `ip` and sh exec rather than fork, netns.Proc.PID is the PID of
// the program itself, in the group from its first instruction. Add moves
// a process that already runs; cgroup v1 leaves the memory it charged
// before the move with the old group (memory.move_charge_at_immigrate is
// 0), so prefer Start.
package memcg

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Root is the mount point of the cgroup v1 memory hierarchy.
const Root = "/sys/fs/cgroup/memory"

// Group is one memory cgroup.
type Group struct {
	Dir string // absolute path under Root
}

// Require skips the test (fails it when env CI is "true") unless a cgroup
// v1 memory hierarchy is mounted at Root and the test runs as root.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		netns.SkipOrFail(t, "memory cgroup tests need root (euid %d)", os.Geteuid())
	}
	if _, err := os.Stat(filepath.Join(Root, "memory.limit_in_bytes")); err != nil {
		netns.SkipOrFail(t, "memory cgroup tests need cgroup v1 at %s (cgroup v2 is not supported): %v", Root, err)
	}
}

// New creates a fresh group limited to limit bytes, after Require. Its
// removal is registered with t.Cleanup.
func New(t testing.TB, limit int64) *Group {
	t.Helper()
	Require(t)
	parent, err := ownGroup()
	if err != nil {
		t.Fatalf("memcg: %v", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("memcg: random name: %v", err)
	}
	g := &Group{Dir: filepath.Join(Root, parent, fmt.Sprintf("udb-e2e-%x", b))}
	if err := os.Mkdir(g.Dir, 0o755); err != nil {
		netns.SkipOrFail(t, "memcg: cannot create a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := g.remove(10 * time.Second); err != nil {
			t.Errorf("memcg: %v", err)
		}
	})
	if err := g.write("memory.limit_in_bytes", strconv.FormatInt(limit, 10)); err != nil {
		t.Fatalf("memcg: %v", err)
	}
	return g
}

// ownGroup returns the test process's memory cgroup, relative to Root.
func ownGroup() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "memory") {
			return parts[2], nil
		}
	}
	return "", errors.New("/proc/self/cgroup: no memory controller line (cgroup v2 only?)")
}

// Start runs argv in h inside g from its first instruction (see the
// package doc); the PID of the returned process is the program's.
func (g *Group) Start(t testing.TB, h *netns.Host, argv ...string) *netns.Proc {
	t.Helper()
	// `ip netns exec` mounts a fresh sysfs on /sys, hiding the cgroup
	// mounts: reach the file through the test process's root instead.
	procs := fmt.Sprintf("/proc/%d/root%s", os.Getpid(), filepath.Join(g.Dir, "cgroup.procs"))
	wrapped := append([]string{"sh", "-c", `echo $$ > "$0" && exec "$@"`, procs}, argv...)
	p, err := h.Start(context.Background(), wrapped...)
	if err != nil {
		t.Fatalf("memcg: %v", err)
	}
	return p
}

// Add moves the process pid (all its threads) into g.
func (g *Group) Add(pid int) error {
	return g.write("cgroup.procs", strconv.Itoa(pid))
}

// Stats is what a group reports.
type Stats struct {
	Limit    int64 // memory.limit_in_bytes
	Usage    int64 // memory.usage_in_bytes: charged now
	MaxUsage int64 // memory.max_usage_in_bytes: the peak
	Failcnt  int64 // memory.failcnt: charges that hit the limit
	OOMKills int64 // oom_kill of memory.oom_control: processes the OOM killer killed
	UnderOOM bool  // under_oom of memory.oom_control
	PIDs     []int // cgroup.procs: processes in the group now
}

// Stats reads g's counters.
func (g *Group) Stats() (Stats, error) {
	var s Stats
	var err error
	for _, f := range []struct {
		file string
		dst  *int64
	}{
		{"memory.limit_in_bytes", &s.Limit},
		{"memory.usage_in_bytes", &s.Usage},
		{"memory.max_usage_in_bytes", &s.MaxUsage},
		{"memory.failcnt", &s.Failcnt},
	} {
		if *f.dst, err = g.readInt(f.file); err != nil {
			return s, err
		}
	}
	oom, err := g.read("memory.oom_control")
	if err != nil {
		return s, err
	}
	seen := false
	for line := range strings.Lines(oom) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch k {
		case "oom_kill":
			if s.OOMKills, err = strconv.ParseInt(v, 10, 64); err != nil {
				return s, fmt.Errorf("%s/memory.oom_control: oom_kill %q: %w", g.Dir, v, err)
			}
			seen = true
		case "under_oom":
			s.UnderOOM = v == "1"
		}
	}
	if !seen {
		return s, fmt.Errorf("%s/memory.oom_control has no oom_kill line (kernel older than 4.13?): %q", g.Dir, oom)
	}
	s.PIDs, err = g.pids()
	return s, err
}

// Contains reports whether pid is in g now.
func (g *Group) Contains(pid int) bool {
	pids, err := g.pids()
	return err == nil && slices.Contains(pids, pid)
}

// Alive reports whether the process pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func (g *Group) pids() ([]int, error) {
	s, err := g.read("cgroup.procs")
	if err != nil {
		return nil, err
	}
	var out []int
	for f := range strings.FieldsSeq(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s/cgroup.procs: %q: %w", g.Dir, f, err)
		}
		out = append(out, pid)
	}
	return out, nil
}

// remove kills the processes left in g (each by PID), waits until g is
// empty, and removes it.
func (g *Group) remove(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		pids, err := g.pids()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err == nil && len(pids) == 0 {
			err = os.Remove(g.Dir)
			if err == nil {
				return nil
			}
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove %s (processes %v): %v", g.Dir, pids, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *Group) read(file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(g.Dir, file))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (g *Group) readInt(file string) (int64, error) {
	s, err := g.read(file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", g.Dir, file, err)
	}
	return v, nil
}

func (g *Group) write(file, v string) error {
	if err := os.WriteFile(filepath.Join(g.Dir, file), []byte(v), 0o644); err != nil {
		return fmt.Errorf("write %q to %s/%s: %w", v, g.Dir, file, err)
	}
	return nil
}
