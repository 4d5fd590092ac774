package observation

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

var (
	magic    = [4]byte{'U', 'D', 'B', 'O'}
	castagno = crc32.MakeTable(crc32.Castagnoli)
)

const (
	family4 = 4
	family6 = 6
	crcLen  = 4
	// minEntry and minEntry2 are the smallest entries of versions 1 and 2:
	// IPv4, a one-byte segment index (and a health byte and a one-byte
	// output index).
	minEntry  = 1 + 4 + 2 + 1
	minEntry2 = minEntry + 1 + 1
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

// versionOf is the version Encode writes o in: 1 while no entry carries an
// app check's verdict (every one Ready with no Output), so that a fleet
// without app checks stays readable by bridges that know only version 1.
func versionOf(o Observation) byte {
	for _, e := range o.Entries {
		if e.Health != endpoint.Ready || e.Output != "" {
			return 2
		}
	}
	return 1
}

// plan is one chunk to write: entries [start, end), the segments and (in
// version 2) the outputs they use in order of first use, and the exact
// size of the chunk.
type plan struct {
	start, end int
	segs, outs []string
	size       int
}

// Encode encodes o as described in the package documentation, in as few
// chunks of at most maxChunk bytes as the greedy packing allows (one when it
// fits), in version 1 when every entry is Ready with no Output and in
// version 2 otherwise. Equal observations give identical chunks. It returns
// an error wrapping ErrInvalid when o breaks its rules, and ErrChunkSize
// when an entry does not fit in an empty chunk or o needs more than
// MaxChunks chunks.
func Encode(o Observation, maxChunk int) ([][]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	v := versionOf(o)
	plans, err := pack(o, v, maxChunk)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(plans))
	for i, p := range plans {
		out[i] = write(o, v, p, i, len(plans))
	}
	return out, nil
}

// table is a chunk's string table (segments, outputs) as pack builds it:
// the strings in order of first use, their indexes, and the bytes the
// table takes without its count. The last string looked up is remembered:
// entries in a row mostly share a segment and an output.
type table struct {
	list    []string
	index   map[string]int
	bytes   int
	last    string
	lastIdx int
}

func (t *table) reset() {
	clear(t.index)
	t.list, t.bytes, t.last, t.lastIdx = nil, 0, "", -1
}

// find returns the index s has or would get, and whether it is new.
func (t *table) find(s string) (int, bool) {
	if t.lastIdx >= 0 && s == t.last {
		return t.lastIdx, false
	}
	if idx, ok := t.index[s]; ok {
		return idx, false
	}
	return len(t.list), true
}

// add records the use of s at index idx, new or not.
func (t *table) add(s string, idx int, isNew bool) {
	if isNew {
		t.index[s] = idx
		t.list = append(t.list, s)
		t.bytes += 1 + len(s)
	}
	t.last, t.lastIdx = s, idx
}

// size is the bytes the table takes with its count, n strings in it.
func (t *table) size(n, extra int) int { return uvarintLen(n) + t.bytes + extra }

// pack splits o.Entries into chunks of version v of at most maxChunk bytes.
func pack(o Observation, v byte, maxChunk int) ([]plan, error) {
	head := headerLen(len(o.Bridge))
	empty := head + 1 + 1 + crcLen
	if v >= 2 {
		empty++ // the output count
	}
	if maxChunk < empty {
		return nil, fmt.Errorf("observe: bridge %q: maxChunk %d is below %d, the size of an empty chunk: %w",
			o.Bridge, maxChunk, empty, ErrChunkSize)
	}
	var plans []plan
	segs := table{index: map[string]int{}}
	outs := table{index: map[string]int{}}
	start := 0
	for {
		segs.reset()
		outs.reset()
		p := plan{start: start}
		entBytes := 0
		i := start
		for ; i < len(o.Entries); i++ {
			e := o.Entries[i]
			sidx, snew := segs.find(e.Segment)
			addSeg, nsegs := 0, len(segs.list)
			if snew {
				addSeg, nsegs = 1+len(e.Segment), nsegs+1
			}
			ent := 1 + addrLen(e) + 2 + uvarintLen(sidx)
			size := head + segs.size(nsegs, addSeg) + crcLen
			oidx, onew := 0, false
			if v >= 2 {
				oidx, onew = outs.find(e.Output)
				addOut, nouts := 0, len(outs.list)
				if onew {
					addOut, nouts = 1+len(e.Output), nouts+1
				}
				ent += 1 + uvarintLen(oidx)
				size += outs.size(nouts, addOut)
			}
			size += uvarintLen(i-start+1) + entBytes + ent
			if size > maxChunk {
				break
			}
			segs.add(e.Segment, sidx, snew)
			if v >= 2 {
				outs.add(e.Output, oidx, onew)
			}
			entBytes += ent
		}
		if i == start && i < len(o.Entries) {
			e, out := o.Entries[i], ""
			if v >= 2 {
				out = fmt.Sprintf(", output of %d bytes", len(e.Output))
			}
			return nil, fmt.Errorf("observe: bridge %q: entry %d (%s, segment %q%s) does not fit in an empty chunk of %d bytes: %w",
				o.Bridge, i, e.Addr, e.Segment, out, maxChunk, ErrChunkSize)
		}
		p.end = i
		p.segs = segs.list
		p.size = head + segs.size(len(segs.list), 0) + uvarintLen(i-start) + entBytes + crcLen
		if v >= 2 {
			p.outs = outs.list
			p.size += outs.size(len(outs.list), 0)
		}
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

// write writes chunk i of count in version v as planned.
func write(o Observation, v byte, p plan, i, count int) []byte {
	b := make([]byte, 0, p.size)
	b = append(b, magic[:]...)
	b = append(b, v, byte(len(o.Bridge)))
	b = append(b, o.Bridge...)
	b = binary.BigEndian.AppendUint16(b, uint16(i))
	b = binary.BigEndian.AppendUint16(b, uint16(count))
	segs, b := appendTable(b, p.segs)
	var outs map[string]int
	if v >= 2 {
		outs, b = appendTable(b, p.outs)
	}
	b = binary.AppendUvarint(b, uint64(p.end-p.start))
	// Entries in a row mostly share a segment and an output.
	lastSeg, segIdx, lastOut, outIdx := "", -1, "", -1
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
		if segIdx < 0 || e.Segment != lastSeg {
			lastSeg, segIdx = e.Segment, segs[e.Segment]
		}
		b = binary.AppendUvarint(b, uint64(segIdx))
		if v >= 2 {
			if outIdx < 0 || e.Output != lastOut {
				lastOut, outIdx = e.Output, outs[e.Output]
			}
			b = append(b, byte(e.Health))
			b = binary.AppendUvarint(b, uint64(outIdx))
		}
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagno))
	if len(b) != p.size {
		panic(fmt.Sprintf("observe: chunk %d is %d bytes, planned %d", i, len(b), p.size))
	}
	return b
}

// appendTable appends a string table (its count, then each string's length
// byte and bytes) and returns each string's index.
func appendTable(b []byte, list []string) (map[string]int, []byte) {
	b = binary.AppendUvarint(b, uint64(len(list)))
	index := make(map[string]int, len(list))
	for j, s := range list {
		index[s] = j
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return index, b
}
