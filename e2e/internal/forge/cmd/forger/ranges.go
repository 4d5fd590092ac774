package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// span is an inclusive range of uint32 values (IPv4 addresses or ports).
type span struct{ lo, hi uint32 }

// valueList is a union of spans indexed as one list, in the order given.
type valueList struct {
	spans []span
	n     uint64
}

func (v *valueList) add(lo, hi uint32) {
	v.spans = append(v.spans, span{lo, hi})
	v.n += uint64(hi-lo) + 1
}

// at returns the value at index i mod the list's length.
func (v *valueList) at(i uint64) uint32 {
	i %= v.n
	for _, s := range v.spans {
		w := uint64(s.hi-s.lo) + 1
		if i < w {
			return s.lo + uint32(i)
		}
		i -= w
	}
	panic("unreachable")
}

// ipList is a list of IPv4 addresses.
type ipList struct{ valueList }

func (l ipList) addr(i uint64) netip.Addr {
	v := l.at(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// parseIPs parses a comma-separated list of addresses, ranges a-b and CIDR
// prefixes (every address of the prefix, network and broadcast included).
func parseIPs(flag, s string) (ipList, error) {
	var l ipList
	if strings.TrimSpace(s) == "" {
		return l, fmt.Errorf("-%s: empty address list", flag)
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if pfx, err := netip.ParsePrefix(part); err == nil {
			if !pfx.Addr().Is4() {
				return l, fmt.Errorf("-%s %q: %q is not IPv4", flag, s, part)
			}
			pfx = pfx.Masked()
			lo := ip4(pfx.Addr())
			l.add(lo, lo|uint32(1<<(32-pfx.Bits())-1))
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		lo, err := netip.ParseAddr(a)
		if err != nil || !lo.Is4() {
			return l, fmt.Errorf("-%s %q: %q is not an IPv4 address, range a-b or prefix", flag, s, part)
		}
		hi := lo
		if isRange {
			if hi, err = netip.ParseAddr(b); err != nil || !hi.Is4() {
				return l, fmt.Errorf("-%s %q: range end %q is not an IPv4 address", flag, s, b)
			}
		}
		if ip4(hi) < ip4(lo) {
			return l, fmt.Errorf("-%s %q: range %q ends before it starts", flag, s, part)
		}
		l.add(ip4(lo), ip4(hi))
	}
	return l, nil
}

// parsePorts parses a comma-separated list of ports and ranges a-b; port 0
// is refused.
func parsePorts(flag, s string) (valueList, error) {
	var l valueList
	if strings.TrimSpace(s) == "" {
		return l, fmt.Errorf("-%s: empty port list", flag)
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		a, b, isRange := strings.Cut(part, "-")
		lo, err := parsePort(a)
		if err != nil {
			return l, fmt.Errorf("-%s %q: %w", flag, s, err)
		}
		hi := lo
		if isRange {
			if hi, err = parsePort(b); err != nil {
				return l, fmt.Errorf("-%s %q: %w", flag, s, err)
			}
		}
		if hi < lo {
			return l, fmt.Errorf("-%s %q: range %q ends before it starts", flag, s, part)
		}
		l.add(lo, hi)
	}
	return l, nil
}

func parsePort(s string) (uint32, error) {
	p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %q: want 1..65535", s)
	}
	return uint32(p), nil
}

func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// parseAddrPort parses an IPv4 ip:port.
func parseAddrPort(flag, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().Is4() {
		return ap, fmt.Errorf("-%s %q: want IPv4 ip:port", flag, s)
	}
	return ap, nil
}
