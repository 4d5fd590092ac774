package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rcvBuf is forced on receiving sockets so that bursts are not dropped by
// the default buffer (~256 small datagrams).
const rcvBuf = 8 << 20

// listenUDP opens a UDP socket on addr with SO_REUSEADDR, SO_REUSEPORT (so
// it can share a port with a stock server) and SO_BROADCAST, and a forced
// receive buffer; ctx's end closes it.
func listenUDP(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT, unix.SO_BROADCAST} {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 1); serr != nil {
					return
				}
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen udp %s: %w", addr, err)
	}
	c := pc.(*net.UDPConn)
	context.AfterFunc(ctx, func() { c.Close() })
	return c, nil
}

// probeEvent is printed for every probe answer mode answered.
type probeEvent struct {
	Event    string  `json:"event"` // "probe"
	From     string  `json:"from"`
	Sent     int64   `json:"sent"`
	Errors   int64   `json:"errors"`
	FirstN   uint64  `json:"first_n"` // counter of the first reply: identities first_n..first_n+sent-1
	ElapsedS float64 `json:"elapsed_s"`
	RatePPS  float64 `json:"rate_pps"`
}

func runAnswer(ctx context.Context, args []string) error {
	fs := newFlagSet("answer")
	listen := fs.String("listen", "0.0.0.0:9999", "UDP address to receive probes on")
	match := fs.String("match", "", "answer only probes whose payload is exactly this (text:/hex:/b64:); empty: any")
	srcS := fs.String("src", "", "forged source addresses: list, ranges a-b, prefixes (required)")
	sportS := fs.String("sport", "9999", "forged source ports: list and ranges")
	idIPsS := fs.String("id-ips", "", "identity addresses for {ip} (default: -src)")
	idPortsS := fs.String("id-ports", "8000", "identity ports for {port}")
	payloadS := fs.String("payload", "text:SERVER_IP:{ip}:{port}", "reply: text:... with {ip} {port} {src} {sport} {dport} {n}, or hex:/b64:")
	perProbe := fs.Int("per-probe", 1, "replies per probe")
	maxProbes := fs.Int("probes", 0, "exit after answering this many probes (0: until SIGTERM)")
	rate := fs.Float64("rate", 0, "replies per second within a burst (0: as fast as possible)")
	start0 := fs.Uint64("start", 0, "first value of the identity counter")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	srcs, err := parseIPs("src", *srcS)
	if err != nil {
		return usageError{err}
	}
	sports, err := parsePorts("sport", *sportS)
	if err != nil {
		return usageError{err}
	}
	idIPs := srcs
	if *idIPsS != "" {
		if idIPs, err = parseIPs("id-ips", *idIPsS); err != nil {
			return usageError{err}
		}
	}
	idPorts, err := parsePorts("id-ports", *idPortsS)
	if err != nil {
		return usageError{err}
	}
	tmpl, err := compileTemplate("payload", *payloadS)
	if err != nil {
		return usageError{err}
	}
	var want []byte
	if *match != "" {
		if want, err = parsePayload(*match); err != nil {
			return usageError{fmt.Errorf("-match: %w", err)}
		}
	}
	if *perProbe < 1 || *maxProbes < 0 || *rate < 0 {
		return usageError{fmt.Errorf("-per-probe %d must be >= 1, -probes %d and -rate %g >= 0", *perProbe, *maxProbes, *rate)}
	}
	r, err := newRawSender()
	if err != nil {
		return err
	}
	defer r.Close()
	conn, err := listenUDP(ctx, *listen)
	if err != nil {
		return err
	}
	defer conn.Close()
	ready("answer", map[string]any{"listen": conn.LocalAddr().String(), "identities": idIPs.n * idPorts.n})
	start := time.Now()
	s := &summary{Mode: "answer"}
	n := *start0
	buf := make([]byte, 0, 1500)
	in := make([]byte, 65535)
	for *maxProbes == 0 || s.Probes < int64(*maxProbes) {
		k, from, err := conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			return fmt.Errorf("read probe: %w", err)
		}
		s.Received++
		if want != nil && !bytes.Equal(in[:k], want) {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s.Probes++
		ev := probeEvent{Event: "probe", From: from.String(), FirstN: n}
		sent0, errs0, t0 := r.sent, r.errs, time.Now()
		p := pacer{t0, *rate}
		for i := range int64(*perProbe) {
			if !p.wait(ctx, i) {
				break
			}
			src := netip.AddrPortFrom(srcs.addr(n), uint16(sports.at(n)))
			f := fields{n: n, ip: idIPs.addr(n % idIPs.n), port: idPorts.at(n / idIPs.n), src: src, dport: from.Port()}
			buf = tmpl.expand(buf[:0], f)
			_ = r.send(src, from, buf)
			n++
		}
		ev.Sent, ev.Errors = r.sent-sent0, r.errs-errs0
		ev.ElapsedS = time.Since(t0).Seconds()
		if ev.ElapsedS > 0 {
			ev.RatePPS = float64(ev.Sent) / ev.ElapsedS
		}
		emit(ev)
		if ctx.Err() != nil {
			break
		}
	}
	s.finish(start, r)
	return nil
}
