package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// recvEvent is printed for every datagram listen receives (unless -quiet).
type recvEvent struct {
	Event      string `json:"event"` // "recv"
	Via        string `json:"via"`   // "udp" or "raw"
	Src        string `json:"src"`
	Dst        string `json:"dst,omitempty"` // raw only: the packet's destination address
	DstPort    uint16 `json:"dst_port"`
	PayloadHex string `json:"payload_hex"`
}

type addrsFlag []string

func (a *addrsFlag) String() string     { return strings.Join(*a, ",") }
func (a *addrsFlag) Set(s string) error { *a = append(*a, s); return nil }

// tally counts what listen received, from any number of goroutines.
type tally struct {
	mu       sync.Mutex
	n        int64
	srcs     map[netip.AddrPort]struct{}
	dstPorts map[uint16]struct{}
	min, max uint16
	quiet    bool
	limit    int64
	full     chan struct{}
}

func (t *tally) add(ev recvEvent, src netip.AddrPort, dport uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limit > 0 && t.n >= t.limit {
		return
	}
	t.n++
	t.srcs[src] = struct{}{}
	t.dstPorts[dport] = struct{}{}
	if t.min == 0 || dport < t.min {
		t.min = dport
	}
	if dport > t.max {
		t.max = dport
	}
	if !t.quiet {
		emit(ev)
	}
	if t.limit > 0 && t.n == t.limit {
		close(t.full)
	}
}

func runListen(ctx context.Context, args []string) error {
	fs := newFlagSet("listen")
	var addrs addrsFlag
	fs.Var(&addrs, "addr", "UDP ip:port to listen on (repeatable)")
	raw := fs.Bool("raw", false, "also read every UDP datagram delivered to this host, any port, from a raw socket")
	rawPortsS := fs.String("raw-ports", "", "with -raw: count only these destination ports (list and ranges)")
	quiet := fs.Bool("quiet", false, "print no recv lines, only the summary")
	count := fs.Int64("count", 0, "exit after this many datagrams (0: until SIGTERM or -duration)")
	duration := fs.Duration("duration", 0, "exit after this long (0: until SIGTERM or -count)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(addrs) == 0 && !*raw {
		return usageError{errors.New("nothing to listen on: give -addr ip:port and/or -raw")}
	}
	var rawPorts *valueList
	if *rawPortsS != "" {
		l, err := parsePorts("raw-ports", *rawPortsS)
		if err != nil {
			return usageError{err}
		}
		rawPorts = &l
	}
	if *count < 0 || *duration < 0 {
		return usageError{fmt.Errorf("-count %d and -duration %s must be >= 0", *count, *duration)}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	t := &tally{srcs: map[netip.AddrPort]struct{}{}, dstPorts: map[uint16]struct{}{}, quiet: *quiet, limit: *count, full: make(chan struct{})}
	go func() {
		select {
		case <-t.full:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	errc := make(chan error, len(addrs)+1)
	var bound []string
	for _, a := range addrs {
		c, err := listenUDP(ctx, a)
		if err != nil {
			return err
		}
		bound = append(bound, c.LocalAddr().String())
		dport := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		wg.Go(func() { errc <- readUDP(ctx, c, dport, t) })
	}
	if *raw {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
		if err != nil {
			return fmt.Errorf("raw UDP socket (needs CAP_NET_RAW): %w", err)
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
		}
		// A timeout lets the reader notice ctx's end.
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("raw UDP socket: SO_RCVTIMEO: %w", err)
		}
		wg.Go(func() { errc <- readRaw(ctx, fd, rawPorts, t) })
	}
	ready("listen", map[string]any{"addrs": bound, "raw": *raw})
	start := time.Now()
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	t.mu.Lock()
	s := &summary{Mode: "listen", Received: t.n, DistinctSrcs: len(t.srcs), DistinctDstPorts: len(t.dstPorts), MinDstPort: t.min, MaxDstPort: t.max}
	t.mu.Unlock()
	s.finish(start, nil)
	return nil
}

func readUDP(ctx context.Context, c *net.UDPConn, dport uint16, t *tally) error {
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read %s: %w", c.LocalAddr(), err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		t.add(recvEvent{Event: "recv", Via: "udp", Src: from.String(), DstPort: dport, PayloadHex: hex.EncodeToString(buf[:n])}, from, dport)
	}
}

// readRaw reads whole IPv4 packets from a raw IPPROTO_UDP socket: it sees
// every UDP datagram the host accepts (after routing and rp_filter), with
// or without a socket on its port.
func readRaw(ctx context.Context, fd int, ports *valueList, t *tally) error {
	defer unix.Close(fd)
	var want map[uint16]bool
	if ports != nil {
		want = map[uint16]bool{}
		for i := range ports.n {
			want[uint16(ports.at(i))] = true
		}
	}
	buf := make([]byte, 65535)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("read raw UDP socket: %w", err)
		}
		p := buf[:n]
		if n < 20 || p[0]>>4 != 4 {
			continue
		}
		ihl := int(p[0]&0x0f) * 4
		if n < ihl+8 {
			continue
		}
		src := netip.AddrFrom4([4]byte(p[12:16]))
		dst := netip.AddrFrom4([4]byte(p[16:20]))
		u := p[ihl:]
		sport, dport := binary.BigEndian.Uint16(u[0:]), binary.BigEndian.Uint16(u[2:])
		if want != nil && !want[dport] {
			continue
		}
		sap := netip.AddrPortFrom(src, sport)
		t.add(recvEvent{Event: "recv", Via: "raw", Src: sap.String(), Dst: dst.String(), DstPort: dport, PayloadHex: hex.EncodeToString(u[8:])}, sap, dport)
	}
	return nil
}
