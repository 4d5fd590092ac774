package iface

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOSRootNamespace only lists (no traffic) the test host's addresses.
func TestOSRootNamespace(t *testing.T) {
	got, err := OS().Interfaces()
	if err != nil {
		t.Fatalf("OS().Interfaces(): %v", err)
	}
	var sawLo bool
	for _, i := range got {
		if !i.Addr.Is4() || !i.Prefix.IsValid() || i.Prefix != i.Prefix.Masked() || !i.Prefix.Contains(i.Addr) {
			t.Errorf("%s: bad address/prefix %s %s", i.Name, i.Addr, i.Prefix)
		}
		if i.Name == "" || i.Index <= 0 {
			t.Errorf("%s: missing name or index %d", i.Addr, i.Index)
		}
		if i.Name == "lo" && i.Addr == netip.MustParseAddr("127.0.0.1") {
			sawLo = true
			if i.Prefix != netip.MustParsePrefix("127.0.0.0/8") || !i.Loopback {
				t.Errorf("lo = %+v, want 127.0.0.0/8 and Loopback", i)
			}
		}
		if !i.Loopback && i.Prefix.Bits() < 32 {
			if !i.Broadcast.Is4() || !i.Prefix.Contains(i.Broadcast) || i.Broadcast == i.Addr {
				t.Errorf("%s %s: invalid broadcast %s", i.Name, i.Prefix, i.Broadcast)
			}
		}
	}
	if !sawLo {
		t.Errorf("lo with 127.0.0.1 not listed: %+v", got)
	}

	// Cross-check against the standard library's view: same IPv4 addresses.
	want := map[string]bool{}
	links, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		addrs, err := l.Addrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				want[l.Name+" "+ipn.String()] = true
			}
		}
	}
	have := map[string]bool{}
	for _, i := range got {
		have[i.Name+" "+netip.PrefixFrom(i.Addr, i.Prefix.Bits()).String()] = true
	}
	for k := range want {
		if !have[k] {
			t.Errorf("net.Interfaces lists %s, OS() does not", k)
		}
	}
	for k := range have {
		if !want[k] {
			t.Errorf("OS() lists %s, net.Interfaces does not", k)
		}
	}
}

// TestOSInNamespace lists the addresses of a link in a network namespace the
// test creates (no traffic is sent).
func TestOSInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command (iproute2) to create a network namespace")
	}
	ns := fmt.Sprintf("udbtest-%08x", rand.Uint32())
	run := func(args ...string) error {
		t.Helper()
		out, err := exec.Command(ipPath, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %v: %w: %s", args, err, out)
		}
		return nil
	}
	if err := run("netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run("netns", "del", ns); err != nil {
			t.Error(err)
		}
	})
	// A dummy link as asked; some kernels lack the module, then a veth pair.
	if err := run("-n", ns, "link", "add", "d0", "type", "dummy"); err != nil {
		t.Logf("dummy link unavailable, using veth: %v", err)
		if err := run("-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "vethudb"); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"-n", ns, "addr", "add", "10.213.9.5/22", "brd", "+", "dev", "d0"},
		{"-n", ns, "addr", "add", "10.213.20.1/24", "dev", "d0"}, // no broadcast from the OS
		{"-n", ns, "link", "set", "d0", "up"},
	} {
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}

	got, err := listInNetns(t, "/run/netns/"+ns)
	if err != nil {
		t.Fatal(err)
	}
	var d0 []Interface
	for _, i := range got {
		if i.Name == "d0" {
			d0 = append(d0, i)
		}
	}
	want := []Interface{
		{Addr: netip.MustParseAddr("10.213.9.5"), Prefix: netip.MustParsePrefix("10.213.8.0/22"),
			Broadcast: netip.MustParseAddr("10.213.11.255"), BroadcastFromOS: true},
		{Addr: netip.MustParseAddr("10.213.20.1"), Prefix: netip.MustParsePrefix("10.213.20.0/24"),
			Broadcast: netip.MustParseAddr("10.213.20.255"), BroadcastFromOS: false},
	}
	if len(d0) != len(want) {
		t.Fatalf("d0 addresses = %+v, want %d (all: %+v)", d0, len(want), got)
	}
	for k, w := range want {
		g := d0[k]
		w.Name, w.Index, w.Up = "d0", g.Index, true
		if g.Index <= 0 || g != w {
			t.Errorf("d0 address %d =\n %+v\nwant\n %+v", k, g, w)
		}
	}
	if sel := Select(got, nil, nil); len(sel) != 2 || sel[0].Addr != want[0].Addr || sel[1].Addr != want[1].Addr {
		t.Errorf("Select in namespace = %+v, want d0's two addresses", sel)
	}
	if diag := Diagnose(Select(got, nil, nil)); len(diag) != 1 || diag[0].Interface != "d0" ||
		diag[0].LikelyBroadcastDomain != netip.MustParsePrefix("10.213.9.0/24") {
		t.Errorf("Diagnose in namespace = %+v, want d0 10.213.9.5/22 flagged", diag)
	}
}

// listInNetns runs OS().Interfaces() on a thread switched into the network
// namespace at path. The thread is never unlocked, so the runtime discards
// it when the goroutine exits instead of reusing a thread in the wrong
// namespace, whether or not switching back would have worked.
func listInNetns(t *testing.T, path string) ([]Interface, error) {
	t.Helper()
	type result struct {
		ifs []Interface
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", path, err)}
			return
		}
		ifs, err := OS().Interfaces()
		ch <- result{ifs, err}
	}()
	r := <-ch
	return r.ifs, r.err
}

// TestParseAddrMsg covers decoding details that a host listing may not
// exercise: point-to-point links (IFA_LOCAL is ours, IFA_ADDRESS the peer),
// labels, and messages that are not usable IPv4 addresses.
func TestParseAddrMsg(t *testing.T) {
	type attr struct {
		typ uint16
		val []byte
	}
	msg := func(family, prefixLen byte, index uint32, attrs ...attr) *syscall.NetlinkMessage {
		data := []byte{family, prefixLen, 0, 0, 0, 0, 0, 0}
		binary.NativeEndian.PutUint32(data[4:], index)
		for _, a := range attrs {
			h := make([]byte, 4)
			binary.NativeEndian.PutUint16(h, uint16(4+len(a.val)))
			binary.NativeEndian.PutUint16(h[2:], a.typ)
			data = append(data, h...)
			data = append(data, a.val...)
			for len(data)%4 != 0 {
				data = append(data, 0)
			}
		}
		return &syscall.NetlinkMessage{
			Header: syscall.NlMsghdr{Len: uint32(syscall.NLMSG_HDRLEN + len(data)), Type: syscall.RTM_NEWADDR},
			Data:   data,
		}
	}
	ip := func(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }
	tests := []struct {
		name    string
		m       *syscall.NetlinkMessage
		want    Interface
		wantOK  bool
		wantErr bool
	}{
		{
			name: "broadcast from os",
			m: msg(syscall.AF_INET, 22, 7,
				attr{syscall.IFA_ADDRESS, ip("10.213.9.5")}, attr{syscall.IFA_LOCAL, ip("10.213.9.5")},
				attr{syscall.IFA_BROADCAST, ip("10.213.11.255")}, attr{syscall.IFA_LABEL, []byte("eth0\x00")}),
			want: Interface{Name: "eth0", Index: 7, Addr: netip.MustParseAddr("10.213.9.5"),
				Prefix: netip.MustParsePrefix("10.213.8.0/22"), Broadcast: netip.MustParseAddr("10.213.11.255"), BroadcastFromOS: true},
			wantOK: true,
		},
		{
			name: "point to point prefers local",
			m: msg(syscall.AF_INET, 32, 3,
				attr{syscall.IFA_ADDRESS, ip("10.8.0.1")}, attr{syscall.IFA_LOCAL, ip("10.8.0.2")},
				attr{syscall.IFA_LABEL, []byte("tun0:1\x00")}),
			want: Interface{Name: "tun0:1", Index: 3, Addr: netip.MustParseAddr("10.8.0.2"),
				Prefix: netip.MustParsePrefix("10.8.0.2/32"), Broadcast: netip.MustParseAddr("10.8.0.2")},
			wantOK: true,
		},
		{
			name: "address only, broadcast computed",
			m:    msg(syscall.AF_INET, 16, 2, attr{syscall.IFA_ADDRESS, ip("172.16.4.4")}),
			want: Interface{Index: 2, Addr: netip.MustParseAddr("172.16.4.4"),
				Prefix: netip.MustParsePrefix("172.16.0.0/16"), Broadcast: netip.MustParseAddr("172.16.255.255")},
			wantOK: true,
		},
		{name: "ipv6 family", m: msg(syscall.AF_INET6, 64, 2), wantOK: false},
		{name: "bad prefix length", m: msg(syscall.AF_INET, 33, 2, attr{syscall.IFA_ADDRESS, ip("10.0.0.1")}), wantOK: false},
		{name: "no address", m: msg(syscall.AF_INET, 24, 2, attr{syscall.IFA_LABEL, []byte("x\x00")}), wantOK: false},
		{name: "short header", m: &syscall.NetlinkMessage{Data: []byte{syscall.AF_INET, 24}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := parseAddrMsg(tt.m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseAddrMsg error = %v, wantErr %v", err, tt.wantErr)
			}
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("parseAddrMsg =\n %+v, %v\nwant\n %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
