package appcheck

import (
	"context"
	"net/netip"
)

// checkTCP connects to addr and closes: it passes when the connection is
// accepted before cctx's deadline. ctx is the caller's context.
func (c *Checker) checkTCP(ctx, cctx context.Context, addr netip.AddrPort) Result {
	conn, err := c.dialer.DialContext(cctx, "tcp", addr.String())
	if err != nil {
		return Result{Reason: c.failure(ctx, cctx, err)}
	}
	_ = conn.Close() // nothing was written: a close error changes nothing
	return Result{OK: true, Reason: "ok"}
}
