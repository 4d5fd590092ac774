package discover

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// oobSize holds one IP_PKTINFO control message.
var oobSize = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// listenProbe opens the round's IPv4 UDP socket on 0.0.0.0:0 with
// SO_BROADCAST and a receive buffer of want bytes: SO_RCVBUF, then
// SO_RCVBUFFORCE (needs CAP_NET_ADMIN) if the kernel capped it at
// net.core.rmem_max. It returns the buffer size the kernel reports.
func listenProbe(ctx context.Context, want int) (*net.UDPConn, int, error) {
	var granted int
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				serr = fmt.Errorf("SO_BROADCAST: %w", serr)
				return
			}
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, want); serr != nil {
				serr = fmt.Errorf("SO_RCVBUF %d: %w", want, serr)
				return
			}
			granted, _ = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF)
			// The kernel reports twice what it set (bookkeeping overhead).
			if granted/2 < want && unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want) == nil {
				granted, _ = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:0")
	if err != nil {
		return nil, 0, fmt.Errorf("open discovery socket on 0.0.0.0: %w", err)
	}
	return pc.(*net.UDPConn), granted, nil
}

// pktinfoIndex returns the ingress interface index from an IP_PKTINFO
// control message in oob, or 0. It does not allocate (ipv4.ControlMessage's
// Parse does).
func pktinfoIndex(oob []byte) int {
	for len(oob) > 0 {
		hdr, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if hdr.Level == unix.IPPROTO_IP && hdr.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo {
			return int(int32(binary.NativeEndian.Uint32(data)))
		}
		oob = rest
	}
	return 0
}

// reuseControl sets SO_REUSEADDR and SO_REUSEPORT so several responders on
// one host can bind the same port, as stock servers do.
func reuseControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			serr = fmt.Errorf("SO_REUSEADDR: %w", serr)
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
			serr = fmt.Errorf("SO_REUSEPORT: %w", serr)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// The layout of SO_MEMINFO's answer (linux/sock_diag.h): SK_MEMINFO_DROPS
// is the 9th of SK_MEMINFO_VARS (10 since Linux 5.x; 9 before BACKLOG).
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 10
)

// socketDrops returns how many datagrams the kernel dropped on conn because
// its receive buffer was full: SO_MEMINFO's SK_MEMINFO_DROPS (Linux 4.6+).
func socketDrops(conn *net.UDPConn) (int, bool) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, false
	}
	var drops int
	ok := false
	_ = rc.Control(func(fd uintptr) {
		var mem [skMeminfoVars]uint32
		size := uint32(unsafe.Sizeof(mem))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno == 0 && size >= (skMeminfoDrops+1)*4 {
			drops, ok = int(mem[skMeminfoDrops]), true
		}
	})
	return drops, ok
}
