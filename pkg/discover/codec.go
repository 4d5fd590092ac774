package discover

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseReply parses a plaintext discovery reply: prefix followed by
// "ip[:port]", surrounded by optional whitespace. It reports the IPv4 address
// (normalised: "01.002.3.4" yields 1.2.3.4), the port and whether the reply
// carried one; ok is false for anything else, which callers count and drop.
//
// The rules follow the upstream Python client, which decodes the rest of the
// payload as UTF-8 ignoring invalid bytes, strips surrounding whitespace and
// reads each octet (and the port) with int():
//
//   - payload must start with prefix, byte for byte;
//   - invalid UTF-8 bytes after the prefix are skipped, as errors="ignore" does;
//   - surrounding whitespace is what Python's str.isspace accepts (ASCII
//     \t \n \v \f \r, \x1c-\x1f, space, and Unicode spaces such as U+00A0);
//   - the IP is exactly four dot-separated parts of decimal digits 0..255,
//     leading zeros accepted; the port, if present after a single ':', is
//     decimal digits 1..65535, leading zeros accepted.
//
// Deliberate differences from Python's int(): only ASCII digits are accepted,
// so signs ("+1"), underscores ("1_0"), whitespace inside a part ("1. 2.3.4")
// and non-ASCII decimal digits, all of which int() tolerates, are rejected.
// No stock server emits them.
//
// ParseReply does not allocate.
func ParseReply(payload, prefix []byte) (ip netip.Addr, port uint16, hasPort bool, ok bool) {
	if len(payload) < len(prefix) || string(payload[:len(prefix)]) != string(prefix) {
		return netip.Addr{}, 0, false, false
	}
	rest := trimReply(payload[len(prefix):])

	var octets [4]byte
	part, val, digits := 0, 0, 0
	inPort := false
	pval, pdigits := 0, 0
	for i := 0; i < len(rest); {
		c := rest[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(rest[i:])
			if r == utf8.RuneError && size <= 1 {
				i++ // invalid byte: dropped, as errors="ignore" does
				continue
			}
			return netip.Addr{}, 0, false, false
		}
		i++
		switch {
		case c >= '0' && c <= '9':
			if inPort {
				pval = pval*10 + int(c-'0')
				pdigits++
				if pval > 65535 {
					return netip.Addr{}, 0, false, false
				}
				continue
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return netip.Addr{}, 0, false, false
			}
		case c == '.' && !inPort:
			if digits == 0 || part == 3 {
				return netip.Addr{}, 0, false, false
			}
			octets[part] = byte(val)
			part, val, digits = part+1, 0, 0
		case c == ':' && !inPort:
			inPort = true
		default:
			return netip.Addr{}, 0, false, false
		}
	}
	if part != 3 || digits == 0 {
		return netip.Addr{}, 0, false, false
	}
	octets[3] = byte(val)
	if inPort {
		if pdigits == 0 || pval == 0 {
			return netip.Addr{}, 0, false, false
		}
		return netip.AddrFrom4(octets), uint16(pval), true, true
	}
	return netip.AddrFrom4(octets), 0, false, true
}

// trimReply strips what Python's str.strip() strips after a lenient UTF-8
// decode: whitespace runes and invalid bytes at both ends.
func trimReply(b []byte) []byte {
	for len(b) > 0 {
		if c := b[0]; c < utf8.RuneSelf {
			if !isASCIISpace(c) {
				break
			}
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if !(r == utf8.RuneError && size <= 1) && !unicode.IsSpace(r) {
			break
		}
		b = b[size:]
	}
	for len(b) > 0 {
		if c := b[len(b)-1]; c < utf8.RuneSelf {
			if !isASCIISpace(c) {
				break
			}
			b = b[:len(b)-1]
			continue
		}
		r, size := utf8.DecodeLastRune(b)
		if !(r == utf8.RuneError && size <= 1) && !unicode.IsSpace(r) {
			break
		}
		b = b[:len(b)-size]
	}
	return b
}

// isASCIISpace reports the ASCII bytes Python's str.isspace accepts:
// \t \n \v \f \r, the separators \x1c-\x1f, and space.
func isASCIISpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)
}

// RawString returns payload as text the way upstream records raw_response:
// UTF-8 with invalid bytes dropped. It allocates; the round calls it only for
// servers it keeps.
func RawString(payload []byte) string {
	return strings.ToValidUTF8(string(payload), "")
}

// AppendReply appends to dst the plaintext reply a stock server writes:
// prefix, ip as a dotted quad and, when port is not 0, ":port" (the stock
// server appends none). ParseReply reads it back. Every answering side
// (Responder, the relay) writes its replies with it; in encrypted mode the
// reply on the wire is Key.Seal of this text.
func AppendReply(dst, prefix []byte, ip netip.Addr, port uint16) []byte {
	dst = append(dst, prefix...)
	dst = ip.Unmap().AppendTo(dst)
	if port != 0 {
		dst = strconv.AppendUint(append(dst, ':'), uint64(port), 10)
	}
	return dst
}
