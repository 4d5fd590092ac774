package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parsePayload decodes "text:...", "hex:..." or "b64:..." (standard or
// URL-safe base64, padded or not).
func parsePayload(s string) ([]byte, error) {
	enc, data, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("payload %q: want text:..., hex:... or b64:...", s)
	}
	switch enc {
	case "text":
		return []byte(data), nil
	case "hex":
		b, err := hex.DecodeString(data)
		if err != nil {
			return nil, fmt.Errorf("payload %q: %w", s, err)
		}
		return b, nil
	case "b64":
		for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := e.DecodeString(data); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("payload %q: not base64", s)
	default:
		return nil, fmt.Errorf("payload %q: encoding %q: want text, hex or b64", s, enc)
	}
}

// fields are the values a template can place in a payload.
type fields struct {
	n     uint64         // the sender's running datagram counter
	ip    netip.Addr     // identity address ({ip})
	port  uint32         // identity port ({port})
	src   netip.AddrPort // forged source ({src}, {sport})
	dport uint16         // destination port ({dport})
}

// template is a payload with placeholders {ip} {port} {src} {sport}
// {dport} {n}, compiled once so that expanding it costs a few appends.
type template struct {
	lits  [][]byte // literal before each placeholder, and the tail
	holes []string // placeholder names, len(lits)-1 of them
	fixed []byte   // non-nil: a payload with no placeholders (hex/b64 input)
}

var placeholders = []string{"{ip}", "{port}", "{src}", "{sport}", "{dport}", "{n}"}

// compileTemplate compiles spec: text:... may hold placeholders; hex: and
// b64: payloads are sent as they are.
func compileTemplate(flag, spec string) (template, error) {
	b, err := parsePayload(spec)
	if err != nil {
		return template{}, fmt.Errorf("-%s: %w", flag, err)
	}
	if !strings.HasPrefix(spec, "text:") {
		return template{fixed: b}, nil
	}
	var t template
	rest := string(b)
	for {
		i, which := -1, ""
		for _, p := range placeholders {
			if j := strings.Index(rest, p); j >= 0 && (i < 0 || j < i) {
				i, which = j, p
			}
		}
		if i < 0 {
			t.lits = append(t.lits, []byte(rest))
			return t, nil
		}
		t.lits = append(t.lits, []byte(rest[:i]))
		t.holes = append(t.holes, which)
		rest = rest[i+len(which):]
	}
}

// expand appends the payload for f to b.
func (t template) expand(b []byte, f fields) []byte {
	if t.fixed != nil {
		return append(b, t.fixed...)
	}
	for i, h := range t.holes {
		b = append(b, t.lits[i]...)
		switch h {
		case "{ip}":
			b = f.ip.AppendTo(b)
		case "{port}":
			b = strconv.AppendUint(b, uint64(f.port), 10)
		case "{src}":
			b = f.src.Addr().AppendTo(b)
		case "{sport}":
			b = strconv.AppendUint(b, uint64(f.src.Port()), 10)
		case "{dport}":
			b = strconv.AppendUint(b, uint64(f.dport), 10)
		case "{n}":
			b = strconv.AppendUint(b, f.n, 10)
		}
	}
	return append(b, t.lits[len(t.lits)-1]...)
}
