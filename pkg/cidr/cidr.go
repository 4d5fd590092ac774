// Package cidr is IPv4 network arithmetic for discovery: netmask to prefix
// length and back (PrefixLenFromMask, MaskFromPrefixLen, ParseMask), the
// network and broadcast address of an address (Network, Broadcast), host
// counts and walks over a prefix (HostCount, Hosts), and the
// segmented-network diagnosis of one interface (DetectSegmented, upstream
// detect_segmented_network). It is usable on its own.
//
// Everything is built on net/netip values; only IPv4 is supported, and
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are rejected like any other
// IPv6 address: callers unmap first if they want them treated as IPv4.
package cidr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidMask is wrapped by every error about a netmask or prefix length
// that cannot be used, so callers can branch with errors.Is.
var ErrInvalidMask = errors.New("invalid netmask")

// ErrNotIPv4 is wrapped by errors about addresses that are not IPv4.
var ErrNotIPv4 = errors.New("not an IPv4 address")

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr(x uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], x)
	return netip.AddrFrom4(b)
}

// maskBits returns the IPv4 mask with the top n bits set (n in 0..32).
func maskBits(n int) uint32 {
	return ^uint32(0) << (32 - uint(n)) // shift by 32 yields 0 in Go
}

// PrefixLenFromMask returns the prefix length of an IPv4 dotted netmask such
// as 255.255.240.0 (20). It rejects non-IPv4 addresses and non-contiguous
// masks (255.0.255.0), naming the mask in the error.
func PrefixLenFromMask(mask netip.Addr) (int, error) {
	if !mask.Is4() {
		return 0, fmt.Errorf("netmask %q: %w: %w", mask.String(), ErrInvalidMask, ErrNotIPv4)
	}
	m := u32(mask)
	ones := bits.LeadingZeros32(^m)
	if m != maskBits(ones) {
		return 0, fmt.Errorf("netmask %q: %w: ones are not contiguous", mask.String(), ErrInvalidMask)
	}
	return ones, nil
}

// MaskFromPrefixLen returns the IPv4 dotted netmask for a prefix length in
// 0..32 (24 -> 255.255.255.0); any other length is an error.
func MaskFromPrefixLen(bits int) (netip.Addr, error) {
	if bits < 0 || bits > 32 {
		return netip.Addr{}, fmt.Errorf("prefix length %d: %w: must be 0..32", bits, ErrInvalidMask)
	}
	return addr(maskBits(bits)), nil
}

// ParseMask parses an IPv4 netmask given as a dotted mask ("255.255.255.0"),
// a prefix length ("24") or a slash prefix length ("/24") and returns the
// prefix length. A prefix length is decimal digits without sign or leading
// zeros (except "0") in 0..32. Errors name the input.
func ParseMask(s string) (int, error) {
	if strings.Contains(s, ".") && !strings.HasPrefix(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return 0, fmt.Errorf("netmask %q: %w: %w", s, ErrInvalidMask, err)
		}
		if !a.Is4() {
			// Named as written: netip would print "::0%0." as "::%0.".
			return 0, fmt.Errorf("netmask %q: %w: %w", s, ErrInvalidMask, ErrNotIPv4)
		}
		// A parsed IPv4 address prints as it was written (netip rejects
		// leading zeros), so this error names the input too.
		return PrefixLenFromMask(a)
	}
	digits := strings.TrimPrefix(s, "/")
	if !isPrefixLen(digits) {
		return 0, fmt.Errorf("netmask %q: %w: want a dotted mask, a prefix length 0..32 or /0../32", s, ErrInvalidMask)
	}
	n, _ := strconv.Atoi(digits) // at most two digits, cannot fail
	if n > 32 {
		return 0, fmt.Errorf("netmask %q: %w: prefix length must be 0..32", s, ErrInvalidMask)
	}
	return n, nil
}

func isPrefixLen(s string) bool {
	if len(s) == 0 || len(s) > 2 || (len(s) == 2 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Network returns the masked IPv4 network of ip under mask, which is anything
// ParseMask accepts: Network(10.1.2.3, "255.255.0.0") is 10.1.0.0/16.
func Network(ip netip.Addr, mask string) (netip.Prefix, error) {
	if !ip.Is4() {
		return netip.Prefix{}, fmt.Errorf("network of %q: %w", ip.String(), ErrNotIPv4)
	}
	n, err := ParseMask(mask)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network of %s: %w", ip, err)
	}
	return netip.PrefixFrom(ip, n).Masked(), nil
}

// Broadcast returns the IPv4 directed broadcast address of p: its address
// with all host bits set (10.1.2.3/16 -> 10.1.255.255). p need not be masked.
// A /31 or /32 has no broadcast address (RFC 3021); for them Broadcast returns
// the highest address of the prefix (the address itself for a /32), which is
// what the OS reports and what a sender on such a link can use. For an invalid
// or non-IPv4 prefix it returns the zero Addr.
func Broadcast(p netip.Prefix) netip.Addr {
	if !p.IsValid() || !p.Addr().Is4() {
		return netip.Addr{}
	}
	return addr(u32(p.Addr()) | ^maskBits(p.Bits()))
}

// AnyContains reports whether one of ps contains a: the "is this address on
// one of these networks" of every admission check.
func AnyContains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// HostCount returns the number of usable host addresses in p: 2^(32-bits)-2
// for /0../30 (network and broadcast excluded), 2 for a /31 (RFC 3021) and 1
// for a /32. It returns 0 for an invalid or non-IPv4 prefix.
func HostCount(p netip.Prefix) uint64 {
	if !p.IsValid() || !p.Addr().Is4() {
		return 0
	}
	switch b := p.Bits(); b {
	case 32:
		return 1
	case 31:
		return 2
	default:
		return uint64(1)<<(32-b) - 2
	}
}

// Hosts returns an iterator over the usable host addresses of p in ascending
// order: exactly the HostCount(p) addresses (both for a /31, the one for a
// /32). It yields nothing for an invalid or non-IPv4 prefix and allocates no
// slice, so walking a /8 costs only time.
func Hosts(p netip.Prefix) iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		if !p.IsValid() || !p.Addr().Is4() {
			return
		}
		first := u32(p.Masked().Addr())
		last := u32(Broadcast(p))
		if p.Bits() <= 30 {
			first++
			last--
		}
		for x := first; ; x++ {
			if !yield(addr(x)) || x == last {
				return
			}
		}
	}
}
