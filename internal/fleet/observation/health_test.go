package observation

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Tests of version 2: each entry's app check verdict (Health, Output).

// verdict is an app check's verdict on one entry.
type verdict struct {
	h   endpoint.Health
	out string
}

var (
	ready   = verdict{endpoint.Ready, "HTTP GET /healthz: 200 in 3 ms"}
	pending = verdict{endpoint.Pending, ""}
	failing = verdict{endpoint.Failing, "HTTP GET /healthz: 503 in 4 ms"}
)

// judged is o with the verdicts vs set on its entries in turn, cycling.
func judged(o Observation, vs ...verdict) Observation {
	o.Entries = slices.Clone(o.Entries)
	for i := range o.Entries {
		v := vs[i%len(vs)]
		o.Entries[i].Health, o.Entries[i].Output = v.h, v.out
	}
	return o
}

// wantVersion is the version o must be encoded in: 2 when any entry
// carries a verdict other than Ready with no output.
func wantVersion(o Observation) int {
	for _, e := range o.Entries {
		if e.Health != endpoint.Ready || e.Output != "" {
			return 2
		}
	}
	return 1
}

// e4v is a version 2 IPv4 entry.
func e4v(a string, port uint16, seg uint64, health byte, out uint64) []byte {
	return append(append(e4(a, port, seg), health), uv(out)...)
}

// alone is chunk c of an observation made a whole observation: index 0 of
// 1, its checksum fixed; Decode of it gives the chunk's entries.
func alone(c []byte) []byte {
	n := int(c[5])
	b := slices.Clone(c[:len(c)-crcLen])
	copy(b[6+n:], []byte{0, 0, 0, 1})
	return sum(b)
}

func TestVersionChoice(t *testing.T) {
	base := obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "x")
	tests := []struct {
		name string
		o    Observation
		want byte
	}{
		{"empty", Observation{Bridge: "b1"}, 1},
		{"no app check: all ready, no output", base, 1},
		{"ready with an output", judged(base, verdict{}, ready), 2},
		{"one pending", judged(base, verdict{}, pending), 2},
		{"failing", judged(base, failing), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, maxChunk := range []int{kv, 64} {
				for i, c := range mustEncode(t, tt.o, maxChunk) {
					if c[4] != tt.want {
						t.Errorf("maxChunk %d: chunk %d is v%d, want v%d", maxChunk, i, c[4], tt.want)
					}
				}
			}
		})
	}
	// A fleet without app checks publishes exactly what the release before
	// them did: the version 1 bytes, the health fields left out.
	want := sum(hdr(1, "b1", 0, 1), uv(1), seg("x"), uv(2), e4("10.0.0.1", 80, 0), e4("10.0.0.2", 80, 0))
	if got := mustEncode(t, base, kv); string(got[0]) != string(want) {
		t.Errorf("observation without verdicts = %x, want the version 1 chunk %x", got[0], want)
	}
}

func TestRoundTripHealth(t *testing.T) {
	base := obs("b1", "10.1.4.7:8000", "10.1.4.0/24", "10.1.4.9:8000", "10.1.4.0/24", "10.1.4.9:8001", "10.1.4.0/24",
		"[2001:db8::1]:8000", "v6")
	var outs []verdict // more than 128 outputs: two-byte output indexes
	for i := range 300 {
		outs = append(outs, verdict{endpoint.Failing, fmt.Sprintf("HTTP GET /healthz: 503 in %d ms", i)})
	}
	many := judged(servers("many-outputs", 300), outs...)
	tests := []struct {
		name string
		o    Observation
	}{
		{"all pending, no outputs", judged(base, pending)},
		{"mixed", judged(base, ready, pending, failing)},
		{"ready with outputs", judged(base, ready)},
		{"the same output on every entry", judged(base, failing)},
		{"an empty output in a version 2 chunk", judged(base, failing, verdict{endpoint.Ready, ""})},
		{"many outputs", many},
		{"unicode outputs", judged(base, verdict{endpoint.Failing, "HTTP GET /: 503 Dienst nicht verfügbar in 4 ms"}, verdict{endpoint.Failing, "東京: 接続拒否"})},
		{"longest output", judged(base, verdict{endpoint.Failing, strings.Repeat("o", MaxOutputLen)})},
		{"output like a segment", judged(obs("b1", "10.0.0.1:1", "x", "10.0.0.2:1", "y"), verdict{endpoint.Failing, "x"}, verdict{endpoint.Pending, "y"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := checkRoundTrip(t, tt.o, kv)
			if len(chunks) != 1 {
				t.Errorf("%d chunks, want 1", len(chunks))
			}
			// Split small too: each chunk carries the outputs it uses.
			checkRoundTrip(t, tt.o, 300)
		})
	}
}

// TestChunkingHealth: version 2 chunks, packed greedily, are never larger
// than asked, and each is as full as it can be: the next entry, with the
// segment and output it may add to the chunk's tables, would not fit.
func TestChunkingHealth(t *testing.T) {
	o := judged(servers("bridge-1", 200), ready, pending, failing, verdict{endpoint.Failing, "TCP connect: connection refused"},
		verdict{endpoint.Failing, strings.Repeat("long output ", 12)})
	for _, maxChunk := range []int{220, 256, 300, 1000, 1500} {
		t.Run(fmt.Sprint(maxChunk), func(t *testing.T) {
			chunks := checkRoundTrip(t, o, maxChunk)
			if len(chunks) < 2 {
				t.Fatalf("%d chunks, want several", len(chunks))
			}
			next := 0
			for i, c := range chunks {
				part := mustDecode(t, [][]byte{alone(c)})
				next += len(part.Entries)
				if i == len(chunks)-1 {
					break
				}
				fuller := Observation{Bridge: o.Bridge, Entries: append(slices.Clone(part.Entries), o.Entries[next])}
				if one := mustEncode(t, fuller, 1<<20); len(one[0]) <= maxChunk {
					t.Errorf("chunk %d: %d bytes with %d entries, but the next one fits too (%d bytes)", i, len(c), len(part.Entries), len(one[0]))
				}
			}
			if next != len(o.Entries) {
				t.Errorf("chunks hold %d entries, want %d", next, len(o.Entries))
			}
			rev := slices.Clone(chunks)
			slices.Reverse(rev)
			if got := mustDecode(t, rev); !equal(got, o) {
				t.Errorf("reversed chunks decode to %v", head(got))
			}
		})
	}
}

func TestSize10kHealth(t *testing.T) {
	var outs []verdict // latencies from 1 to 40 ms
	for i := range 40 {
		outs = append(outs, verdict{endpoint.Ready, fmt.Sprintf("HTTP GET /healthz: 200 in %d ms", i+1)})
	}
	for _, tt := range []struct {
		name      string
		o         Observation
		perServer float64
	}{
		{"all pending", judged(servers("bridge-1", 10_000), pending), 10.01},
		{"ready, 40 outputs", judged(servers("bridge-1", 10_000), outs...), 10.2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			chunks := checkRoundTrip(t, tt.o, kv)
			if len(chunks) != 1 {
				t.Fatalf("10,000 IPv4 servers need %d chunks of %d bytes, want 1", len(chunks), kv)
			}
			per := float64(len(chunks[0])) / 10_000
			if per > tt.perServer {
				t.Errorf("%d bytes, %.2f per server, want at most %.2f", len(chunks[0]), per, tt.perServer)
			}
			t.Logf("10,000 IPv4 servers, 2 segments, %s: %d bytes (%.2f per server)", tt.name, len(chunks[0]), per)
		})
	}
}

func TestEncodeDeterministicHealth(t *testing.T) {
	a := judged(obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "y", "[2001:db8::1]:80", "x"), failing, ready, failing)
	b := Observation{Bridge: strings.Clone("b1")} // the same, in other strings
	for _, e := range a.Entries {
		b.Entries = append(b.Entries, Entry{Addr: e.Addr, Segment: strings.Clone(e.Segment), Health: e.Health, Output: strings.Clone(e.Output)})
	}
	for _, maxChunk := range []int{kv, 80} {
		ca, cb := mustEncode(t, a, maxChunk), mustEncode(t, b, maxChunk)
		if !slices.EqualFunc(ca, cb, slices.Equal) {
			t.Errorf("maxChunk %d: equal observations encode differently:\n%x\n%x", maxChunk, ca, cb)
		}
	}
	// Every change of a verdict changes the bytes: a bridge publishes it.
	for _, c := range []Observation{
		judged(a, failing, ready, pending),
		judged(a, failing, ready, verdict{endpoint.Failing, "TCP connect: connection refused"}),
		judged(a, failing, verdict{endpoint.Ready, ""}, failing),
	} {
		if string(mustEncode(t, a, kv)[0]) == string(mustEncode(t, c, kv)[0]) {
			t.Errorf("a changed verdict encodes to the same bytes: %v", head(c))
		}
	}
}

func TestHandBuiltChunkMatchesEncodeV2(t *testing.T) {
	o := judged(obs("b1", "10.0.0.1:80", "x", "10.0.0.2:80", "x", "[2001:db8::1]:443", ""),
		failing, verdict{endpoint.Pending, ""}, failing)
	e6v := append(append(e6("2001:db8::1", 443, 1), 2), uv(0)...)
	want := sum(hdr(2, "b1", 0, 1), uv(2), seg("x"), seg(""), uv(2), seg(failing.out), seg(""), uv(3),
		e4v("10.0.0.1", 80, 0, 2, 0), e4v("10.0.0.2", 80, 0, 1, 1), e6v)
	if got := mustEncode(t, o, kv); len(got) != 1 || string(got[0]) != string(want) {
		t.Fatalf("Encode = %x, want %x (the layout of the package doc)", got, want)
	}
}

func TestEncodeRejectsHealth(t *testing.T) {
	good := Entry{Addr: ap("10.0.0.1:80"), Segment: "s", Health: endpoint.Failing, Output: "x"}
	with := func(f func(*Entry)) Observation {
		e := good
		f(&e)
		return Observation{Bridge: "b", Entries: []Entry{e}}
	}
	tests := []struct {
		name     string
		o        Observation
		maxChunk int
		want     error
		msg      string
	}{
		{"unknown health", with(func(e *Entry) { e.Health = 3 }), kv, ErrInvalid, "health 3"},
		{"long output", with(func(e *Entry) { e.Output = strings.Repeat("o", MaxOutputLen+1) }), kv, ErrInvalid, "256 bytes"},
		{"output not UTF-8", with(func(e *Entry) { e.Output = "503 \xff" }), kv, ErrInvalid, "UTF-8"},
		{"entry does not fit", Observation{Bridge: "b", Entries: []Entry{good}}, 17 + 1 + 8 + 2 + 2, ErrChunkSize, "entry 0"},
		{"chunk below empty", with(func(*Entry) {}), 17 + 1 - 1, ErrChunkSize, "below 18"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.o, tt.maxChunk)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("Encode error = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
	// The smallest chunk that holds the entry: header, the tables, the
	// entry and the checksum.
	if _, err := Encode(Observation{Bridge: "b", Entries: []Entry{good}}, 17+1+2+2+10); err != nil {
		t.Errorf("Encode into a chunk just large enough: %v", err)
	}
}

func TestDecodeRejectsHealth(t *testing.T) {
	ok := func(rest ...[]byte) []byte { return sum(append([][]byte{hdr(2, "b1", 0, 1)}, rest...)...) }
	segX := slices.Concat(uv(1), seg("x"))
	tests := []struct {
		name   string
		chunks [][]byte
		want   error
		msg    string
	}{
		{"v1 and v2 chunks", [][]byte{sum(hdr(1, "b1", 0, 2), uv(0), uv(0)), sum(hdr(2, "b1", 1, 2), uv(0), uv(0), uv(0))}, ErrChunks, "chunk 1 is format v2, chunk 0 v1"},
		{"health 3", [][]byte{ok(segX, uv(1), seg("o"), uv(1), e4v("10.0.0.1", 80, 0, 3, 0))}, ErrFormat, "entry 0: health 3"},
		{"health 255", [][]byte{ok(segX, uv(1), seg("o"), uv(1), e4v("10.0.0.1", 80, 0, 255, 0))}, ErrFormat, "health 255"},
		{"output index out of range", [][]byte{ok(segX, uv(1), seg("o"), uv(1), e4v("10.0.0.1", 80, 0, 2, 1))}, ErrFormat, "output index 1 out of range, the table has 1"},
		{"output index, empty table", [][]byte{ok(segX, uv(0), uv(1), e4v("10.0.0.1", 80, 0, 2, 0))}, ErrFormat, "the table has 0"},
		{"output listed twice", [][]byte{ok(segX, uv(2), seg("o"), seg("o"), uv(1), e4v("10.0.0.1", 80, 0, 2, 0))}, ErrFormat, "output 1 (\"o\") is listed twice"},
		{"output not UTF-8", [][]byte{ok(segX, uv(1), seg("\xc3"), uv(1), e4v("10.0.0.1", 80, 0, 2, 0))}, ErrInvalid, "check output"},
		{"output runs past end", [][]byte{ok(segX, uv(1), []byte{200, 'o'})}, ErrFormat, "output 0 is 200 bytes"},
		{"entry without its verdict", [][]byte{ok(segX, uv(1), seg("o"), uv(1), e4("10.0.0.1", 80, 0))}, ErrFormat, ""},
		{"output index non-minimal", [][]byte{ok(segX, uv(1), seg("o"), uv(1), e4("10.0.0.1", 80, 0), []byte{2, 0x80, 0x00})}, ErrFormat, "output index: uvarint 80 00 is not in its shortest form"},
		{"no output table", [][]byte{ok(segX, uv(1), e4("10.0.0.1", 80, 0))}, ErrFormat, ""},
		{"entry count beyond bytes", [][]byte{ok(uv(0), uv(0), uv(2), e4("10.0.0.1", 80, 0), e4("10.0.0.2", 80, 0))}, ErrFormat, "entry count 2, at most 1"},
		{"output count beyond bytes", [][]byte{ok(uv(0), uv(3), seg(""), uv(0))}, ErrFormat, "output count 3, at most 1"},
		{"unsorted", [][]byte{ok(segX, uv(1), seg("o"), uv(2), e4v("10.0.0.2", 80, 0, 0, 0), e4v("10.0.0.1", 80, 0, 0, 0))}, ErrInvalid, "sorts before"},
		{"v1 chunk with verdict bytes", [][]byte{sum(hdr(1, "b1", 0, 1), segX, uv(1), e4v("10.0.0.1", 80, 0, 2, 0))}, ErrFormat, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.chunks)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("Decode error = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if got.Bridge != "" || got.Entries != nil {
				t.Errorf("Decode returned %v with its error", head(got))
			}
		})
	}
}

// TestDecodeVersion1 reads a chunk of the release before app checks, hand
// built: its entries are ready, with no output.
func TestDecodeVersion1(t *testing.T) {
	o := mustDecode(t, [][]byte{sum(hdr(1, "b1", 0, 1), uv(1), seg("x"), uv(2), e4("10.0.0.1", 80, 0), e6("2001:db8::1", 443, 0))})
	if want := obs("b1", "10.0.0.1:80", "x", "[2001:db8::1]:443", "x"); !equal(o, want) {
		t.Errorf("Decode = %v, want %v", head(o), head(want))
	}
	for _, e := range o.Entries {
		if e.Health != endpoint.Ready || e.Output != "" {
			t.Errorf("%s: %v %q, want ready with no output", e.Addr, e.Health, e.Output)
		}
	}
}

func TestDecodeHugeOutputCountDoesNotAllocate(t *testing.T) {
	for i, in := range [][]byte{
		sum(hdr(2, "b1", 0, 1), uv(0), uv(1<<40), uv(0)),
		sum(hdr(2, "b1", 0, 1), uv(0), uv(1<<20), slices.Repeat([]byte{0}, 64)),
		sum(hdr(2, "b1", 0, 1), uv(0), uv(0), uv(1<<20), slices.Repeat([]byte{0}, 64)),
	} {
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

func TestDecodeSharesOutputs(t *testing.T) {
	chunks := mustEncode(t, judged(servers("b1", 2000), failing, pending, ready), 4000)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks, want several", len(chunks))
	}
	rand.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	o := mustDecode(t, chunks)
	first := map[string]*byte{}
	for _, e := range o.Entries {
		if e.Output == "" {
			continue
		}
		p := unsafeStringData(e.Output)
		if q, ok := first[e.Output]; ok && q != p {
			t.Fatalf("output %q is held by more than one string", e.Output)
		}
		first[e.Output] = p
	}
	if len(first) != 2 {
		t.Errorf("%d outputs, want 2", len(first))
	}
}

func TestValidateHealth(t *testing.T) {
	o := judged(obs("b1", "10.0.0.1:80", "", "10.0.0.2:80", ""), failing, verdict{endpoint.Failing, strings.Repeat("o", MaxOutputLen+1)})
	if err := o.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("Validate of a long output on entry 1: %v", err)
	}
	if err := judged(o, verdict{endpoint.Health(9), ""}).Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "health 9") {
		t.Errorf("Validate of health 9: %v", err)
	}
}
