package iface

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// OSRouter returns the Router of the calling thread's network namespace.
// On Linux it asks the kernel for the route to dst over netlink
// (RTM_GETROUTE with RTA_DST, as `ip route get` does): the answer names the
// outgoing interface (RTA_OIF) and the preferred source (RTA_PREFSRC).
// Nothing is sent to dst.
func OSRouter() Router { return RouterFunc(routeLinux) }

func routeLinux(dst netip.Addr) (Route, error) {
	if !dst.Is4() {
		return Route{}, fmt.Errorf("route to %s: not an IPv4 address", dst)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: netlink socket: %w", dst, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Route{}, fmt.Errorf("route to %s: bind netlink socket: %w", dst, err)
	}
	if err := unix.Sendto(fd, routeRequest(dst, 1), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Route{}, fmt.Errorf("route to %s: send RTM_GETROUTE: %w", dst, err)
	}
	buf := make([]byte, os.Getpagesize())
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return Route{}, fmt.Errorf("route to %s: receive netlink answer: %w", dst, err)
		}
		rt, done, err := parseRouteAnswer(buf[:n], dst, 1)
		if done || err != nil {
			return rt, err
		}
	}
}

// routeRequest is an RTM_GETROUTE request for the IPv4 address dst:
// nlmsghdr, rtmsg (family AF_INET, dst_len 32) and one RTA_DST attribute.
func routeRequest(dst netip.Addr, seq uint32) []byte {
	const size = syscall.NLMSG_HDRLEN + syscall.SizeofRtMsg + syscall.SizeofRtAttr + 4
	b := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], size)
	ne.PutUint16(b[4:], syscall.RTM_GETROUTE)
	ne.PutUint16(b[6:], syscall.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	rt := b[syscall.NLMSG_HDRLEN:]
	rt[0] = syscall.AF_INET
	rt[1] = 32 // rtm_dst_len
	at := rt[syscall.SizeofRtMsg:]
	ne.PutUint16(at[0:], syscall.SizeofRtAttr+4)
	ne.PutUint16(at[2:], syscall.RTA_DST)
	a := dst.As4()
	copy(at[syscall.SizeofRtAttr:], a[:])
	return b
}

// parseRouteAnswer decodes the kernel's answer to routeRequest(dst, seq).
// done is false when b holds no message of that sequence (read again).
func parseRouteAnswer(b []byte, dst netip.Addr, seq uint32) (rt Route, done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return Route{}, true, fmt.Errorf("route to %s: parse netlink answer: %w", dst, err)
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Seq != seq {
			continue
		}
		switch m.Header.Type {
		case syscall.NLMSG_ERROR:
			if len(m.Data) < 4 {
				return Route{}, true, fmt.Errorf("route to %s: short netlink error", dst)
			}
			if errno := -int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				return Route{}, true, fmt.Errorf("route to %s: %w", dst, syscall.Errno(errno))
			}
		case syscall.RTM_NEWROUTE:
			attrs, err := syscall.ParseNetlinkRouteAttr(m)
			if err != nil {
				return Route{}, true, fmt.Errorf("route to %s: parse route attributes: %w", dst, err)
			}
			rt = Route{Dst: dst}
			for _, a := range attrs {
				switch a.Attr.Type {
				case syscall.RTA_OIF:
					if len(a.Value) >= 4 {
						rt.Index = int(binary.NativeEndian.Uint32(a.Value))
					}
				case syscall.RTA_PREFSRC:
					rt.Src = addr4(a.Value)
				}
			}
			if rt.Index == 0 {
				return Route{}, true, fmt.Errorf("route to %s: the kernel's answer names no interface", dst)
			}
			return rt, true, nil
		}
	}
	return Route{}, false, nil
}
