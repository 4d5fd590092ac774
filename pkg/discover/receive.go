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

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// receive reads replies until the round ends. It returns nil when the round
// ended normally (deadline, One, Settle, or ctx done; Round decides what a
// cancelled ctx means) and an error only for socket failures.
func (r *round) receive(ctx context.Context) error {
	o := &r.c.opts
	buf := make([]byte, o.MaxDatagram+1)
	oob := make([]byte, oobSize)
	dirty := true
	for {
		if dirty {
			dirty = false
			gen := r.kicks.Load()
			if ctx.Err() != nil {
				return nil
			}
			now := socketNow()
			dl := r.deadline
			if !now.Before(dl) {
				return nil
			}
			if doneAt := r.sendsDoneAt.Load(); doneAt != 0 && o.Settle > 0 {
				quiet := time.Unix(0, doneAt)
				if r.lastNew.After(quiet) {
					quiet = r.lastNew
				}
				sd := quiet.Add(o.Settle)
				if !now.Before(sd) {
					r.c.log.log(slog.LevelDebug, "round settled", slog.Duration("settle", o.Settle))
					return nil
				}
				dl = minTime(dl, sd)
			}
			if err := r.conn.SetReadDeadline(dl); err != nil {
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
				return nil
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
		if r.ingest(buf[:n], src, pktinfoIndex(oob[:oobn])) && o.One {
			return nil
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ingest handles one datagram and reports whether it added a server. A new
// server is stamped with the Client's clock as it is kept, so its Received
// is when its first reply of the round arrived; duplicates never restamp it.
func (r *round) ingest(b []byte, src netip.AddrPort, ifindex int) bool {
	o := &r.c.opts
	r.st.Replies++
	if len(b) > o.MaxDatagram {
		r.st.Oversized++
		return false
	}
	plain := b
	if o.Key != nil {
		pt, err := o.Key.Open(b, r.c.clock.Now(), o.MaxTokenAge, o.ClockSkew)
		if err != nil {
			r.st.Rejected++
			if r.c.log.enabled(slog.LevelDebug) { // per datagram: no src.String() when off
				r.c.log.log(slog.LevelDebug, "reply rejected", slog.String("from", src.String()), slog.Any("error", err))
			}
			return false
		}
		plain = pt
	}
	payloadIP, port, hasPort, ok := ParseReply(plain, o.Prefix)
	if !ok {
		r.st.Invalid++
		return false
	}
	r.st.Valid++
	srcIP := src.Addr().Unmap()
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
	if !hasPort {
		port = o.DefaultPort
	}
	ip4 := ip.As4()
	key := endpointKey(ip4, port)
	if _, dup := r.seen[key]; dup {
		r.st.Duplicates++
		return false
	}
	if len(r.seen) >= o.MaxReplies {
		r.st.Dropped++
		return false
	}
	r.seen[key] = struct{}{}
	r.lastNew = socketNow()
	r.kept = append(r.kept, keptReply{
		ip: ip4, payloadIP: payloadIP.As4(), src: srcIP.As4(),
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
