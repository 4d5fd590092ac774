package observation

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Chunk is the header of one chunk: whose observation it belongs to and
// where in it.
type Chunk struct {
	Bridge string
	// Index is the chunk's place in the observation, 0..Count-1.
	Index int
	// Count is how many chunks the observation has.
	Count int
	// Version is the chunk's format version, 1..Version.
	Version int
}

// DecodeChunk checks one chunk's magic, version, checksum and header and
// returns the header, so a reader can group chunks by bridge before calling
// Decode. The segment table and entries are checked by Decode. Errors wrap
// ErrFormat, ErrVersion, ErrChecksum or ErrInvalid (bridge ID) and give the
// byte offset of the problem.
func DecodeChunk(b []byte) (Chunk, error) {
	c, _, err := parseHeader(b)
	if err != nil {
		return Chunk{}, fmt.Errorf("observe: %w", err)
	}
	return c, nil
}

// offsetErr reports a problem at byte offset off of a chunk.
func offsetErr(off int, sentinel error, format string, args ...any) error {
	return fmt.Errorf("offset %d: %s: %w", off, fmt.Sprintf(format, args...), sentinel)
}

// parseHeader checks b and returns its header and the offset of its segment
// table.
func parseHeader(b []byte) (Chunk, int, error) {
	const prefix = 4 + 1 + 1 // magic, version, bridge ID length
	if len(b) < prefix {
		return Chunk{}, 0, offsetErr(len(b), ErrFormat, "chunk is %d bytes, shorter than its first %d", len(b), prefix)
	}
	if !bytes.Equal(b[:4], magic[:]) {
		return Chunk{}, 0, offsetErr(0, ErrFormat, "magic % x, want % x (%q)", b[:4], magic[:], magic[:])
	}
	n := int(b[5])
	bridge := ""
	if len(b) >= prefix+n {
		bridge = string(b[prefix : prefix+n])
	}
	if v := b[4]; v < 1 || v > Version {
		if v > Version && bridge != "" && checkBridge(bridge) == nil {
			return Chunk{}, 0, offsetErr(4, ErrVersion, "observation from bridge %q uses format v%d; this bridge understands v1 to v%d", bridge, v, Version)
		}
		return Chunk{}, 0, offsetErr(4, ErrVersion, "format v%d; this bridge understands v1 to v%d", v, Version)
	}
	end := len(b) - crcLen
	if end < headerLen(n) {
		return Chunk{}, 0, offsetErr(len(b), ErrChecksum, "chunk is %d bytes, too short for its header and checksum (%d); truncated", len(b), headerLen(n)+crcLen)
	}
	if got, want := binary.BigEndian.Uint32(b[end:]), crc32.Checksum(b[:end], castagno); got != want {
		return Chunk{}, 0, offsetErr(end, ErrChecksum, "stored CRC-32C %#08x, computed %#08x over %d bytes; truncated or corrupted", got, want, end)
	}
	if err := checkBridge(bridge); err != nil {
		return Chunk{}, 0, offsetErr(5, ErrInvalid, "%v", err)
	}
	off := prefix + n
	c := Chunk{
		Bridge:  bridge,
		Index:   int(binary.BigEndian.Uint16(b[off:])),
		Count:   int(binary.BigEndian.Uint16(b[off+2:])),
		Version: int(b[4]),
	}
	if c.Count < 1 || c.Count > MaxChunks {
		return Chunk{}, 0, offsetErr(off+2, ErrFormat, "chunk count %d, want 1..%d", c.Count, MaxChunks)
	}
	if c.Index >= c.Count {
		return Chunk{}, 0, offsetErr(off, ErrFormat, "chunk index %d, want 0..%d", c.Index, c.Count-1)
	}
	return c, off + 4, nil
}

// uvarint reads a shortest-form uvarint at b[off:end] and returns it and the
// offset after it.
func uvarint(b []byte, off, end int, what string) (int, int, error) {
	v, n := binary.Uvarint(b[off:end])
	switch {
	case n == 0:
		return 0, 0, offsetErr(off, ErrFormat, "%s: uvarint runs past the end of the chunk", what)
	case n < 0:
		return 0, 0, offsetErr(off, ErrFormat, "%s: uvarint overflows 64 bits", what)
	case n > 1 && b[off+n-1] == 0:
		return 0, 0, offsetErr(off, ErrFormat, "%s: uvarint % x is not in its shortest form", what, b[off:off+n])
	case v > math.MaxInt32:
		return 0, 0, offsetErr(off, ErrFormat, "%s %d is out of range", what, v)
	}
	return int(v), off + n, nil
}

// count reads a count of items that take at least size bytes each, of which
// the rest of b[:end] must hold at least as many as it says, after reserve
// bytes that follow them.
func count(b []byte, off, end int, what string, size, reserve int) (int, int, error) {
	v, next, err := uvarint(b, off, end, what)
	if err != nil {
		return 0, 0, err
	}
	if room := max(end-next-reserve, 0) / size; v > room {
		return 0, 0, offsetErr(off, ErrFormat, "%s %d, at most %d fit in the %d bytes left", what, v, room, end-next)
	}
	return v, next, nil
}

// part is a parsed chunk whose entries are still to be read.
type part struct {
	b        []byte
	pos      int // position in Decode's argument
	version  int
	segs     []string
	outs     []string // version 2
	n        int      // number of entries
	off, end int      // entries start at off; the checksum at end
}

// Decode decodes the chunks of one observation, given in any order, of
// format version 1 (every entry Ready, with no Output) or 2. It treats them
// as untrusted: every chunk must be well-formed and carry a valid checksum,
// all must name the same bridge, count and version, every index must be
// present exactly once, and the entries must obey the rules of Observation
// and Entry across chunks. It allocates in proportion to the input's size,
// never to a count read from it: one slice for all entries, with equal
// segment names, and equal outputs, sharing one string.
//
// Errors wrap ErrFormat, ErrVersion, ErrChecksum, ErrChunks or ErrInvalid
// and name the chunk by its position in chunks and, where it applies, the
// byte offset within it.
func Decode(chunks [][]byte) (Observation, error) {
	if len(chunks) == 0 {
		return Observation{}, fmt.Errorf("observe: no chunks: %w", ErrChunks)
	}
	if len(chunks) > MaxChunks {
		return Observation{}, fmt.Errorf("observe: %d chunks, at most %d: %w", len(chunks), MaxChunks, ErrChunks)
	}
	parts := make([]part, len(chunks))
	var at [MaxChunks]int16 // 1 + the position of the chunk with each index
	var first Chunk
	for i, b := range chunks {
		c, off, err := parseHeader(b)
		if err != nil {
			return Observation{}, fmt.Errorf("observe: chunk %d: %w", i, err)
		}
		if i == 0 {
			first = c
		} else if c.Bridge != first.Bridge {
			return Observation{}, fmt.Errorf("observe: chunk %d is from bridge %q, chunk 0 from bridge %q: %w", i, c.Bridge, first.Bridge, ErrChunks)
		} else if c.Count != first.Count {
			return Observation{}, fmt.Errorf("observe: bridge %q: chunk %d says %d chunks, chunk 0 says %d: %w", c.Bridge, i, c.Count, first.Count, ErrChunks)
		} else if c.Version != first.Version {
			return Observation{}, fmt.Errorf("observe: bridge %q: chunk %d is format v%d, chunk 0 v%d: %w", c.Bridge, i, c.Version, first.Version, ErrChunks)
		}
		if p := at[c.Index]; p != 0 {
			return Observation{}, fmt.Errorf("observe: bridge %q: chunks %d and %d both have index %d: %w", c.Bridge, p-1, i, c.Index, ErrChunks)
		}
		at[c.Index] = int16(i + 1)
		if c.Index < len(chunks) { // else a lower index is missing
			parts[c.Index] = part{b: b, pos: i, version: c.Version, off: off, end: len(b) - crcLen}
		}
	}
	if first.Count != len(chunks) { // more would have repeated an index
		return Observation{}, fmt.Errorf("observe: bridge %q: %d chunks of %d given, %s: %w",
			first.Bridge, len(chunks), first.Count, missing(at[:first.Count]), ErrChunks)
	}

	// String tables and entry counts first, to allocate the entries once.
	segs, outs := map[string]strSeen{}, map[string]strSeen{}
	total := 0
	for i := range parts {
		p := &parts[i]
		if err := p.tables(segs, outs); err != nil {
			return Observation{}, fmt.Errorf("observe: chunk %d: %w", p.pos, err)
		}
		total += p.n
	}
	o := Observation{Bridge: first.Bridge}
	if total > 0 {
		o.Entries = make([]Entry, 0, total)
	}
	for i := range parts {
		var err error
		if o.Entries, err = parts[i].entries(o.Entries); err != nil {
			return Observation{}, fmt.Errorf("observe: chunk %d: %w", parts[i].pos, err)
		}
	}
	return o, nil
}

// missing lists the indexes absent from at.
func missing(at []int16) string {
	var idx []string
	for i, p := range at {
		if p == 0 {
			if len(idx) == 8 {
				idx = append(idx, "...")
				break
			}
			idx = append(idx, strconv.Itoa(i))
		}
	}
	return "missing index " + strings.Join(idx, ", ")
}

// tables reads the chunk's segment table, its output table (version 2)
// and its entry count. segs and outs map each name and output met so far
// to its shared string and the position of the last chunk that listed it,
// to catch a string listed twice in one table.
func (p *part) tables(segs, outs map[string]strSeen) error {
	var err error
	off := p.off
	if p.segs, off, err = p.table(off, segs, "segment", checkSegment); err != nil {
		return err
	}
	size := minEntry
	if p.version >= 2 {
		if p.outs, off, err = p.table(off, outs, "output", checkOutput); err != nil {
			return err
		}
		size = minEntry2
	}
	p.n, p.off, err = count(p.b, off, p.end, "entry count", size, 0)
	return err
}

// table reads a string table of what (segments, outputs) at off, each
// string checked by check, and returns it and the offset after it.
func (p *part) table(off int, seen map[string]strSeen, what string, check func(string) error) ([]string, int, error) {
	n, off, err := count(p.b, off, p.end, what+" count", 1, 1)
	if err != nil {
		return nil, 0, err
	}
	list := make([]string, n)
	for j := range list {
		if off >= p.end {
			return nil, 0, offsetErr(off, ErrFormat, "%s %d of %d runs past the end of the chunk", what, j, n)
		}
		l := int(p.b[off])
		if off+1+l > p.end {
			return nil, 0, offsetErr(off, ErrFormat, "%s %d is %d bytes, past the end of the chunk", what, j, l)
		}
		raw := p.b[off+1 : off+1+l]
		s, ok := seen[string(raw)]
		switch {
		case !ok:
			s = strSeen{name: string(raw), pos: p.pos}
			if err := check(s.name); err != nil {
				return nil, 0, offsetErr(off+1, ErrInvalid, "%s %d: %s", what, j, err)
			}
		case s.pos == p.pos:
			return nil, 0, offsetErr(off, ErrFormat, "%s %d (%q) is listed twice", what, j, s.name)
		default:
			s.pos = p.pos
		}
		seen[s.name] = s
		list[j] = s.name
		off += 1 + l
	}
	return list, off, nil
}

type strSeen struct {
	name string
	pos  int
}

// entries appends the chunk's entries to dst, checking each and that it
// sorts after the one before it (the last of the previous chunk included).
func (p *part) entries(dst []Entry) ([]Entry, error) {
	off := p.off
	for j := 0; j < p.n; j++ {
		at := off
		if off >= p.end {
			return dst, offsetErr(at, ErrFormat, "entry %d of %d runs past the end of the chunk", j, p.n)
		}
		var a netip.Addr
		switch fam := p.b[off]; fam {
		case family4:
			if off+1+4+2 > p.end {
				return dst, offsetErr(at, ErrFormat, "entry %d runs past the end of the chunk", j)
			}
			a = netip.AddrFrom4([4]byte(p.b[off+1 : off+5]))
			off += 5
		case family6:
			if off+1+16+2 > p.end {
				return dst, offsetErr(at, ErrFormat, "entry %d runs past the end of the chunk", j)
			}
			a = netip.AddrFrom16([16]byte(p.b[off+1 : off+17]))
			off += 17
		default:
			return dst, offsetErr(at, ErrFormat, "entry %d: address family %d, want %d or %d", j, fam, family4, family6)
		}
		ap := netip.AddrPortFrom(a, binary.BigEndian.Uint16(p.b[off:]))
		off += 2
		idx, next, err := uvarint(p.b, off, p.end, "segment index")
		if err != nil {
			return dst, fmt.Errorf("entry %d: %w", j, err)
		}
		if idx >= len(p.segs) {
			return dst, offsetErr(off, ErrFormat, "entry %d: segment index %d out of range, the table has %d", j, idx, len(p.segs))
		}
		off = next
		e := Entry{Addr: ap, Segment: p.segs[idx]}
		if p.version >= 2 {
			if off >= p.end {
				return dst, offsetErr(off, ErrFormat, "entry %d: health runs past the end of the chunk", j)
			}
			e.Health = endpoint.Health(p.b[off])
			if err := checkHealth(e.Health); err != nil {
				return dst, offsetErr(off, ErrFormat, "entry %d: %s", j, err)
			}
			idx, next, err := uvarint(p.b, off+1, p.end, "output index")
			if err != nil {
				return dst, fmt.Errorf("entry %d: %w", j, err)
			}
			if idx >= len(p.outs) {
				return dst, offsetErr(off+1, ErrFormat, "entry %d: output index %d out of range, the table has %d", j, idx, len(p.outs))
			}
			e.Output = p.outs[idx]
			off = next
		}
		if err := checkAddr(ap); err != nil {
			return dst, offsetErr(at, ErrInvalid, "entry %d: %s", j, err)
		}
		if k := len(dst); k > 0 {
			if err := checkOrder(dst[k-1].Addr, ap); err != nil {
				return dst, offsetErr(at, ErrInvalid, "entry %d: %s", j, err)
			}
		}
		dst = append(dst, e)
	}
	if off != p.end {
		return dst, offsetErr(off, ErrFormat, "%d bytes after the last entry, before the checksum", p.end-off)
	}
	return dst, nil
}
