//go:build !linux

package discover

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// oobSize: ingress interface indexes are read on Linux only.
const oobSize = 0

// listenProbe opens the round's IPv4 UDP socket on 0.0.0.0:0 with
// SO_BROADCAST and a receive buffer of want bytes (best effort).
func listenProbe(ctx context.Context, want int) (*net.UDPConn, int, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = setBroadcast(fd)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:0")
	if err != nil {
		return nil, 0, fmt.Errorf("open discovery socket on 0.0.0.0: %w", err)
	}
	c := pc.(*net.UDPConn)
	_ = c.SetReadBuffer(want)
	return c, want, nil
}

func pktinfoIndex([]byte) int { return 0 }

func reuseControl(_, _ string, _ syscall.RawConn) error { return nil }

// socketDrops: the kernel's drop count is read on Linux only.
func socketDrops(*net.UDPConn) (int, bool) { return 0, false }
