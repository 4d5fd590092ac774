package observation

import (
	"errors"
	"fmt"
	"net/netip"
	"unicode"
	"unicode/utf8"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Entry is one observed server.
type Entry struct {
	// Addr is the server's address: IPv4 or IPv6 (not IPv4-mapped, so one
	// server has one spelling), no zone, port 1..65535.
	Addr netip.AddrPort
	// Segment is the LAN segment it was seen on, e.g. "10.1.4.0/24". It may
	// be empty; at most MaxSegmentLen bytes of UTF-8.
	Segment string
	// Health is the observing bridge's app check verdict on the server
	// (endpoint.Ready when it runs no app check): Ready, Pending or
	// Failing.
	Health endpoint.Health
	// Output is what the check said when Health last changed, e.g.
	// "HTTP GET /healthz: 503 in 4 ms" ("" when the bridge runs no app
	// check): at most MaxOutputLen bytes of UTF-8.
	Output string
}

// Observation is what one bridge observes now.
type Observation struct {
	// Bridge is the ID of the observing bridge: 1..MaxBridgeLen bytes of
	// UTF-8 without control characters.
	Bridge string
	// Entries is sorted by Addr (netip.AddrPort.Compare) and holds no
	// duplicate Addr.
	Entries []Entry
}

// Limits of the format.
const (
	// Version is the newest format version: Decode reads versions 1 to
	// Version, and Encode writes version 1 when every entry is Ready with
	// no Output (so that bridges of the release before app checks read
	// it) and Version otherwise.
	Version = 2
	// MaxBridgeLen is the longest bridge ID in bytes.
	MaxBridgeLen = 253
	// MaxSegmentLen is the longest segment name in bytes.
	MaxSegmentLen = 255
	// MaxOutputLen is the longest check output in bytes.
	MaxOutputLen = 255
	// MaxChunks is the most chunks one observation may have: 1024 chunks of
	// 400 KiB hold some 50 million IPv4 servers.
	MaxChunks = 1024
)

// Sentinel errors. Every error of Encode, Decode and DecodeChunk wraps
// exactly one of them and says what is wrong where.
var (
	// ErrFormat: the bytes are not a chunk of this format (magic, lengths,
	// address family, segment or output index, health, trailing bytes).
	ErrFormat = errors.New("malformed observation")
	// ErrVersion: the chunk uses a format version this package cannot read.
	ErrVersion = errors.New("unsupported observation format version")
	// ErrChecksum: the chunk's checksum does not match; it was truncated or
	// corrupted.
	ErrChecksum = errors.New("observation checksum mismatch")
	// ErrChunks: the chunks do not make up one observation (none, a
	// duplicate or missing index, different bridges, counts or versions).
	ErrChunks = errors.New("inconsistent observation chunks")
	// ErrInvalid: the observation breaks the rules of Observation and Entry
	// (bridge ID, segment name, health, output, zero port, zone, order,
	// duplicates).
	ErrInvalid = errors.New("invalid observation")
	// ErrChunkSize: Encode cannot fit the observation into MaxChunks chunks
	// of the requested size.
	ErrChunkSize = errors.New("observation does not fit the chunk size")
)

// Validate reports the first way o breaks the rules of Observation and Entry,
// wrapping ErrInvalid; Encode calls it.
func (o Observation) Validate() error {
	if err := checkBridge(o.Bridge); err != nil {
		return fmt.Errorf("observe: %w: %w", err, ErrInvalid)
	}
	for i, e := range o.Entries {
		err := checkAddr(e.Addr)
		if err == nil && (i == 0 || e.Segment != o.Entries[i-1].Segment) {
			err = checkSegment(e.Segment)
		}
		if err == nil {
			err = checkHealth(e.Health)
		}
		if err == nil && e.Output != "" && (i == 0 || e.Output != o.Entries[i-1].Output) {
			err = checkOutput(e.Output)
		}
		if err == nil && i > 0 {
			err = checkOrder(o.Entries[i-1].Addr, e.Addr)
		}
		if err != nil {
			return fmt.Errorf("observe: bridge %q: entry %d: %w: %w", o.Bridge, i, err, ErrInvalid)
		}
	}
	return nil
}

// The check functions return errors without a sentinel; callers wrap
// ErrInvalid and say where.

func checkBridge(id string) error {
	if len(id) == 0 || len(id) > MaxBridgeLen {
		return fmt.Errorf("bridge ID %q is %d bytes, want 1..%d", id, len(id), MaxBridgeLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("bridge ID %q is not valid UTF-8", id)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("bridge ID %q holds control character %U", id, r)
		}
	}
	return nil
}

func checkSegment(s string) error {
	if len(s) > MaxSegmentLen {
		return fmt.Errorf("segment %.20q... is %d bytes, want at most %d", s, len(s), MaxSegmentLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("segment %q is not valid UTF-8", s)
	}
	return nil
}

func checkHealth(h endpoint.Health) error {
	if h > endpoint.Failing {
		return fmt.Errorf("health %d, want %d (ready), %d (pending) or %d (failing)", h, endpoint.Ready, endpoint.Pending, endpoint.Failing)
	}
	return nil
}

func checkOutput(s string) error {
	if len(s) > MaxOutputLen {
		return fmt.Errorf("check output %.20q... is %d bytes, want at most %d", s, len(s), MaxOutputLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("check output %q is not valid UTF-8", s)
	}
	return nil
}

// checkAddr holds the rules on an address that the encoding itself cannot
// rule out: Decode builds addresses without zones and only of family 4 or 6.
func checkAddr(ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return fmt.Errorf("address %s is not an IP address", ap)
	case a.Zone() != "":
		return fmt.Errorf("address %s has a zone", ap)
	case a.Is4In6():
		return fmt.Errorf("address %s is IPv4-mapped IPv6; use the IPv4 address", ap)
	case ap.Port() == 0:
		return fmt.Errorf("address %s has port 0", ap)
	}
	return nil
}

// checkOrder says whether b may follow a in Entries.
func checkOrder(a, b netip.AddrPort) error {
	switch c := a.Compare(b); {
	case c == 0:
		return fmt.Errorf("duplicate address %s", b)
	case c > 0:
		return fmt.Errorf("address %s sorts before %s, its predecessor", b, a)
	}
	return nil
}
