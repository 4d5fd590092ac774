package observation

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"testing"
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
	}
	for _, o := range seeds {
		for _, maxChunk := range []int{kv, 48} {
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
