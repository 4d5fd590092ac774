package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// rawSender writes whole IPv4 packets (header included) through a raw
// socket, so the source address and port are whatever the caller says.
type rawSender struct {
	fd   int
	buf  []byte
	sent int64
	errs int64
	last error // the most recent send error, for the summary
}

// sndBuf is the send buffer forced on the raw socket: deep enough that a
// burst of small datagrams is not throttled by the default ~200 KiB.
const sndBuf = 4 << 20

func newRawSender() (*rawSender, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("raw socket (needs CAP_NET_RAW): %w", err)
	}
	// IPPROTO_RAW implies IP_HDRINCL; say it anyway.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("raw socket: IP_HDRINCL: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("raw socket: SO_BROADCAST: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndBuf)
	}
	return &rawSender{fd: fd, buf: make([]byte, 0, 65535)}, nil
}

func (s *rawSender) Close() error { return unix.Close(s.fd) }

// send writes one UDP datagram from src to dst. ENOBUFS (a full device
// queue) is retried a few times after a short pause; other errors count
// and are returned.
func (s *rawSender) send(src, dst netip.AddrPort, payload []byte) error {
	pkt, err := buildUDP(s.buf[:0], src, dst, payload)
	if err != nil {
		s.errs++
		s.last = err
		return err
	}
	s.buf = pkt[:0]
	sa := &unix.SockaddrInet4{Addr: dst.Addr().As4()}
	for try := 0; ; try++ {
		err = unix.Sendto(s.fd, pkt, 0, sa)
		if err == nil {
			s.sent++
			return nil
		}
		if (errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && try < 100 {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		s.errs++
		s.last = fmt.Errorf("sendto %s from %s: %w", dst, src, err)
		return s.last
	}
}

// buildUDP appends an IPv4 header (no options, TTL 64, DF clear) and a UDP
// header with both checksums to b, then the payload.
func buildUDP(b []byte, src, dst netip.AddrPort, payload []byte) ([]byte, error) {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil, fmt.Errorf("datagram %s -> %s: both addresses must be IPv4", src, dst)
	}
	const ipLen, udpLen = 20, 8
	total := ipLen + udpLen + len(payload)
	if total > 65535 {
		return nil, fmt.Errorf("datagram %s -> %s: payload of %d bytes is too long for IPv4", src, dst, len(payload))
	}
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b = append(b,
		0x45, 0, // version 4, IHL 5; TOS
		byte(total>>8), byte(total), // total length
		0, 0, // ID: 0 lets the kernel pick one
		0, 0, // flags, fragment offset
		64, unix.IPPROTO_UDP, // TTL, protocol
		0, 0, // header checksum, below
	)
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	binary.BigEndian.PutUint16(b[10:], checksum(b[:ipLen], 0))
	ul := udpLen + len(payload)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(ul))
	b = append(b, 0, 0)
	b = append(b, payload...)
	// Pseudo-header: source, destination, zero, protocol, UDP length.
	var sum uint32
	sum += uint32(s4[0])<<8 | uint32(s4[1])
	sum += uint32(s4[2])<<8 | uint32(s4[3])
	sum += uint32(d4[0])<<8 | uint32(d4[1])
	sum += uint32(d4[2])<<8 | uint32(d4[3])
	sum += unix.IPPROTO_UDP + uint32(ul)
	c := checksum(b[ipLen:], sum)
	if c == 0 {
		c = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(b[ipLen+6:], c)
	return b, nil
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
