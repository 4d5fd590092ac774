package checker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// benchServerEnv makes the test binary a server for the benchmark (see
// TestMain): the checked servers' side runs in a process of its own, so
// that the benchmark's CPU time is the checker's alone.
const benchServerEnv = "CHECKER_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		benchServer()
		return
	}
	os.Exit(m.Run())
}

// benchServer answers HTTP (200, no keep-alive) on 0.0.0.0:<any port>, so
// that every 127.0.0.0/8 address reaches it, prints the port, and exits
// when its stdin closes (when the benchmark ends, or dies).
func benchServer() {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          nil,
	}
	srv.SetKeepAlivesEnabled(false)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	_ = srv.Serve(l)
}

// startBenchServer starts the server process and returns its port.
func startBenchServer(b *testing.B) uint16 {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1", "GOMAXPROCS=2")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Logf("bench server (pid %d): %v", cmd.Process.Pid, err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	port, err := strconv.ParseUint(strings.TrimSpace(line), 10, 16)
	if err != nil {
		b.Fatal(err)
	}
	return uint16(port)
}

// countingProber counts the results of the checks it runs.
type countingProber struct {
	p          Prober
	done, fail atomic.Int64
}

func (c *countingProber) Check(ctx context.Context, addr netip.AddrPort) appcheck.Result {
	r := c.p.Check(ctx, addr)
	if !r.OK {
		c.fail.Add(1)
	}
	c.done.Add(1)
	return r
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// BenchmarkCycle10k checks 10,000 servers (10,000 addresses 127.1.x.y of
// one listener, in a process of its own) with the real Checker, the real
// clock and 64 in flight, every 3 s with 20% jitter, and reports per full
// cycle of 10,000 checks (after a first one to warm up): the CPU time of
// this process (user + system: the checker, its scheduler and the
// kernel's work on its sockets), the most descriptors open at once, the
// heap in use at the cycle's end and the bytes allocated.
func BenchmarkCycle10k(b *testing.B) {
	const n = 10000
	port := startBenchServer(b)
	eps := make([]endpoint.Endpoint, n)
	for i := range eps {
		eps[i].Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)}), port)
	}
	for _, kind := range []appcheck.Kind{appcheck.TCP, appcheck.HTTP} {
		b.Run(string(kind), func(b *testing.B) {
			o := appcheck.DefaultOptions()
			o.Kind, o.Interval, o.Timeout, o.Concurrency, o.Jitter = kind, 3*time.Second, 2*time.Second, 64, 0.2
			checker, err := appcheck.New(o)
			if err != nil {
				b.Fatal(err)
			}
			p := &countingProber{p: checker}
			c, err := New(Config{Options: o, Prober: p})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				c.Run(ctx)
			}()
			var peakFDs atomic.Int64
			go func() {
				t := time.NewTicker(50 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						if f := int64(openFDs()); f > peakFDs.Load() {
							peakFDs.Store(f)
						}
					}
				}
			}()
			wait := func(count int64) {
				for p.done.Load() < count {
					time.Sleep(5 * time.Millisecond)
				}
			}
			c.SetTargets(eps)
			wait(n) // the first cycle: warm up
			var user, sys time.Duration
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			allocs := ms.TotalAlloc
			peakFDs.Store(0)
			fails := p.fail.Load()
			b.ResetTimer()
			for i := range b.N {
				u0, s0 := cpuTime()
				wait(int64(n * (i + 2)))
				u1, s1 := cpuTime()
				user, sys = user+u1-u0, sys+s1-s0
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			b.ReportMetric((user+sys).Seconds()/float64(b.N), "cpu-s/cycle")
			b.ReportMetric(user.Seconds()/float64(b.N), "user-s/cycle")
			b.ReportMetric(sys.Seconds()/float64(b.N), "sys-s/cycle")
			b.ReportMetric(float64(peakFDs.Load()), "peak-fds")
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MiB")
			b.ReportMetric(float64(ms.TotalAlloc-allocs)/(1<<20)/float64(b.N), "alloc-MiB/cycle")
			b.ReportMetric(float64(p.fail.Load()-fails)/float64(b.N), "fails/cycle")
			cancel()
			<-stopped
			b.ReportMetric(0, "ns/op")
		})
	}
}
