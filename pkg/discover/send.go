package discover

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/time/rate"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
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

// firstBurst probes every selected broadcast once; if none could be sent
// the round has failed.
func (r *round) firstBurst() error {
	var errs []error
	for _, d := range r.dests {
		if !d.addr.Addr().Is4() {
			errs = append(errs, fmt.Errorf("%s: no IPv4 broadcast address", d.names))
			continue
		}
		if err := r.probe(d.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s -> %s: %w", d.names, d.addr, err))
			r.c.log.Warn().Str("interface", d.names).Stringer("to", d.addr).Err(err).Msg("probe not sent")
			continue
		}
		r.c.log.Debug().Str("interface", d.names).Stringer("to", d.addr).Msg("probe sent")
	}
	if len(errs) == len(r.dests) {
		return fmt.Errorf("%w: %w", ErrNoProbeSent, errors.Join(errs...))
	}
	return nil
}

// sendRetries resends the broadcast burst Retries times, at
// Timeout*i/(Retries+1) after the round began. The schedule is real time
// (socketNow and a time.Timer), as is the deadline it is spread over.
func (r *round) sendRetries(ctx context.Context) {
	n := r.c.opts.Retries
	for i := 1; i <= n; i++ {
		at := r.begin.Add(r.c.opts.Timeout * time.Duration(i) / time.Duration(n+1))
		t := time.NewTimer(at.Sub(socketNow()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		for _, d := range r.dests {
			if d.addr.Addr().Is4() {
				if err := r.probe(d.addr); err != nil {
					r.c.log.Debug().Str("interface", d.names).Stringer("to", d.addr).Err(err).Msg("retry not sent")
				}
			}
		}
	}
}

// scan sends unicast probes to every host of ScanCIDRs except our own
// addresses, paced at ScanRate per second (the limiter runs on real time,
// like the round's deadline).
func (r *round) scan(ctx context.Context) {
	lim := rate.NewLimiter(rate.Limit(r.c.opts.ScanRate), 1)
	var firstErr error
	defer func() {
		if firstErr != nil {
			r.c.log.Debug().Err(firstErr).Msg("subnet scan: some probes not sent")
		}
	}()
	for _, p := range r.c.opts.ScanCIDRs {
		for h := range cidr.Hosts(p) {
			if _, mine := r.own[h]; mine {
				continue
			}
			if lim.Wait(ctx) != nil {
				return
			}
			r.scanTargets.Add(1)
			if err := r.probe(netip.AddrPortFrom(h, r.c.opts.Port)); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", h, err)
			}
		}
	}
}
