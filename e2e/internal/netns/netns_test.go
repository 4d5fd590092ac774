package netns_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// helperEnv selects a helper mode when this test binary is re-executed inside a
// namespace (the image has no ping/nc, and the helpers need nothing but Go).
const helperEnv = "NETNS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "echo":
		os.Exit(helperEcho())
	case "send":
		os.Exit(helperSend())
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Minute)
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(3)
	}
}

// helperEcho echoes UDP datagrams on :7777 until SIGTERM, then exits 0.
func helperEcho() int {
	pc, err := net.ListenPacket("udp4", ":7777")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() { <-sig; pc.Close() }()
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return 0 // closed by SIGTERM
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// helperSend sends "ping" to NETNS_TEST_TO (broadcast allowed) and exits 0 when
// a reply arrives within 500ms, printing the replier; 1 otherwise.
func helperSend() int {
	to, err := net.ResolveUDPAddr("udp4", os.Getenv("NETNS_TEST_TO"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pc, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer pc.Close()
	if err := setBroadcast(pc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := pc.WriteTo([]byte("ping"), to); err != nil {
		fmt.Fprintln(os.Stderr, "send:", err)
		return 1
	}
	_ = pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 64)
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		fmt.Fprintln(os.Stderr, "no reply:", err)
		return 1
	}
	fmt.Println(from.(*net.UDPAddr).IP)
	return 0
}

func setBroadcast(pc net.PacketConn) error {
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
	}); err != nil {
		return err
	}
	return serr
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func startEcho(t *testing.T, h *netns.Host) *netns.Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	p, err := h.WithEnv(append(os.Environ(), helperEnv+"=echo")).Start(t.Context(), self(t), "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WaitUDPListeners(ctx, 7777, 1); err != nil {
		out, errOut := p.Output()
		t.Fatalf("echo helper not listening: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	return p
}

// send runs the send helper on h towards to ("ip:port") and returns the
// replier's address, or "" when nothing answered.
func send(t *testing.T, h *netns.Host, to string) string {
	t.Helper()
	r := h.WithEnv(append(os.Environ(), helperEnv+"=send", "NETNS_TEST_TO="+to)).
		Run(t.Context(), self(t), "-test.run=^$")
	switch r.ExitCode {
	case 0:
		return strings.TrimSpace(r.Stdout)
	case 1:
		return ""
	default:
		t.Fatalf("send helper on %s to %s: exit %d: %v\n%s", h.NS, to, r.ExitCode, r.Err, r.Stderr)
		return ""
	}
}

func TestNetnsLAN(t *testing.T) {
	t.Parallel()
	lab := netns.New(t)
	br := lab.Bridge("lan")
	a := lab.Host("a", br, "10.213.1.10/24")
	b := lab.Host("b", br, "10.213.1.11/24")

	for _, name := range append(lab.Namespaces(), a.Dev(br), b.Dev(br), br.Dev) {
		if !strings.Contains(name, lab.Suffix()) {
			t.Errorf("name %q lacks the lab suffix %q", name, lab.Suffix())
		}
	}
	for _, l := range append(a.Links(), b.Links()...) {
		for _, d := range []string{l.Dev, l.Peer} {
			if len(d) > 15 {
				t.Errorf("device name %q longer than 15", d)
			}
		}
	}
	if got := a.IP(); got.String() != "10.213.1.10" {
		t.Errorf("a.IP() = %v, want 10.213.1.10", got)
	}

	startEcho(t, b)
	if got := send(t, a, "10.213.1.11:7777"); got != "10.213.1.11" {
		t.Errorf("unicast a->b: reply from %q, want 10.213.1.11", got)
	}
	if got := send(t, a, "10.213.1.255:7777"); got != "10.213.1.11" {
		t.Errorf("broadcast from a: reply from %q, want 10.213.1.11", got)
	}
	// A host's only device is its veth: its namespace sees none of the root's.
	r := a.Run(t.Context(), "ip", "-o", "-4", "addr", "show")
	if r.Err != nil {
		t.Fatalf("ip addr in %s: %v %s", a.NS, r.Err, r.Stderr)
	}
	if lines := strings.Count(r.Stdout, "\n"); lines != 2 || !strings.Contains(r.Stdout, a.Dev(br)) {
		t.Errorf("addresses in host a, want lo and %s only:\n%s", a.Dev(br), r.Stdout)
	}

	if err := b.SetLinkDown(); err != nil {
		t.Fatal(err)
	}
	if got := send(t, a, "10.213.1.11:7777"); got != "" {
		t.Errorf("after b's link went down, reply from %q, want none", got)
	}
	if err := b.SetLinkUp(); err != nil {
		t.Fatal(err)
	}
}

func TestNetnsRouter(t *testing.T) {
	t.Parallel()
	lab := netns.New(t)
	brA, brB := lab.Bridge("a"), lab.Bridge("b")
	lab.Router("r", map[*netns.Bridge]string{brA: "10.213.1.1/24", brB: "10.213.2.1/24"})
	client := lab.Host("client", brA, "10.213.1.10/24")
	client.SetDefaultRoute("10.213.1.1")
	server := lab.Host("server", brB, "10.213.2.10/24")
	server.SetDefaultRoute("10.213.2.1")

	startEcho(t, server)
	if got := send(t, client, "10.213.2.10:7777"); got != "10.213.2.10" {
		t.Errorf("routed unicast: reply from %q, want 10.213.2.10", got)
	}
	// The client's broadcast stays on segment A: the router does not forward it.
	if got := send(t, client, "10.213.1.255:7777"); got != "" {
		t.Errorf("broadcast on A reached segment B: reply from %q", got)
	}
}

func TestNetnsProcLifecycle(t *testing.T) {
	t.Parallel()
	lab := netns.New(t)
	h := lab.Host("h", lab.Bridge("lan"), "10.213.1.10/24")

	t.Run("SIGTERM stops a cooperative process", func(t *testing.T) {
		p := startEcho(t, h)
		if p.PID <= 0 {
			t.Fatalf("PID = %d", p.PID)
		}
		if err := p.Stop(); err != nil {
			_, stderr := p.Output()
			t.Fatalf("Stop: %v (stderr %s)", err, stderr)
		}
		if p.ExitCode() != 0 {
			t.Errorf("exit code %d, want 0", p.ExitCode())
		}
	})
	t.Run("SIGKILL after the grace", func(t *testing.T) {
		p, err := h.WithEnv(append(os.Environ(), helperEnv+"=ignoreterm")).Start(t.Context(), self(t), "-test.run=^$")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // let it install its SIGTERM handler
		start := time.Now()
		err = p.StopWithin(300 * time.Millisecond)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("Stop error = %v, want killed by SIGKILL", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Stop took %v with a 300ms grace", d)
		}
	})
	t.Run("Run reports exit status and output", func(t *testing.T) {
		r := h.Run(t.Context(), "sh", "-c", "echo out; echo err >&2; exit 3")
		if r.ExitCode != 3 || r.Stdout != "out\n" || r.Stderr != "err\n" {
			t.Errorf("Run = exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
		}
	})
}

// TestNetnsHostBridge: a host bridge is a device of the root namespace that
// reaches the hosts plugged into it, broadcast included, and is gone after
// the lab's cleanup.
func TestNetnsHostBridge(t *testing.T) {
	t.Parallel()
	netns.Require(t)
	var dev string
	t.Run("lab", func(t *testing.T) {
		lab := netns.New(t)
		sub := lab.HostSubnet()
		base := sub.Addr().As4()
		ip := func(last byte) string { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], last}).String() }
		br := lab.HostBridge("host", ip(1)+"/24")
		dev = br.Dev
		h := lab.Host("h", br, ip(11)+"/24")
		if br.NS != "" || !strings.Contains(dev, lab.Suffix()) {
			t.Errorf("host bridge %+v: want NS \"\" and the lab suffix in its name", br)
		}
		startEcho(t, h)
		// The send helper runs here, in the root namespace, like a host-network container.
		r := exec.CommandContext(t.Context(), self(t), "-test.run=^$")
		r.Env = append(os.Environ(), helperEnv+"=send", "NETNS_TEST_TO="+ip(255)+":7777")
		out, err := r.Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != ip(11) {
			t.Errorf("broadcast from the root namespace on %s: reply from %q (%v), want %s", dev, got, err, ip(11))
		}
	})
	if err := exec.Command("ip", "link", "show", dev).Run(); err == nil {
		t.Errorf("device %s still exists after the lab's cleanup", dev)
	}
}

func TestNetnsCleanup(t *testing.T) {
	t.Parallel()
	netns.Require(t)
	var nss []string
	var proc *netns.Proc
	t.Run("lab", func(t *testing.T) {
		lab := netns.New(t)
		br := lab.Bridge("lan")
		h := lab.Host("h", br, "10.213.1.10/24")
		lab.Router("r", map[*netns.Bridge]string{br: "10.213.1.1/24"})
		var err error
		proc, err = h.Start(context.Background(), "sleep", "60")
		if err != nil {
			t.Fatal(err)
		}
		nss = lab.Namespaces()
	})
	if len(nss) != 3 {
		t.Fatalf("namespaces = %v, want 3", nss)
	}
	select {
	case <-proc.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("process %d still running after the lab's cleanup", proc.PID)
	}
	for _, ns := range nss {
		if _, err := os.Stat("/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after cleanup (stat err %v)", ns, err)
		}
	}
}

// TestNetnsListen: a listener created by Listen from the test's own
// process lives in the host's namespace: another host of the lab reaches
// it, and `ss` lists it in that namespace only.
func TestNetnsListen(t *testing.T) {
	t.Parallel()
	lab := netns.New(t)
	br := lab.Bridge("lan")
	a := lab.Host("a", br, "10.213.1.10/24")
	b := lab.Host("b", br, "10.213.1.11/24")
	ln, err := netns.Listen(t.Context(), b.NS, "tcp", "10.213.1.11:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	c, err := netns.Dial(ctx, a.NS, "tcp", "10.213.1.11:7000")
	if err != nil {
		t.Fatalf("dial from host a: %v", err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Errorf("read from the listener: %q %v", buf, err)
	}
	c.Close()
	// The socket is host b's: its namespace lists it, host a's does not.
	for h, want := range map[*netns.Host]int{a: 0, b: 1} {
		r := h.Run(ctx, "ss", "-H", "-t", "-l", "-n", "sport = :7000")
		if got := strings.Count(r.Stdout, "\n"); r.Err != nil || got != want {
			t.Errorf("listeners on :7000 in %s: %d (%v), want %d:\n%s", h.Name, got, r.Err, want, r.Stdout)
		}
	}
}
