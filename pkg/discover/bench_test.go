package discover

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func BenchmarkParseReply(b *testing.B) {
	for _, bc := range []struct{ name, payload string }{
		{"stock", "SERVER_IP:192.168.100.200"},
		{"port_and_space", "SERVER_IP: 10.1.2.3:8000\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			payload, prefix := []byte(bc.payload), []byte("SERVER_IP:")
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, ok := ParseReply(payload, prefix); !ok {
					b.Fatal("not ok")
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	k := mustKey(b, specKey)
	now := time.Unix(1_700_000_000, 0)
	tok := k.Seal([]byte("SERVER_IP:10.1.2.3"), now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(tok, now, time.Minute, 30*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	k := mustKey(b, specKey)
	now := time.Unix(1_700_000_000, 0)
	msg := []byte("DISCOVER_SERVER")
	b.ReportAllocs()
	for b.Loop() {
		k.Seal(msg, now)
	}
}

// benchRound is a round ready to ingest, without a socket.
func benchRound(b *testing.B, maxReplies int) *round {
	b.Helper()
	o := DefaultOptions()
	o.MaxReplies = maxReplies
	c, err := New(o, lister(b), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return newRound(c, nil, nil, nil, time.Now(), time.Now().Add(time.Hour))
}

// BenchmarkDedupe measures the receive path after the socket: parse,
// address policy, dedupe map and Server construction.
func BenchmarkDedupe(b *testing.B) {
	const n = 10_000
	payloads := make([][]byte, n)
	ip := netip.MustParseAddr("10.0.0.1")
	for i := range payloads {
		payloads[i] = []byte("SERVER_IP:" + ip.String())
		ip = ip.Next()
	}
	src := netip.MustParseAddrPort("10.0.0.1:9999")
	b.Run("new_10000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := benchRound(b, 100_000)
			for _, p := range payloads {
				r.ingest(p, src, 0)
			}
			if len(r.servers()) != n {
				b.Fatalf("%d servers", len(r.kept))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reply")
	})
	// new_10000_notify adds RoundNotify's report of each new server to a
	// callback that does what the bridge's loop does (a lock and an append).
	b.Run("new_10000_notify", func(b *testing.B) {
		b.ReportAllocs()
		var mu sync.Mutex
		var got []Server
		for b.Loop() {
			r := benchRound(b, 100_000)
			got = got[:0]
			r.onServer = func(s Server) {
				mu.Lock()
				got = append(got, s)
				mu.Unlock()
			}
			for _, p := range payloads {
				r.ingest(p, src, 0)
			}
			if len(r.servers()) != n || len(got) != n {
				b.Fatalf("%d servers, %d reported", len(r.kept), len(got))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reply")
	})
	b.Run("duplicate", func(b *testing.B) {
		r := benchRound(b, 100_000)
		for _, p := range payloads {
			r.ingest(p, src, 0)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.ingest(payloads[i%n], src, 0)
			i++
		}
	})
}

// BenchmarkRoundIngest runs whole rounds over loopback sockets against a
// Responder answering the one probe with 10,000 distinct replies.
func BenchmarkRoundIngest(b *testing.B) {
	const replies = 10_000
	p := freePort(b)
	r := plainResponder("10.0.0.1", 8000)
	r.Replies = replies
	startResponder(b, addrPort("127.0.0.2", p), r)
	o := DefaultOptions()
	o.Port, o.Retries, o.SubnetScan = p, 0, false
	o.Timeout, o.Settle = 5*time.Second, 100*time.Millisecond
	c, err := New(o, lister(b, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Warm-up: the responder is serving and has built its replies.
	if res, err := c.Round(context.Background()); err != nil || len(res.Servers) == 0 {
		b.Fatalf("warm-up round: %d servers, %v", len(res.Servers), err)
	}
	var got, lost int
	var ingest time.Duration
	var heap uint64
	for b.Loop() {
		res, err := c.Round(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		last := res.Servers[len(res.Servers)-1].Received
		ingest += last.Sub(res.Started)
		got += len(res.Servers)
		lost += replies - len(res.Servers)
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap = max(heap, ms.HeapInuse)
		runtime.KeepAlive(res)
	}
	b.ReportMetric(float64(got)/ingest.Seconds(), "replies/s")
	b.ReportMetric(float64(lost)/float64(b.N), "lost/round")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(got)/float64(b.N), "servers/round")
}

// stampConn records when its last reply was about to be written.
type stampConn struct {
	net.PacketConn
	sent atomic.Int64 // Unix nanoseconds, read before the write
}

func (c *stampConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.sent.Store(time.Now().UnixNano())
	return c.PacketConn.WriteTo(p, addr)
}

// BenchmarkDiscoverOne measures how soon DiscoverOne returns after the
// first reply, over loopback against an in-process Responder, with the
// default 5 s timeout and 3 retries (a full round would last 5 s):
// after-reply is from just before the Responder wrote its reply to
// DiscoverOne's return (the loopback hop, the read wake-up, parsing and
// closing the round), after-ingest from the reply's Server.Received stamp
// to the return; median, 99th percentile and worst over b.N rounds (the
// worst is the machine's scheduling noise as much as the code).
func BenchmarkDiscoverOne(b *testing.B) {
	p := freePort(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pc, err := ListenResponder(ctx, addrPort("127.0.0.2", p))
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	conn := &stampConn{PacketConn: pc}
	go func() { _ = plainResponder("10.0.0.1", 0).Serve(ctx, conn) }()

	o := DefaultOptions()
	o.Port, o.SubnetScan = p, false
	l := lister(b, fakeIf("fake2", "127.0.1.2", "127.0.0.2"))
	var afterReply, afterIngest []time.Duration
	for b.Loop() {
		s, ok, err := discoverOne(context.Background(), o, l, nil)
		done := time.Now()
		if err != nil || !ok {
			b.Fatalf("discoverOne = %v, %v", ok, err)
		}
		afterReply = append(afterReply, done.Sub(time.Unix(0, conn.sent.Load())))
		afterIngest = append(afterIngest, done.Sub(s.Received))
	}
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Nanoseconds()) / 1e3 }
		b.ReportMetric(at(0.5), "µs-"+name+"-p50")
		b.ReportMetric(at(0.99), "µs-"+name+"-p99")
		b.ReportMetric(at(1), "µs-"+name+"-max")
	}
	report(afterReply, "after-reply")
	report(afterIngest, "after-ingest")
}
