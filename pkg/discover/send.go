package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// probe sends one probe (a fresh token in encrypted mode) to dst.
func (r *round) probe(dst netip.AddrPort) error {
	msg := r.c.opts.Message
	if r.c.opts.Key != nil {
		msg = r.c.opts.Key.Seal(msg, r.c.clock.Now())
	}
	var err error
	if r.c.sendHook != nil {
		err = r.c.sendHook(r.conn, msg, dst)
	} else {
		_, err = r.conn.WriteToUDPAddrPort(msg, dst)
	}
	if err != nil {
		r.sendErrors.Add(1)
		return err
	}
	r.probesSent.Add(1)
	return nil
}

// broadcast sends one broadcast probe to dst and counts it when sent.
func (r *round) broadcast(dst netip.AddrPort) error {
	if err := r.probe(dst); err != nil {
		return err
	}
	r.broadcastsSent.Add(1)
	return nil
}

// anyBroadcast reports whether some selected interface has an IPv4
// broadcast address to probe (a retry could be sent).
func (r *round) anyBroadcast() bool {
	for _, d := range r.dests {
		if d.addr.Addr().Is4() {
			return true
		}
	}
	return false
}

// firstBurst probes every selected broadcast once. It returns an
// ErrNoProbeSent error when none could be sent; the round then fails at
// once only when no retry can follow (Round).
func (r *round) firstBurst() error {
	var errs []error
	for _, d := range r.dests {
		if !d.addr.Addr().Is4() {
			errs = append(errs, fmt.Errorf("%s: no IPv4 broadcast address", d.names))
			continue
		}
		if err := r.broadcast(d.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s -> %s: %w", d.names, d.addr, err))
			r.c.log.log(slog.LevelWarn, "probe not sent",
				slog.String("interface", d.names), slog.String("to", d.addr.String()), slog.Any("error", err))
			continue
		}
		if r.c.log.enabled(slog.LevelDebug) {
			r.c.log.log(slog.LevelDebug, "probe sent", slog.String("interface", d.names), slog.String("to", d.addr.String()))
		}
	}
	if len(errs) == len(r.dests) {
		return fmt.Errorf("%w: %w", ErrNoProbeSent, errors.Join(errs...))
	}
	return nil
}

// sendRetries resends the broadcast burst Retries times, at
// Timeout*i/(Retries+1) after the round began. The schedule is real time
// (socketNow and a real timer, unless a test set retryClock), as is the
// deadline it is spread over.
func (r *round) sendRetries(ctx context.Context) {
	n := r.c.opts.Retries
	clk := clock.OrReal(r.c.retryClock)
	for i := 1; i <= n; i++ {
		at := r.begin.Add(r.c.opts.Timeout * time.Duration(i) / time.Duration(n+1))
		t := clk.NewTimer(at.Sub(socketNow()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		for _, d := range r.dests {
			if d.addr.Addr().Is4() {
				if err := r.broadcast(d.addr); err != nil {
					r.c.log.log(slog.LevelDebug, "retry not sent",
						slog.String("interface", d.names), slog.String("to", d.addr.String()), slog.Any("error", err))
				}
			}
		}
	}
}

// scan sends this round's unicast probes, all paced at ScanRate per second
// (and on-link hosts also at the on-link rate): a keep-alive probe to every
// server outside broadcast reach that the caller holds (KeepAlive),
// alternating with the hosts of ScanCIDRs from the Client's cursor on,
// skipping our own addresses, until the deadline or until every host was
// covered once this round and every keep-alive sent. It stops scanReplyMargin before the deadline, so the last hosts
// probed have time to answer (the cursor has moved past them: a reply lost
// to the deadline would wait a whole cycle); a send blocked past the
// deadline (the socket's write deadline) ends the scan too.
func (r *round) scan(ctx context.Context, cur *scanCursor) {
	scanPace := newPacer(float64(r.c.opts.ScanRate))
	onPace := newPacer(r.onLinkRate)
	var firstErr error
	defer func() {
		if firstErr != nil {
			r.c.log.log(slog.LevelDebug, "subnet scan: some probes not sent", slog.Any("error", firstErr))
		}
	}()
	stopAt := r.deadline.Add(-scanReplyMargin(r.c.opts.Timeout))
	first := true
	send := func(h netip.Addr) bool {
		d := scanPace.take(r.clk.Now())
		if cidr.AnyContains(r.onLink, h) {
			d = max(d, onPace.take(r.clk.Now()))
		}
		if !waitUntil(ctx, r.clk, d, stopAt) {
			return false
		}
		if first {
			first = false
			r.scanFirst.Store(r.clk.Now().UnixNano())
		}
		err := r.probe(netip.AddrPortFrom(h, r.c.opts.Port))
		r.scanLast.Store(r.clk.Now().UnixNano())
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", h, err)
		}
		return true
	}
	// Keep-alives alternate with scan probes, so they take at most half
	// of the scan's rate however many there are: the scan never stalls
	// behind them.
	ka := r.keepAlive
	keepAlive := func() bool {
		if len(ka) == 0 {
			return true
		}
		h := ka[0]
		ka = ka[1:]
		if !send(h) {
			return false
		}
		r.keepAlives.Add(1)
		return true
	}
	for covered := uint64(0); covered < cur.total; covered++ {
		if !keepAlive() {
			return
		}
		h := cur.at(cur.pos)
		if _, mine := r.own[h]; !mine {
			r.adm.probedHost(cur.pos) // before the send: the reply may beat the bookkeeping
			if !send(h) {
				return
			}
			r.scanTargets.Add(1)
		}
		if _, wrapped := cur.next(); wrapped {
			r.scanCycles.Add(1)
		}
		r.scanCovered.Add(1)
	}
	for len(ka) > 0 {
		if !keepAlive() {
			return
		}
	}
}

// scanReplyMargin is how long before the round's deadline the scan stops
// sending: a tenth of the timeout, at most 100 ms (a routed round trip).
func scanReplyMargin(timeout time.Duration) time.Duration {
	return min(timeout/10, 100*time.Millisecond)
}
