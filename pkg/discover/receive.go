package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// receive reads replies until the round ends. It returns nil when the round
// ended normally (deadline, One, Settle, or ctx done; Round decides what a
// cancelled ctx means) and an error only for socket failures.
//
// A read blocks until a datagram arrives, the round's deadline (the
// socket's read deadline) passes, or a kick: the senders are done, ctx is
// done, or the settle timer fired. After a deadline or a kick the receiver
// re-evaluates the round. With Settle, once sending is done, it arms a
// timer on the settle clock for what is left of the quiet period, which
// starts at the end of sending or at the last new server, whichever is
// later. A new server does not re-arm the timer: when it fires, the
// receiver finds the quiet period moved and arms the rest of it.
func (r *round) receive(ctx context.Context) error {
	o := &r.c.opts
	buf := make([]byte, o.MaxDatagram+1)
	oob := make([]byte, oobSize)
	var settle *settleTimer
	defer func() { settle.disarm() }()
	dirty := true
	for {
		if dirty {
			dirty = false
			gen := r.kicks.Load()
			if ctx.Err() != nil {
				return nil //nolint:nilerr // a cancelled round ends normally; Round decides what ctx's end means
			}
			if !socketNow().Before(r.deadline) {
				return nil
			}
			if doneAt := r.sendsDoneAt.Load(); doneAt != nil && o.Settle > 0 {
				quiet := *doneAt
				if r.lastNew.After(quiet) {
					quiet = r.lastNew
				}
				left := quiet.Add(o.Settle).Sub(r.settleClk.Now())
				if left <= 0 {
					r.c.log.log(slog.LevelDebug, "round settled", slog.Duration("settle", o.Settle))
					return nil
				}
				settle.disarm()
				settle = r.armSettle(left)
			}
			if err := r.conn.SetReadDeadline(r.deadline); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
			if r.kicks.Load() != gen {
				dirty = true
				continue
			}
		}
		n, oobn, _, src, err := r.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) && ctx.Err() != nil {
				return nil //nolint:nilerr // the socket was closed because the round ended
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				dirty = true
				continue
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // ICMP from a probe; harmless
			}
			return fmt.Errorf("read replies: %w", err)
		}
		kept := r.ingest(buf[:n], src, pktinfoIndex(oob[:oobn]))
		if r.c.readHook != nil {
			r.c.readHook()
		}
		if kept && o.One {
			return nil
		}
	}
}

// settleTimer is a timer on the round's settle clock that kicks the
// receiver when it fires.
type settleTimer struct {
	t    clock.Timer
	stop chan struct{}
}

// armSettle returns a settleTimer that fires after d.
func (r *round) armSettle(d time.Duration) *settleTimer {
	s := &settleTimer{t: r.settleClk.NewTimer(d), stop: make(chan struct{})}
	go func() {
		select {
		case <-s.t.C():
			r.kick()
		case <-s.stop:
		}
	}()
	return s
}

// disarm stops s (nil: none) and its goroutine.
func (s *settleTimer) disarm() {
	if s == nil {
		return
	}
	s.t.Stop()
	close(s.stop)
}

// ingest handles one datagram and reports whether it added a server. A new
// server is stamped with the Client's clock as it is kept, so its Received
// is when its first reply of the round arrived; duplicates never restamp it.
// The admission policy (admit.go) runs in the order of the Refusal values,
// cheapest first: the source before any cryptography.
func (r *round) ingest(b []byte, src netip.AddrPort, ifindex int) bool {
	o := &r.c.opts
	r.st.Replies++
	if len(b) > o.MaxDatagram {
		r.st.Oversized++
		return false
	}
	srcIP := src.Addr().Unmap()
	if src.Port() != o.Port {
		return r.refuse(srcIP, RefusedSourcePort)
	}
	if !r.adm.onLink(srcIP, ifindex) && !r.adm.wasProbed(srcIP) {
		return r.refuse(srcIP, RefusedOffLink)
	}
	plain := b
	if o.Key != nil {
		pt, stamp, err := o.Key.open(b, r.c.clock.Now(), o.MaxTokenAge, o.ClockSkew)
		if err != nil {
			r.st.Rejected++
			if r.c.log.enabled(slog.LevelDebug) { // per datagram: no src.String() when off
				r.c.log.log(slog.LevelDebug, "reply rejected", slog.String("from", src.String()), slog.Any("error", err))
			}
			return false
		}
		if stamp.Before(r.notBefore) {
			return r.refuse(srcIP, RefusedReplay)
		}
		plain = pt
	}
	payloadIP, port, hasPort, ok := ParseReply(plain, o.Prefix)
	if !ok {
		r.st.Invalid++
		return false
	}
	ip, from := payloadIP, AddressPayload
	switch o.AddressFrom {
	case AddressSource:
		ip, from = srcIP, AddressSource
	case AddressAuto:
		if reason := r.unusable(payloadIP); reason != "" {
			ip, from = srcIP, AddressSource
			r.c.notePolicy(payloadIP, srcIP, reason)
		}
	}
	switch {
	case r.adm.unroutable(ip):
		return r.refuse(srcIP, RefusedUnroutable)
	case r.adm.isEdge(ip):
		return r.refuse(srcIP, RefusedSubnetEdge)
	case o.AdvertisedAddresses != AdvertisedAny && ip != srcIP && !r.adm.local(ip):
		return r.refuse(srcIP, RefusedForeign)
	}
	r.st.Valid++
	if !hasPort {
		port = o.DefaultPort
	}
	ip4 := ip.As4()
	key := endpointKey(ip4, port)
	if _, dup := r.seen[key]; dup {
		r.st.Duplicates++
		return false
	}
	src4 := srcIP.As4()
	if r.perSource[src4] >= o.MaxServersPerSource {
		return r.refuse(srcIP, RefusedSourceCap)
	}
	if len(r.seen) >= o.MaxReplies {
		r.st.Dropped++
		return false
	}
	r.perSource[src4]++
	r.seen[key] = struct{}{}
	r.lastNew = r.settleClk.Now()
	r.kept = append(r.kept, keptReply{
		ip: ip4, payloadIP: payloadIP.As4(), src: src4,
		port: port, srcPort: src.Port(),
		hasPort: hasPort, fromSrc: from == AddressSource,
		ifindex:  int32(ifindex),
		rawOff:   uint32(len(r.arena)),
		rawLen:   uint32(len(plain)),
		received: r.c.clock.Now().UnixNano(),
	})
	r.arena = append(r.arena, plain...)
	if r.onServer != nil {
		r.onServer(r.server(r.kept[len(r.kept)-1], string(plain)))
	}
	return true
}

// refuse counts a reply from src that the admission policy refused for
// why, remembers the (source, reason) pair for the round's log (at most
// maxRoundNotes pairs) and returns false.
func (r *round) refuse(src netip.Addr, why Refusal) bool {
	r.refused[why]++
	n := refusalNote{src: src, reason: why}
	if _, ok := r.notes[n]; !ok && len(r.notes) < maxRoundNotes {
		r.notes[n] = struct{}{}
	}
	return false
}

// servers builds the round's Servers from the kept records, in arrival
// order, with one allocation for all valid-UTF-8 raw payloads.
func (r *round) servers() []Server {
	if len(r.kept) == 0 {
		return nil
	}
	text := string(r.arena)
	out := make([]Server, len(r.kept))
	for i, k := range r.kept {
		out[i] = r.server(k, text[k.rawOff:k.rawOff+k.rawLen])
	}
	return out
}

// server builds the Server of kept record k whose payload is raw.
func (r *round) server(k keptReply, raw string) Server {
	if !utf8.ValidString(raw) {
		raw = RawString([]byte(raw))
	}
	src := netip.AddrFrom4(k.src)
	in := r.ingress(int(k.ifindex), src)
	from := AddressPayload
	if k.fromSrc {
		from = AddressSource
	}
	return Server{
		IP:            netip.AddrFrom4(k.ip),
		Port:          k.port,
		PayloadIP:     netip.AddrFrom4(k.payloadIP),
		PortFromReply: k.hasPort,
		Source:        netip.AddrPortFrom(src, k.srcPort),
		Interface:     in.Name,
		Network:       in.Prefix,
		Raw:           raw,
		AddressFrom:   from,
		Received:      time.Unix(0, k.received),
	}
}

// unusable says why a payload IP cannot be registered under AddressAuto,
// or "" if it can.
func (r *round) unusable(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || slices.Contains(r.broadcasts, ip):
		return "broadcast"
	}
	return ""
}

// ingress is the interface a reply arrived on: by IP_PKTINFO index when the
// kernel gave one, else the selected interface whose network holds the
// source; the zero Interface when neither is known.
func (r *round) ingress(index int, src netip.Addr) iface.Interface {
	if in, ok := r.ifByIndex[index]; ok && index > 0 {
		return in
	}
	for _, i := range r.sel {
		if i.Prefix.Contains(src) {
			return i
		}
	}
	return iface.Interface{}
}
