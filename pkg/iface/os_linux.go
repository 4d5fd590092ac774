package iface

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// OS returns the Lister of the host's (the calling thread's network
// namespace's) IPv4 addresses. On Linux it dumps the addresses over netlink
// (RTM_GETADDR), taking the address from IFA_LOCAL (IFA_ADDRESS when absent;
// on point-to-point links IFA_ADDRESS is the peer), the prefix length from
// the ifaddrmsg header and the broadcast from IFA_BROADCAST when the kernel
// has one (BroadcastFromOS true; otherwise cidr.Broadcast of the prefix).
// Names, Up and Loopback come from net.Interfaces by index; an address
// whose link vanished between the two dumps is named by its IFA_LABEL and
// reported down.
func OS() Lister { return ListerFunc(listLinux) }

func listLinux() ([]Interface, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: netlink RTM_GETADDR: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: parse netlink: %w", err)
	}
	links, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	byIndex := make(map[int]net.Interface, len(links))
	for _, l := range links {
		byIndex[l.Index] = l
	}
	var out []Interface
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type == syscall.NLMSG_DONE {
			break
		}
		if m.Header.Type != syscall.RTM_NEWADDR {
			continue
		}
		ifc, ok, err := parseAddrMsg(m)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if l, found := byIndex[ifc.Index]; found {
			ifc.Name = l.Name
			ifc.Up = l.Flags&net.FlagUp != 0
			ifc.Loopback = l.Flags&net.FlagLoopback != 0
		}
		ifc.Virtual = IsVirtual(ifc.Name)
		out = append(out, ifc)
	}
	return out, nil
}

// parseAddrMsg decodes one RTM_NEWADDR message. ok is false for anything
// that is not a usable IPv4 address.
func parseAddrMsg(m *syscall.NetlinkMessage) (ifc Interface, ok bool, err error) {
	if len(m.Data) < syscall.SizeofIfAddrmsg {
		return Interface{}, false, fmt.Errorf("list interface addresses: short ifaddrmsg (%d bytes)", len(m.Data))
	}
	// struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index; }
	family, prefixLen := m.Data[0], int(m.Data[1])
	index := int(binary.NativeEndian.Uint32(m.Data[4:8]))
	if family != syscall.AF_INET || prefixLen > 32 {
		return Interface{}, false, nil
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return Interface{}, false, fmt.Errorf("list interface addresses: parse attributes of index %d: %w", index, err)
	}
	var local, address, brd netip.Addr
	var label string
	for _, a := range attrs {
		switch a.Attr.Type {
		case syscall.IFA_LOCAL:
			local = addr4(a.Value)
		case syscall.IFA_ADDRESS:
			address = addr4(a.Value)
		case syscall.IFA_BROADCAST:
			brd = addr4(a.Value)
		case syscall.IFA_LABEL:
			label = cString(a.Value)
		}
	}
	ip := local
	if !ip.IsValid() {
		ip = address
	}
	if !ip.IsValid() {
		return Interface{}, false, nil
	}
	prefix := netip.PrefixFrom(ip, prefixLen).Masked()
	ifc = Interface{Name: label, Index: index, Addr: ip, Prefix: prefix}
	if brd.IsValid() {
		ifc.Broadcast, ifc.BroadcastFromOS = brd, true
	} else {
		ifc.Broadcast = cidr.Broadcast(prefix)
	}
	return ifc, true, nil
}

func addr4(b []byte) netip.Addr {
	if len(b) != 4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(b))
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
