package consulclient

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// ServiceID returns the deterministic Consul service ID of the endpoint at
// addr: "<service>-<ip>-<port>" with every character outside
// [A-Za-z0-9._-] replaced by '-' (so IPv6 colons and zones are safe in URL
// paths), e.g. "django-10.213.1.5-8000". The same endpoint always gets the
// same ID, so a restarted bridge never duplicates an instance.
func ServiceID(service string, addr netip.AddrPort) string {
	return SanitizeID(service + "-" + addr.Addr().String() + "-" + strconv.Itoa(int(addr.Port())))
}

// SanitizeID replaces every byte outside [A-Za-z0-9._-] with '-', so that
// a name is safe in URL paths and as a Consul ID.
func SanitizeID(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// errUnquotable is returned for strings that cannot be written as a
// go-bexpr string literal.
var errUnquotable = errors.New("contains both '\"' and '`' or a control character; cannot be used in a Consul filter")

// QuoteFilterString returns s as a go-bexpr string literal. Consul's filter
// grammar ends a double-quoted literal at the first '"' (no \" escape) and
// then applies strconv.Unquote, so strings with '"' use a raw `...` literal;
// control characters are rejected (raw literals would drop '\r').
func QuoteFilterString(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", errUnquotable
		}
	}
	if !strings.Contains(s, `"`) {
		return strconv.Quote(s), nil
	}
	if !strings.Contains(s, "`") {
		return "`" + s + "`", nil
	}
	return "", errUnquotable
}
