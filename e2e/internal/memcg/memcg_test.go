package memcg_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/forge"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/memcg"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// The alloc helper is the forger's alloc mode.
func TestMain(m *testing.M) {
	code := m.Run()
	forge.Cleanup()
	os.Exit(code)
}

const mib = 1 << 20

func host(t *testing.T) *netns.Host {
	t.Helper()
	memcg.Require(t)
	lab := netns.New(t)
	return lab.Host("h", lab.Bridge("lan"), "10.213.1.10/24")
}

// waitOutput polls p's stdout for want until it shows, p exits, or 30 s pass.
func waitOutput(t *testing.T, p *netns.Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut := p.Output()
		switch {
		case strings.Contains(out, want):
			return
		case p.Exited():
			t.Fatalf("exited %d before printing %q: %s%s", p.ExitCode(), want, out, errOut)
		case time.Now().After(deadline):
			t.Fatalf("no %q after 30s: %s", want, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWithinLimit: a process holding 16 MiB under a 128 MiB limit lives, is
// in the group under its own PID, and its peak usage is reported.
func TestWithinLimit(t *testing.T) {
	h := host(t)
	g := memcg.New(t, 128*mib)
	p := g.Start(t, h, forge.AllocArgv(t, 16, 0)...)
	waitOutput(t, p, `"mib":16}`)

	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
	if err != nil || !strings.HasSuffix(exe, "/forger") {
		t.Errorf("PID %d runs %q (%v), want the forger: the exec chain should keep the PID", p.PID, exe, err)
	}
	if !g.Contains(p.PID) || !memcg.Alive(p.PID) {
		t.Errorf("PID %d: in group %t, alive %t; want both", p.PID, g.Contains(p.PID), memcg.Alive(p.PID))
	}
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("holding 16 MiB: %+v", s)
	if s.Limit != 128*mib || s.MaxUsage < 16*mib || s.MaxUsage > 64*mib || s.Usage < 16*mib || s.OOMKills != 0 || s.Failcnt != 0 {
		t.Errorf("stats %+v: want limit 128 MiB, usage and peak between 16 and 64 MiB, no failures, no OOM kill", s)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if memcg.Alive(p.PID) {
		t.Errorf("PID %d alive after Stop", p.PID)
	}
	if s, err := g.Stats(); err != nil || len(s.PIDs) != 0 || s.MaxUsage < 16*mib {
		t.Errorf("after exit: %+v, %v; want no PIDs and the peak kept", s, err)
	}
}

// TestOOMKilled: a process allocating 200 MiB under a 64 MiB limit is
// killed by the OOM killer, and the group says so.
func TestOOMKilled(t *testing.T) {
	h := host(t)
	g := memcg.New(t, 64*mib)
	p := g.Start(t, h, forge.AllocArgv(t, 200, 0)...)
	select {
	case <-p.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("still running after 60s under a 64 MiB limit")
	}
	out, _ := p.Output()
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after OOM: exit %v, %+v; last output %q", p.Wait(), s, lastLine(out))
	if p.ExitCode() != -1 || memcg.Alive(p.PID) {
		t.Errorf("exit code %d (alive %t), want killed by a signal", p.ExitCode(), memcg.Alive(p.PID))
	}
	// The peak can pass the limit by a page or so (seen: 64 MiB + 4 KiB).
	if s.OOMKills < 1 || s.Failcnt == 0 || s.MaxUsage < 60*mib || s.MaxUsage > 65*mib || len(s.PIDs) != 0 {
		t.Errorf("stats %+v: want an OOM kill, failures, a peak at the 64 MiB limit, no PIDs", s)
	}
	if strings.Contains(out, `"mib":200}`) {
		t.Errorf("the process reported all 200 MiB allocated under a 64 MiB limit")
	}
}

// TestAddRunningProcess: Add moves a process that already runs.
func TestAddRunningProcess(t *testing.T) {
	h := host(t)
	g := memcg.New(t, 128*mib)
	p, err := h.Start(t.Context(), forge.AllocArgv(t, 4, 0)...)
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, p, `"mib":4}`)
	if g.Contains(p.PID) {
		t.Fatalf("PID %d in the group before Add", p.PID)
	}
	if err := g.Add(p.PID); err != nil {
		t.Fatal(err)
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.PID))
	if !g.Contains(p.PID) || !strings.Contains(string(cg), g.Dir[len(memcg.Root):]) {
		t.Errorf("PID %d not in %s after Add; /proc/PID/cgroup:\n%s", p.PID, g.Dir, cg)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
