package appcheck_test

import (
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// fullBacklog returns a loopback address whose listener never accepts and
// whose backlog is full, so that the kernel drops further SYNs and a
// connect to it hangs.
func fullBacklog(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	// Fill the queue: connects that complete (the backlog takes one or
	// two) until one does not complete at once.
	for i := 0; i < 8; i++ {
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(c) })
		err = syscall.Connect(c, &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: [4]byte{127, 0, 0, 1}})
		if err != nil && err != syscall.EINPROGRESS {
			t.Fatal(err)
		}
		if !connected(c, 50*time.Millisecond) {
			return addr
		}
	}
	t.Skip("could not fill a listener's backlog")
	return addr
}

// connected reports whether the non-blocking connect on fd completes
// within d.
func connected(fd int, d time.Duration) bool {
	var w syscall.FdSet
	w.Bits[fd/64] |= 1 << (uint(fd) % 64)
	tv := syscall.NsecToTimeval(d.Nanoseconds())
	n, err := syscall.Select(fd+1, nil, &w, nil, &tv)
	if err != nil || n == 0 {
		return false
	}
	v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	return err == nil && v == 0
}
