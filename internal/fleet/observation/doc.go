// Package observation holds what one bridge observes — the servers it currently
// sees, the LAN segment each was seen on and its app check's verdict on
// each — and the binary encoding the
// bridge publishes into the shared KV store in catalog mode, where one elected
// leader reads every bridge's observation and merges them.
//
// The encoding is compact (8 bytes per IPv4 server), deterministic (equal
// observations encode to identical bytes, so a writer can compare bytes to
// decide whether to rewrite its keys) and split into chunks of a bounded
// size, because a KV value has a size limit (512 KiB in Consul). Decode
// treats its input as untrusted: anyone with write access to the store can
// put anything there.
//
// # Wire format, versions 1 and 2
//
// An observation is one or more chunks. Each chunk is self-describing and at
// most maxChunk bytes long. Fixed-size integers are big-endian; uvarint is
// encoding/binary's unsigned varint, in its shortest spelling (a longer
// spelling of the same number is rejected). L, S, O and N below are read
// from the chunk itself; the fields marked v2 are in version 2 only.
//
//	offset   size      field
//	0        4         magic "UDBO" (0x55 0x44 0x42 0x4f)
//	4        1         format version: 1 or 2, the same in every chunk
//	5        1         L, the length of the bridge ID: 1..253
//	6        L         bridge ID: UTF-8 without control characters
//	6+L      2         chunk index: 0..count-1
//	8+L      2         chunk count: 1..MaxChunks, the same in every chunk
//	10+L     uvarint   S, the number of segments in this chunk's table
//	         S times   segment:
//	                     1         n, the length of the name: 0..255
//	                     n         the name: UTF-8
//	v2       uvarint   O, the number of outputs in this chunk's table
//	v2       O times   output:
//	                     1         n, the length of the output: 0..255
//	                     n         the check's output: UTF-8
//	         uvarint   N, the number of entries in this chunk
//	         N times   entry:
//	                     1         address family: 4 or 6
//	                     4 or 16   address: IPv4, or IPv6 that is not IPv4-mapped
//	                     2         port: 1..65535
//	                     uvarint   segment index into this chunk's table: 0..S-1
//	                v2   1         health: 0 ready, 1 pending, 2 failing
//	                v2   uvarint   output index into this chunk's table: 0..O-1
//	end-4    4         CRC-32C (Castagnoli) of every byte before it
//
// Bytes 0 to 5+L (magic, version and bridge ID) keep this layout in every
// future version, so a reader can name the bridge and the version of a chunk
// it cannot read. The checksum is checked after the version, so a later
// version may change everything after the bridge ID, the trailer included.
//
// Entries are sorted by [netip.AddrPort.Compare] and unique across the whole
// observation: chunk 0 holds the smallest addresses, and the last entry of a
// chunk sorts before the first entry of the next. A chunk's segment table
// holds each segment its entries use exactly once, in order of first use,
// and so does its output table (the empty output is a string like any
// other); segments are few and repeat, so an IPv4 entry costs 8 bytes and
// an IPv6 entry 20 while a chunk uses at most 128 segments (in version 2,
// 2 bytes more while it uses at most 128 outputs). An observation with no
// entries is one chunk with S = N = 0 (and O = 0).
//
// A chunk's size follows from its bridge ID, string tables and entries
// (10+L header bytes, the counts, the tables, the entries and 4 checksum
// bytes; 16+L with nothing in it, 17+L in version 2), so Encode packs
// entries into each chunk greedily, in order, until the next one would not
// fit.
//
// # Versions and upgrades
//
// Version 2 adds each entry's app check verdict (Entry.Health and
// Entry.Output: what the bridge's app_check says of the server). Encode
// writes version 1 while every entry is Ready with no Output, which is
// every observation of a bridge that runs no app check, and version 2
// otherwise; Decode reads both (a version 1 entry is Ready, with no
// Output). So a fleet without app checks publishes what bridges of the
// release before app checks read, and a rolling upgrade of such a fleet
// changes nothing in the store. A bridge of that release cannot read a
// version 2 observation (ErrVersion): if it leads, it ignores the
// observations of the bridges that run app checks, and their servers go
// unobserved. Upgrade every bridge of a fleet before turning app_check on.
package observation
