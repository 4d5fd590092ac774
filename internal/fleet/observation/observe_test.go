package observation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const kv = 400 << 10 // the chunk size catalog mode uses

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// obs builds an observation of bridge from "addr segment" pairs, sorted.
func obs(bridge string, pairs ...string) Observation {
	o := Observation{Bridge: bridge}
	for i := 0; i < len(pairs); i += 2 {
		o.Entries = append(o.Entries, Entry{Addr: ap(pairs[i]), Segment: pairs[i+1]})
	}
	slices.SortFunc(o.Entries, func(a, b Entry) int { return a.Addr.Compare(b.Addr) })
	return o
}

// servers builds n IPv4 servers on port 8000 on two segments, half each:
// the smallest two adjacent prefixes from 10.1.0.0 that hold them (for
// 10,000 servers 10.1.0.0/19 and 10.1.32.0/19, inside one /16).
func servers(bridge string, n int) Observation {
	half := (n + 1) / 2
	k := bits.Len(uint(half)) // 2^k > half, so both halves skip .0
	base := uint32(10<<24 | 1<<16)
	o := Observation{Bridge: bridge, Entries: make([]Entry, n)}
	for i := range o.Entries {
		net := base + uint32(i/half)<<k
		a := netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, net+uint32(i%half)+1)))
		o.Entries[i] = Entry{
			Addr:    netip.AddrPortFrom(a, 8000),
			Segment: netip.PrefixFrom(netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, net))), 32-k).String(),
		}
	}
	return o
}

func noSegments(o Observation) Observation {
	for i := range o.Entries {
		o.Entries[i].Segment = ""
	}
	return o
}

func mustEncode(t testing.TB, o Observation, maxChunk int) [][]byte {
	t.Helper()
	chunks, err := Encode(o, maxChunk)
	if err != nil {
		t.Fatalf("Encode(%q, %d entries, %d): %v", o.Bridge, len(o.Entries), maxChunk, err)
	}
	return chunks
}

func mustDecode(t testing.TB, chunks [][]byte) Observation {
	t.Helper()
	o, err := Decode(chunks)
	if err != nil {
		t.Fatalf("Decode(%d chunks): %v", len(chunks), err)
	}
	return o
}

func equal(a, b Observation) bool {
	return a.Bridge == b.Bridge && slices.Equal(a.Entries, b.Entries)
}

func checkRoundTrip(t *testing.T, o Observation, maxChunk int) [][]byte {
	t.Helper()
	chunks := mustEncode(t, o, maxChunk)
	for i, c := range chunks {
		if len(c) > maxChunk {
			t.Errorf("chunk %d is %d bytes, more than maxChunk %d", i, len(c), maxChunk)
		}
		h, err := DecodeChunk(c)
		if err != nil {
			t.Fatalf("DecodeChunk(chunk %d): %v", i, err)
		}
		if want := (Chunk{Bridge: o.Bridge, Index: i, Count: len(chunks), Version: wantVersion(o)}); h != want {
			t.Errorf("DecodeChunk(chunk %d) = %+v, want %+v", i, h, want)
		}
	}
	if got := mustDecode(t, chunks); !equal(got, o) {
		t.Fatalf("round trip of %d entries: got %d entries %v, want %v", len(o.Entries), len(got.Entries), head(got), head(o))
	}
	return chunks
}

func head(o Observation) string {
	e := o.Entries[:min(len(o.Entries), 4)]
	return fmt.Sprintf("%q %v", o.Bridge, e)
}

func TestRoundTrip(t *testing.T) {
	many := Observation{Bridge: "many-segments"}
	for i := range 300 { // more than 128 segments: two-byte segment indexes
		many.Entries = append(many.Entries, Entry{
			Addr:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 7000),
			Segment: fmt.Sprintf("10.2.%d.0/24", i),
		})
	}
	tests := []struct {
		name string
		o    Observation
	}{
		{"empty", Observation{Bridge: "b1"}},
		{"ipv4", obs("b1", "10.1.4.7:8000", "10.1.4.0/24", "10.1.4.9:8000", "10.1.4.0/24", "10.1.4.9:8001", "10.1.4.0/24")},
		{"ipv6", obs("b1", "[2001:db8::1]:8000", "2001:db8::/64", "[fe80::1]:1", "")},
		{"mixed", obs("bridge-a.example", "192.168.0.1:65535", "lan", "[::1]:80", "", "0.0.0.0:1", "lan", "[2001:db8::ffff:1]:443", "v6")},
		{"empty segment", obs("b1", "10.0.0.1:1", "")},
		{"many segments", many},
		{"unicode segments", obs("bridge-ß-東京", "10.0.0.1:1", "Büro 3. OG", "10.0.0.2:1", "東京オフィス", "10.0.0.3:1", "🛰️ uplink")},
		{"longest names", obs(strings.Repeat("b", MaxBridgeLen), "10.0.0.1:1", strings.Repeat("s", MaxSegmentLen))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := checkRoundTrip(t, tt.o, kv)
			if len(chunks) != 1 {
				t.Errorf("%d chunks, want 1", len(chunks))
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	a := obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "y", "[2001:db8::1]:80", "x")
	// The same set built another way: different backing arrays and strings.
	b := Observation{Bridge: strings.Clone("b1")}
	for _, e := range slices.Backward(a.Entries) {
		b.Entries = append(b.Entries, Entry{Addr: e.Addr, Segment: strings.Clone(e.Segment)})
	}
	slices.Reverse(b.Entries)
	for _, maxChunk := range []int{kv, 40} {
		ca, cb := mustEncode(t, a, maxChunk), mustEncode(t, b, maxChunk)
		if !slices.EqualFunc(ca, cb, func(x, y []byte) bool { return string(x) == string(y) }) {
			t.Errorf("maxChunk %d: equal sets encode differently:\n%x\n%x", maxChunk, ca, cb)
		}
	}
	c := obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "z", "[2001:db8::1]:80", "x")
	if string(mustEncode(t, a, kv)[0]) == string(mustEncode(t, c, kv)[0]) {
		t.Error("a changed segment encodes to the same bytes")
	}
}

func TestChunking(t *testing.T) {
	o := obs("bridge-1",
		"10.0.0.1:80", "a", "10.0.0.2:80", "a", "10.0.0.3:80", "b", "10.0.0.4:80", "a",
		"[2001:db8::1]:80", "c", "[2001:db8::2]:80", "c", "[2001:db8::3]:80", "a")
	empty := headerLen(len(o.Bridge)) + 2 + crcLen
	for _, maxChunk := range []int{empty + 2 + 20, empty + 3 + 20, 60, 64, 100, 1000} {
		t.Run(fmt.Sprint(maxChunk), func(t *testing.T) {
			chunks := checkRoundTrip(t, o, maxChunk)
			if maxChunk < 100 && len(chunks) < 2 {
				t.Errorf("%d chunks, want several", len(chunks))
			}
			// Any order of keys reassembles.
			rev := slices.Clone(chunks)
			slices.Reverse(rev)
			if got := mustDecode(t, rev); !equal(got, o) {
				t.Errorf("reversed chunks decode to %v", head(got))
			}
		})
	}
}

func TestSize10k(t *testing.T) {
	o := servers("bridge-1", 10_000)
	if first, last := o.Entries[0], o.Entries[len(o.Entries)-1]; first.Segment == last.Segment ||
		netip.PrefixFrom(first.Addr.Addr(), 16).Masked() != netip.PrefixFrom(last.Addr.Addr(), 16).Masked() {
		t.Fatalf("servers: %v .. %v, want one /16 and two segments", first, last)
	}
	chunks := checkRoundTrip(t, o, kv)
	if len(chunks) != 1 {
		t.Fatalf("10,000 IPv4 servers need %d chunks of %d bytes, want 1", len(chunks), kv)
	}
	t.Logf("10,000 IPv4 servers, 2 segments: %d bytes (%.2f per server)", len(chunks[0]), float64(len(chunks[0]))/10_000)
}

func TestSize100k(t *testing.T) {
	o := servers("bridge-1", 100_000)
	chunks := checkRoundTrip(t, o, kv)
	if len(chunks) < 2 {
		t.Fatalf("100,000 IPv4 servers fit %d chunk of %d bytes, want several", len(chunks), kv)
	}
	total := 0
	sizes := make([]int, len(chunks))
	for i, c := range chunks {
		sizes[i] = len(c)
		total += len(c)
	}
	t.Logf("100,000 IPv4 servers, 2 segments: %d chunks %v, %d bytes in all", len(chunks), sizes, total)
}

func TestEncodeRejects(t *testing.T) {
	good := Entry{Addr: ap("10.0.0.1:80"), Segment: "s"}
	tests := []struct {
		name     string
		o        Observation
		maxChunk int
		want     error
		msg      string // substring of the error
	}{
		{"no bridge", Observation{}, kv, ErrInvalid, "bridge ID"},
		{"long bridge", Observation{Bridge: strings.Repeat("b", 254)}, kv, ErrInvalid, "254 bytes"},
		{"control in bridge", Observation{Bridge: "b\n1"}, kv, ErrInvalid, "U+000A"},
		{"bridge not UTF-8", Observation{Bridge: "b\xff"}, kv, ErrInvalid, "UTF-8"},
		{"zero port", Observation{Bridge: "b", Entries: []Entry{{Addr: ap("10.0.0.1:0")}}}, kv, ErrInvalid, "port 0"},
		{"zone", Observation{Bridge: "b", Entries: []Entry{{Addr: ap("[fe80::1%eth0]:80")}}}, kv, ErrInvalid, "zone"},
		{"4in6", Observation{Bridge: "b", Entries: []Entry{{Addr: ap("[::ffff:10.0.0.1]:80")}}}, kv, ErrInvalid, "IPv4-mapped"},
		{"invalid addr", Observation{Bridge: "b", Entries: []Entry{{}}}, kv, ErrInvalid, "not an IP"},
		{"long segment", Observation{Bridge: "b", Entries: []Entry{{Addr: good.Addr, Segment: strings.Repeat("s", 256)}}}, kv, ErrInvalid, "256 bytes"},
		{"segment not UTF-8", Observation{Bridge: "b", Entries: []Entry{{Addr: good.Addr, Segment: "\xc3"}}}, kv, ErrInvalid, "UTF-8"},
		{"unsorted", Observation{Bridge: "b", Entries: []Entry{{Addr: ap("10.0.0.2:80")}, good}}, kv, ErrInvalid, "entry 1"},
		{"duplicate", Observation{Bridge: "b", Entries: []Entry{good, {Addr: good.Addr, Segment: "t"}}}, kv, ErrInvalid, "duplicate"},
		{"chunk below empty", Observation{Bridge: "b"}, 16, ErrChunkSize, "maxChunk 16"},
		{"entry does not fit", Observation{Bridge: "b", Entries: []Entry{good}}, 17, ErrChunkSize, "entry 0"},
		{"too many chunks", noSegments(servers("b", MaxChunks+1)), 17 + 1 + 8, ErrChunkSize, "more than 1024 chunks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.o, tt.maxChunk)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("Encode error = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

// Hand-built chunks for the decoder's tests: raw fields, a valid checksum.

func hdr(version byte, bridge string, index, count uint16) []byte {
	b := append(magic[:len(magic):len(magic)], version, byte(len(bridge)))
	b = append(b, bridge...)
	b = binary.BigEndian.AppendUint16(b, index)
	return binary.BigEndian.AppendUint16(b, count)
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func seg(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func e4(a string, port uint16, seg uint64) []byte {
	b := append([]byte{family4}, netip.MustParseAddr(a).AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, port)
	return binary.AppendUvarint(b, seg)
}

func e6(a string, port uint16, seg uint64) []byte {
	v := netip.MustParseAddr(a).As16()
	b := append([]byte{family6}, v[:]...)
	b = binary.BigEndian.AppendUint16(b, port)
	return binary.AppendUvarint(b, seg)
}

// sum joins parts and appends their CRC-32C.
func sum(parts ...[]byte) []byte {
	b := slices.Concat(parts...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagno))
}

func TestHandBuiltChunkMatchesEncode(t *testing.T) {
	o := obs("b1", "10.0.0.1:80", "x", "[2001:db8::1]:443", "")
	want := sum(hdr(1, "b1", 0, 1), uv(2), seg("x"), seg(""), uv(2), e4("10.0.0.1", 80, 0), e6("2001:db8::1", 443, 1))
	if got := mustEncode(t, o, kv); len(got) != 1 || string(got[0]) != string(want) {
		t.Fatalf("Encode = %x, want %x (the layout of the package doc)", got, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	o := obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "y", "10.0.0.3:80", "x", "[2001:db8::1]:80", "y")
	two := mustEncode(t, o, 50)
	if len(two) < 2 {
		t.Fatalf("want several chunks, got %d", len(two))
	}
	one := mustEncode(t, o, kv)[0]
	other := mustEncode(t, Observation{Bridge: "b2", Entries: o.Entries}, 50)
	flip := func(b []byte, i int) []byte { b = slices.Clone(b); b[i] ^= 0x10; return b }
	ok := func(rest ...[]byte) []byte { // a valid header of b1, one chunk
		return sum(append([][]byte{hdr(1, "b1", 0, 1)}, rest...)...)
	}
	tests := []struct {
		name   string
		chunks [][]byte
		want   error
		msg    string
	}{
		{"no chunks", nil, ErrChunks, "no chunks"},
		{"empty chunk", [][]byte{{}}, ErrFormat, "chunk 0: offset 0"},
		{"wrong magic", [][]byte{append([]byte("UDBX"), one[4:]...)}, ErrFormat, "magic"},
		{"json", [][]byte{[]byte(`{"bridge":"b1"}`)}, ErrFormat, "magic"},
		{"newer version", [][]byte{sum(hdr(3, "b1", 0, 1), uv(0), uv(0))}, ErrVersion, `observation from bridge "b1" uses format v3; this bridge understands v1 to v2`},
		{"newer version, unknown layout", [][]byte{append(hdr(9, "b1", 0, 1)[:6], 'b')}, ErrVersion, "format v9; this bridge understands v1 to v2"},
		{"version 0", [][]byte{sum(hdr(0, "b1", 0, 1), uv(0), uv(0))}, ErrVersion, "v0"},
		{"flipped byte in entry", [][]byte{flip(one, len(one)-8)}, ErrChecksum, "chunk 0: offset"},
		{"flipped byte in bridge", [][]byte{flip(one, 6)}, ErrChecksum, "CRC-32C"},
		{"flipped checksum", [][]byte{flip(one, len(one)-1)}, ErrChecksum, "CRC-32C"},
		{"truncated", [][]byte{one[:len(one)-3]}, ErrChecksum, "truncated"},
		{"truncated to the header", [][]byte{one[:12]}, ErrChecksum, "truncated"},
		{"truncated to the magic", [][]byte{one[:5]}, ErrFormat, "shorter"},
		{"appended byte", [][]byte{append(slices.Clone(one), 0)}, ErrChecksum, ""},
		{"empty bridge", [][]byte{sum(hdr(1, "", 0, 1), uv(0), uv(0))}, ErrInvalid, "bridge ID"},
		{"control char in bridge", [][]byte{sum(hdr(1, "b\x001", 0, 1), uv(0), uv(0))}, ErrInvalid, "control character"},
		{"count 0", [][]byte{sum(hdr(1, "b1", 0, 0), uv(0), uv(0))}, ErrFormat, "chunk count 0"},
		{"count too high", [][]byte{sum(hdr(1, "b1", 0, MaxChunks+1), uv(0), uv(0))}, ErrFormat, "chunk count 1025"},
		{"index out of count", [][]byte{sum(hdr(1, "b1", 1, 1), uv(0), uv(0))}, ErrFormat, "chunk index 1"},
		{"duplicate chunk", [][]byte{two[0], two[1], two[0]}, ErrChunks, "chunks 0 and 2 both have index 0"},
		{"missing chunk", two[1:], ErrChunks, "missing index 0"},
		{"missing last chunk", two[:len(two)-1], ErrChunks, fmt.Sprintf("missing index %d", len(two)-1)},
		{"missing middle chunks", [][]byte{
			sum(hdr(1, "b1", 3, 4), uv(0), uv(0)), sum(hdr(1, "b1", 0, 4), uv(0), uv(0)),
		}, ErrChunks, "2 chunks of 4 given, missing index 1, 2:"},
		{"mismatched bridge", [][]byte{two[0], other[1]}, ErrChunks, `chunk 1 is from bridge "b2", chunk 0 from bridge "b1"`},
		{"mismatched count", [][]byte{one, two[1]}, ErrChunks, "says"},
		{"unsorted entries", [][]byte{ok(uv(1), seg("x"), uv(2), e4("10.0.0.2", 80, 0), e4("10.0.0.1", 80, 0))}, ErrInvalid, "sorts before"},
		{"unsorted across chunks", [][]byte{two[1], two[0]}, nil, ""}, // any order of chunks is fine
		{"duplicate entries", [][]byte{ok(uv(1), seg("x"), uv(2), e4("10.0.0.1", 80, 0), e4("10.0.0.1", 80, 0))}, ErrInvalid, "duplicate address 10.0.0.1:80"},
		{"duplicate across chunks", [][]byte{
			sum(hdr(1, "b1", 0, 2), uv(1), seg("x"), uv(1), e4("10.0.0.1", 80, 0)),
			sum(hdr(1, "b1", 1, 2), uv(1), seg("x"), uv(1), e4("10.0.0.1", 80, 0)),
		}, ErrInvalid, "chunk 1: offset"},
		{"segment index out of range", [][]byte{ok(uv(1), seg("x"), uv(1), e4("10.0.0.1", 80, 1))}, ErrFormat, "segment index 1 out of range, the table has 1"},
		{"segment index, empty table", [][]byte{ok(uv(0), uv(1), e4("10.0.0.1", 80, 0))}, ErrFormat, "the table has 0"},
		{"zero port", [][]byte{ok(uv(1), seg("x"), uv(1), e4("10.0.0.1", 0, 0))}, ErrInvalid, "port 0"},
		{"4in6", [][]byte{ok(uv(1), seg("x"), uv(1), e6("::ffff:10.0.0.1", 80, 0))}, ErrInvalid, "IPv4-mapped"},
		{"address family", [][]byte{ok(uv(1), seg("x"), uv(1), []byte{5, 10, 0, 0, 1, 0, 80, 0})}, ErrFormat, "address family 5"},
		{"entry runs past end", [][]byte{ok(uv(1), seg("x"), uv(1), e6("2001:db8::1", 80, 0)[:10])}, ErrFormat, "entry 0 runs past"},
		{"segment not UTF-8", [][]byte{ok(uv(1), seg("\xff"), uv(1), e4("10.0.0.1", 80, 0))}, ErrInvalid, "UTF-8"},
		{"segment runs past end", [][]byte{ok(uv(1), []byte{200, 'x'})}, ErrFormat, "segment 0 is 200 bytes"},
		{"segment listed twice", [][]byte{ok(uv(2), seg("x"), seg("x"), uv(1), e4("10.0.0.1", 80, 0))}, ErrFormat, "listed twice"},
		{"trailing bytes", [][]byte{ok(uv(0), uv(0), []byte{0})}, ErrFormat, "1 bytes after the last entry"},
		{"fewer entries than declared", [][]byte{ok(uv(1), seg("x"), uv(2), e4("10.0.0.1", 80, 0), []byte{0, 0, 0})}, ErrFormat, ""},
		{"non-minimal uvarint", [][]byte{ok([]byte{0x80, 0x00}, uv(0))}, ErrFormat, "shortest form"},
		{"uvarint overflow", [][]byte{ok(slices.Repeat([]byte{0xff}, 11))}, ErrFormat, "overflows"},
		{"huge segment count", [][]byte{ok(uv(1<<62), uv(0))}, ErrFormat, "segment count 4611686018427387904 is out of range"},
		{"huge entry count", [][]byte{ok(uv(0), uv(1<<62), e4("10.0.0.1", 80, 0))}, ErrFormat, "entry count 4611686018427387904 is out of range"},
		{"segment count beyond bytes", [][]byte{ok(uv(5), seg(""), seg(""), uv(0))}, ErrFormat, "segment count 5, at most 2 fit in the 3 bytes left"},
		{"entry count beyond bytes", [][]byte{ok(uv(0), uv(3), e4("10.0.0.1", 80, 0), e4("10.0.0.2", 80, 0))}, ErrFormat, "entry count 3, at most 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.chunks)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("Decode error = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if got.Bridge != "" || got.Entries != nil {
				t.Errorf("Decode returned %v with its error", head(got))
			}
			var n int
			for _, s := range []error{ErrFormat, ErrVersion, ErrChecksum, ErrChunks, ErrInvalid, ErrChunkSize} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("error %v wraps %d sentinels, want 1", err, n)
			}
		})
	}
}

func TestDecodeChunk(t *testing.T) {
	chunks := mustEncode(t, servers("bridge-7", 100), 200)
	for i, c := range chunks {
		got, err := DecodeChunk(c)
		if want := (Chunk{Bridge: "bridge-7", Index: i, Count: len(chunks), Version: 1}); err != nil || got != want {
			t.Errorf("DecodeChunk(chunk %d) = %+v, %v; want %+v", i, got, err, want)
		}
	}
	if _, err := DecodeChunk(sum(hdr(3, "bridge-7", 0, 1))); !errors.Is(err, ErrVersion) ||
		!strings.Contains(err.Error(), `bridge "bridge-7" uses format v3`) {
		t.Errorf("DecodeChunk of a v3 chunk: %v", err)
	}
	bad := slices.Clone(chunks[0])
	bad[20] ^= 1
	if _, err := DecodeChunk(bad); !errors.Is(err, ErrChecksum) {
		t.Errorf("DecodeChunk of a corrupted chunk: %v, want %v", err, ErrChecksum)
	}
}

// Counts read from the input must not size allocations: a small chunk that
// claims billions of segments or entries costs little to reject.
func TestDecodeHugeCountsDoNotAllocate(t *testing.T) {
	inputs := [][]byte{
		sum(hdr(1, "b1", 0, 1), uv(1<<40), uv(0)),
		sum(hdr(1, "b1", 0, 1), uv(0), uv(1<<40)),
		sum(hdr(1, "b1", 0, 1), uv(0), uv(1<<20), slices.Repeat([]byte{0}, 64)),
		sum(hdr(1, "b1", 0, 1), uv(1<<20), slices.Repeat([]byte{0}, 64)),
	}
	for i, in := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode([][]byte{in})
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("input %d: Decode accepted %x", i, in)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("input %d (%d bytes): Decode allocated %d bytes rejecting it: %v", i, len(in), n, err)
		}
	}
}

func TestDecodeSharesSegments(t *testing.T) {
	chunks := mustEncode(t, servers("b1", 2000), 4000)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks, want several", len(chunks))
	}
	rand.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	o := mustDecode(t, chunks)
	first := map[string]*byte{}
	for _, e := range o.Entries {
		p := unsafeStringData(e.Segment)
		if q, ok := first[e.Segment]; ok && q != p {
			t.Fatalf("segment %q is held by more than one string", e.Segment)
		}
		first[e.Segment] = p
	}
}
