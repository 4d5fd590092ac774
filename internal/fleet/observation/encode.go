package observation

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

var (
	magic    = [4]byte{'U', 'D', 'B', 'O'}
	castagno = crc32.MakeTable(crc32.Castagnoli)
)

const (
	family4  = 4
	family6  = 6
	crcLen   = 4
	minEntry = 1 + 4 + 2 + 1 // smallest entry: IPv4, one-byte segment index
)

// headerLen is the length of a chunk's fixed header for a bridge ID of n
// bytes: magic, version, ID length, ID, index, count.
func headerLen(n int) int { return 4 + 1 + 1 + n + 2 + 2 }

func addrLen(e Entry) int {
	if e.Addr.Addr().Is4() {
		return 4
	}
	return 16
}

func uvarintLen(v int) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// plan is one chunk to write: entries [start, end), the segments they use
// in order of first use, and the exact size of the chunk.
type plan struct {
	start, end int
	segs       []string
	size       int
}

// Encode encodes o as described in the package documentation, in as few
// chunks of at most maxChunk bytes as the greedy packing allows (one when it
// fits). Equal observations give identical chunks. It returns an error
// wrapping ErrInvalid when o breaks its rules, and ErrChunkSize when an entry
// does not fit in an empty chunk or o needs more than MaxChunks chunks.
func Encode(o Observation, maxChunk int) ([][]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	plans, err := pack(o, maxChunk)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(plans))
	for i, p := range plans {
		out[i] = write(o, p, i, len(plans))
	}
	return out, nil
}

// pack splits o.Entries into chunks of at most maxChunk bytes.
func pack(o Observation, maxChunk int) ([]plan, error) {
	head := headerLen(len(o.Bridge))
	if empty := head + 1 + 1 + crcLen; maxChunk < empty {
		return nil, fmt.Errorf("observe: bridge %q: maxChunk %d is below %d, the size of an empty chunk: %w",
			o.Bridge, maxChunk, empty, ErrChunkSize)
	}
	var plans []plan
	index := map[string]int{}
	start := 0
	for {
		clear(index)
		p := plan{start: start}
		segBytes, entBytes := 0, 0
		i := start
		last, lastIdx := "", -1 // entries in a row mostly share a segment
		for ; i < len(o.Entries); i++ {
			e := o.Entries[i]
			idx, known := lastIdx, lastIdx >= 0 && e.Segment == last
			if !known {
				idx, known = index[e.Segment]
			}
			nsegs, addSeg := len(p.segs), 0
			if !known {
				idx, addSeg = nsegs, 1+len(e.Segment)
				nsegs++
			}
			ent := 1 + addrLen(e) + 2 + uvarintLen(idx)
			size := head + uvarintLen(nsegs) + segBytes + addSeg +
				uvarintLen(i-start+1) + entBytes + ent + crcLen
			if size > maxChunk {
				break
			}
			if !known {
				index[e.Segment] = idx
				p.segs = append(p.segs, e.Segment)
				segBytes += addSeg
			}
			entBytes += ent
			last, lastIdx = e.Segment, idx
		}
		if i == start && i < len(o.Entries) {
			return nil, fmt.Errorf("observe: bridge %q: entry %d (%s, segment %q) does not fit in an empty chunk of %d bytes: %w",
				o.Bridge, i, o.Entries[i].Addr, o.Entries[i].Segment, maxChunk, ErrChunkSize)
		}
		p.end = i
		p.size = head + uvarintLen(len(p.segs)) + segBytes + uvarintLen(i-start) + entBytes + crcLen
		plans = append(plans, p)
		if len(plans) > MaxChunks {
			return nil, fmt.Errorf("observe: bridge %q: %d entries need more than %d chunks of %d bytes: %w",
				o.Bridge, len(o.Entries), MaxChunks, maxChunk, ErrChunkSize)
		}
		start = i
		if start == len(o.Entries) {
			return plans, nil
		}
	}
}

// write writes chunk i of count as planned.
func write(o Observation, p plan, i, count int) []byte {
	b := make([]byte, 0, p.size)
	b = append(b, magic[:]...)
	b = append(b, Version, byte(len(o.Bridge)))
	b = append(b, o.Bridge...)
	b = binary.BigEndian.AppendUint16(b, uint16(i))
	b = binary.BigEndian.AppendUint16(b, uint16(count))
	b = binary.AppendUvarint(b, uint64(len(p.segs)))
	index := make(map[string]int, len(p.segs))
	for j, s := range p.segs {
		index[s] = j
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(p.end-p.start))
	last, lastIdx := "", -1 // entries in a row mostly share a segment
	for _, e := range o.Entries[p.start:p.end] {
		a := e.Addr.Addr()
		if a.Is4() {
			v := a.As4()
			b = append(b, family4)
			b = append(b, v[:]...)
		} else {
			v := a.As16()
			b = append(b, family6)
			b = append(b, v[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, e.Addr.Port())
		if lastIdx < 0 || e.Segment != last {
			last, lastIdx = e.Segment, index[e.Segment]
		}
		b = binary.AppendUvarint(b, uint64(lastIdx))
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagno))
	if len(b) != p.size {
		panic(fmt.Sprintf("observe: chunk %d is %d bytes, planned %d", i, len(b), p.size))
	}
	return b
}
