package iface

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOSRouterInNamespace looks routes up in a namespace the test creates
// with two dummy links (nothing is sent: the lookup is a netlink query).
func TestOSRouterInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command (iproute2) to create a network namespace")
	}
	ns := fmt.Sprintf("udbtest-%08x", rand.Uint32())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command(ipPath, "netns", "del", ns).Run() })
	for _, dev := range []string{"lan0", "pods0"} {
		// A dummy link; where the kernel lacks the module, a bridge with no port.
		if err := exec.Command(ipPath, "-n", ns, "link", "add", dev, "type", "dummy").Run(); err != nil {
			run("-n", ns, "link", "add", dev, "type", "bridge")
		}
	}
	for _, args := range [][]string{
		{"addr", "add", "10.213.9.5/24", "dev", "lan0"},
		{"addr", "add", "10.244.3.1/24", "dev", "pods0"},
		{"link", "set", "lan0", "up"},
		{"link", "set", "pods0", "up"},
		{"link", "set", "lo", "up"},
		{"route", "add", "default", "via", "10.213.9.1", "dev", "lan0"},
	} {
		run(append([]string{"-n", ns}, args...)...)
	}
	type result struct {
		all    []Interface
		routes map[string]Route
		errs   map[string]error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		res := result{routes: map[string]Route{}, errs: map[string]error{}}
		f, err := os.Open("/run/netns/" + ns)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		if err != nil {
			res.errs["setns"] = err
			ch <- res
			return
		}
		res.all, res.errs["list"] = OS().Interfaces()
		for _, dst := range []string{"10.213.9.77", "10.244.3.9", "192.0.2.1", "10.213.9.5"} {
			res.routes[dst], res.errs[dst] = OSRouter().Route(netip.MustParseAddr(dst))
		}
		ch <- res
	}()
	res := <-ch
	if res.errs["setns"] != nil || res.errs["list"] != nil {
		t.Fatal(res.errs["setns"], res.errs["list"])
	}
	index := map[string]int{}
	for _, i := range res.all {
		index[i.Name] = i.Index
	}
	for dst, want := range map[string]string{"10.213.9.77": "lan0", "10.244.3.9": "pods0", "192.0.2.1": "lan0", "10.213.9.5": "lo"} {
		rt, err := res.routes[dst], res.errs[dst]
		if err != nil {
			t.Errorf("route to %s: %v", dst, err)
			continue
		}
		if rt.Index != index[want] || rt.Dst != netip.MustParseAddr(dst) {
			t.Errorf("route to %s = %+v, want interface %s (index %d)", dst, rt, want, index[want])
		}
	}
	if src := res.routes["192.0.2.1"].Src; src != netip.MustParseAddr("10.213.9.5") {
		t.Errorf("route to 192.0.2.1: source %s, want 10.213.9.5", src)
	}
	s, err := Rules{CanReach: netip.MustParseAddr("192.0.2.1")}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	rt := res.routes["192.0.2.1"]
	taken := Taken(s.Decide(res.all, RouterFunc(func(netip.Addr) (Route, error) { return rt, nil })))
	if len(taken) != 1 || taken[0].Name != "lan0" {
		t.Errorf("can_reach 192.0.2.1 takes %+v, want lan0", taken)
	}
}

func TestParseRouteAnswer(t *testing.T) {
	dst := netip.MustParseAddr("10.1.2.3")
	msg := func(typ uint16, seq uint32, data []byte) []byte {
		b := make([]byte, syscall.NLMSG_HDRLEN, syscall.NLMSG_HDRLEN+len(data))
		binary.NativeEndian.PutUint32(b[0:], uint32(syscall.NLMSG_HDRLEN+len(data)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint32(b[8:], seq)
		return append(b, data...)
	}
	attr := func(typ uint16, v []byte) []byte {
		b := make([]byte, 4)
		binary.NativeEndian.PutUint16(b, uint16(4+len(v)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	u32 := func(v uint32) []byte { b := make([]byte, 4); binary.NativeEndian.PutUint32(b, v); return b }
	rtmsg := make([]byte, syscall.SizeofRtMsg)
	route := append(append(append([]byte{}, rtmsg...), attr(syscall.RTA_OIF, u32(7))...), attr(syscall.RTA_PREFSRC, []byte{10, 1, 2, 1})...)
	errno := func(e syscall.Errno) []byte { return append(u32(uint32(-int32(e))), make([]byte, 16)...) }

	rt, done, err := parseRouteAnswer(msg(syscall.RTM_NEWROUTE, 1, route), dst, 1)
	if err != nil || !done || rt != (Route{Dst: dst, Index: 7, Src: netip.MustParseAddr("10.1.2.1")}) {
		t.Errorf("route answer = %+v, %v, %v", rt, done, err)
	}
	_, done, err = parseRouteAnswer(msg(syscall.NLMSG_ERROR, 1, errno(syscall.ENETUNREACH)), dst, 1)
	if !done || !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("error answer = %v, %v; want ENETUNREACH", done, err)
	}
	if _, done, err = parseRouteAnswer(msg(syscall.RTM_NEWROUTE, 9, route), dst, 1); done || err != nil {
		t.Errorf("answer of another sequence = %v, %v; want read again", done, err)
	}
	noOIF := append([]byte{}, rtmsg...)
	if _, _, err = parseRouteAnswer(msg(syscall.RTM_NEWROUTE, 1, noOIF), dst, 1); err == nil {
		t.Error("route without an interface: no error")
	}
	if req := routeRequest(dst, 1); len(req) != 36 || req[syscall.NLMSG_HDRLEN] != syscall.AF_INET || [4]byte(req[32:]) != dst.As4() {
		t.Errorf("routeRequest = % x", req)
	}
}
