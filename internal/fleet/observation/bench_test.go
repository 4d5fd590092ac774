package observation

import "testing"

func BenchmarkEncode10k(b *testing.B) {
	o := servers("bridge-1", 10_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(o, kv); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode10k(b *testing.B) {
	chunks := mustEncode(b, servers("bridge-1", 10_000), kv)
	b.SetBytes(int64(len(chunks[0])))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(chunks); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode100k(b *testing.B) {
	chunks := mustEncode(b, servers("bridge-1", 100_000), kv)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(chunks); err != nil {
			b.Fatal(err)
		}
	}
}
