package observation

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// frame joins chunks as FuzzDecode's input: each a 2-byte length then its
// bytes.
func frame(chunks ...[]byte) []byte {
	var b []byte
	for _, c := range chunks {
		b = binary.BigEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	return b
}

// unframe splits FuzzDecode's input into chunks; a short last one takes
// what is left.
func unframe(b []byte) [][]byte {
	var chunks [][]byte
	for len(b) >= 2 {
		n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
		chunks = append(chunks, b[2:2+n])
		b = b[2+n:]
	}
	return chunks
}

// FuzzDecode feeds Decode framed chunks. With fix set, each chunk's last 4
// bytes are replaced by its checksum first, so mutations reach the parser
// behind it. Whatever Decode accepts must encode again and decode to the
// same observation.
func FuzzDecode(f *testing.F) {
	seeds := []Observation{
		{Bridge: "b1"},
		obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "y", "[2001:db8::1]:443", "x"),
		obs("bridge-ß", "[::1]:1", "", "1.2.3.4:65535", "東京"),
		servers("b2", 40),
		judged(obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "y", "[2001:db8::1]:443", "x"), failing, pending, ready),
		judged(servers("b3", 40), failing, verdict{endpoint.Failing, "TCP connect: connection refused"}, pending),
	}
	for _, o := range seeds {
		small := 48 // several chunks
		if wantVersion(o) == 2 {
			small = 100
		}
		for _, maxChunk := range []int{kv, small} {
			chunks := mustEncode(f, o, maxChunk)
			f.Add(frame(chunks...), false)
			f.Add(frame(chunks...), true)
			slices.Reverse(chunks)
			f.Add(frame(chunks...), false)
		}
	}
	one := mustEncode(f, seeds[1], kv)[0]
	f.Add(frame(one[:len(one)-5]), false)
	f.Add(frame(one[:len(one)-5]), true)
	f.Add(frame(append(slices.Clone(one[:4]), 2)), false)
	f.Add(frame(one, one), false)
	f.Add(frame(sum(hdr(1, "b1", 0, 1), uv(1<<40), uv(0))), false)
	f.Add(frame(sum(hdr(1, "b1", 0, 1), uv(1), seg("x"), uv(2), e4("10.0.0.2", 80, 0), e4("10.0.0.1", 0, 3))), true)
	f.Add(frame(sum(hdr(2, "b1", 0, 1), uv(1), seg("x"), uv(2), seg("o"), seg(""), uv(2), e4v("10.0.0.1", 80, 0, 2, 1), e4v("10.0.0.2", 80, 0, 3, 2))), true)
	f.Add(frame(sum(hdr(1, "b1", 0, 2), uv(0), uv(0)), sum(hdr(2, "b1", 1, 2), uv(0), uv(0), uv(0))), true)

	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		chunks := unframe(data)
		if fix {
			for _, c := range chunks {
				if len(c) >= crcLen {
					end := len(c) - crcLen
					binary.BigEndian.PutUint32(c[end:], crc32.Checksum(c[:end], castagno))
				}
			}
		}
		o, err := Decode(chunks)
		if err != nil {
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid observation: %v", err)
		}
		again, err := Encode(o, 1<<30)
		if err != nil {
			t.Fatalf("Encode of what Decode accepted: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode of Encode of what Decode accepted: %v", err)
		}
		if !equal(back, o) {
			t.Fatalf("round trip changed the observation:\n%v\n%v", head(o), head(back))
		}
		if twice, _ := Encode(back, 1<<30); !slices.EqualFunc(again, twice, slices.Equal) {
			t.Fatalf("Encode is not deterministic")
		}
	})
}

// FuzzEncode builds an observation from data (entries of an address, a
// port, a segment, a health and an output, each chosen by a byte; long
// strings included) and encodes it into chunks of maxChunk bytes: each
// chunk is at most maxChunk bytes, the chunks decode to the observation, in
// version 1 exactly when no entry carries a verdict, and an error is only
// ever ErrChunkSize.
func FuzzEncode(f *testing.F) {
	f.Add([]byte{}, uint16(100))
	f.Add([]byte{10, 0, 0, 1, 0, 80, 0, 0, 0, 10, 0, 0, 2, 0, 80, 1, 1, 1}, uint16(60))
	f.Add(slices.Repeat([]byte{10, 0, 7, 0, 31, 64, 2, 2, 3, 9}, 40), uint16(120))
	f.Add(slices.Repeat([]byte{0x20, 1, 13, 184, 0, 1, 5, 3, 4, 5}, 30), uint16(400))
	f.Fuzz(func(t *testing.T, data []byte, maxChunk uint16) {
		segs := []string{"", "10.1.0.0/24", "10.2.0.0/24", "lan", strings.Repeat("s", MaxSegmentLen)}
		outs := []string{"", ready.out, failing.out, "TCP connect: connection refused", "東京", strings.Repeat("o", MaxOutputLen)}
		o := Observation{Bridge: "fuzz"}
		for len(data) >= 10 {
			var a netip.Addr
			if data[0]&0x20 != 0 { // IPv6 in 2001:db8::/32, the rest from the bytes
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: data[1], 13: data[2], 14: data[3], 15: data[4]})
			} else {
				a = netip.AddrFrom4([4]byte(data[1:5]))
			}
			port := max(binary.BigEndian.Uint16(data[5:7]), 1)
			o.Entries = append(o.Entries, Entry{
				Addr:    netip.AddrPortFrom(a, port),
				Segment: segs[int(data[7])%len(segs)],
				Health:  endpoint.Health(data[8] % 3),
				Output:  outs[int(data[9])%len(outs)],
			})
			data = data[10:]
		}
		slices.SortStableFunc(o.Entries, func(a, b Entry) int { return a.Addr.Compare(b.Addr) })
		o.Entries = slices.CompactFunc(o.Entries, func(a, b Entry) bool { return a.Addr == b.Addr })
		chunks, err := Encode(o, int(maxChunk))
		if err != nil {
			if !errors.Is(err, ErrChunkSize) {
				t.Fatalf("Encode: %v", err)
			}
			return
		}
		for i, c := range chunks {
			if len(c) > int(maxChunk) {
				t.Fatalf("chunk %d is %d bytes, more than %d", i, len(c), maxChunk)
			}
			if int(c[4]) != wantVersion(o) {
				t.Fatalf("chunk %d is v%d, want v%d", i, c[4], wantVersion(o))
			}
		}
		back, err := Decode(chunks)
		if err != nil {
			t.Fatalf("Decode of Encode: %v", err)
		}
		if !equal(back, o) {
			t.Fatalf("round trip changed the observation:\n%v\n%v", head(o), head(back))
		}
	})
}
