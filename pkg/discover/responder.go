package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Responder is the server side of the protocol (what django-udp-discovery
// runs), for demos, tests and load tests. It answers each valid probe
// unicast to its sender with Prefix + IP[:AppPort], Fernet-sealed when Key
// is set, and ignores exactly what the stock server ignores: a payload that
// is not Message byte for byte, a plaintext probe in encrypted mode, a
// garbage or wrong-key token, a token whose plaintext is not Message; and,
// beyond the stock server, a token older than MaxTokenAge+ClockSkew or
// further than ClockSkew in the future.
//
// A probe's source address can be forged, and a reply is bigger than the
// probe, so beyond the stock server a valid probe also goes unanswered when
// its source address is one no host sends from or one that reaches many
// hosts (see ProbeRefusal), when its source is over its per-source Rate, or when
// the replies would exceed the GlobalRate budget over all sources. It
// cannot tell a bridge's real probes from forged ones: a probe forged from
// a bridge's address uses up that bridge's per-source allowance. In
// encrypted mode only a holder of the key can make a probe, but a valid
// probe can be replayed, from any source, until it is MaxTokenAge+ClockSkew
// old, and every host of the LAN receives a bridge's broadcast probes.
//
// Serve admits probes with a ProbeGate built from these fields (the
// per-source Rate counts probes, the GlobalRate replies) and writes each
// reply with AppendReply.
type Responder struct {
	Message, Prefix []byte
	// IP is the address advertised (IPv4).
	IP netip.Addr
	// AppPort is appended as ":port" when non-zero; the stock server
	// appends none.
	AppPort uint16
	// Key enables encrypted mode when non-nil.
	Key *Key
	// Replies is how many distinct replies answer each probe: IP, IP+1, ...
	// (load tests); 0 means 1.
	Replies int
	Log     zerolog.Logger
	// Clock stamps and checks tokens; nil means the real clock.
	Clock clock.Clock
	// MaxTokenAge and ClockSkew bound probe token age; 0 means
	// DefaultMaxTokenAge and DefaultClockSkew.
	MaxTokenAge, ClockSkew time.Duration
	// Rate is how many probes per second each source address gets answered
	// (after a burst of Burst); 0 answers every probe. A probe's source
	// address can be forged, and each answer is bigger than the probe (and
	// Replies of them with --replies): unlimited, the responder reflects a
	// flood towards whatever address the probes claim.
	Rate  float64
	Burst int
	// GlobalRate is how many replies per second all sources together get
	// (after a burst of GlobalBurst); 0 means no limit. It counts replies,
	// not probes: a probe is answered with all its Replies or not at all,
	// so GlobalBurst must be at least Replies. It bounds what forged
	// sources, one per probe, can make the responder send in total, which
	// the per-source Rate cannot.
	GlobalRate  float64
	GlobalBurst int
	// Networks returns the host's own IPv4 networks (interface prefixes).
	// A probe from the network or broadcast address of one that is /30 or
	// shorter is refused: a reply to it would reach every host of that
	// network. It is called for each valid probe, concurrently with
	// whatever refreshes it; nil means no networks.
	Networks func() []netip.Prefix

	dropped, droppedGlobal atomic.Uint64
	refused                [numProbeRefusals]atomic.Uint64
}

// Dropped is how many valid probes went unanswered because their source
// exceeded Rate.
func (r *Responder) Dropped() uint64 { return r.dropped.Load() }

// DroppedGlobal is how many valid probes went unanswered because their
// replies would have exceeded the GlobalRate budget.
func (r *Responder) DroppedGlobal() uint64 { return r.droppedGlobal.Load() }

// Refused is how many valid probes went unanswered for reason why.
func (r *Responder) Refused(why ProbeRefusal) uint64 {
	if why < 0 || why >= numProbeRefusals {
		return 0
	}
	return r.refused[why].Load()
}

// ListenResponder binds a UDP socket on addr ("0.0.0.0:9999", ":9999") with
// SO_REUSEADDR and SO_REUSEPORT, so that several responders (or stock
// servers) on one host can all bind the discovery port; each receives the
// broadcast probes. The socket closes when ctx is cancelled only if Serve
// runs on it; callers close it otherwise.
func ListenResponder(ctx context.Context, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: reuseControl}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for probes on %s: %w", addr, err)
	}
	return pc, nil
}

// Serve answers probes arriving on conn until ctx is cancelled, then
// returns nil; it returns an error if the configuration is invalid or
// reading fails. It does not close conn.
func (r *Responder) Serve(ctx context.Context, conn net.PacketConn) error {
	if len(r.Message) == 0 || len(r.Prefix) == 0 {
		return errors.New("responder: message and prefix must not be empty")
	}
	if !r.IP.Is4() {
		return fmt.Errorf("responder: ip must be IPv4, got %q", r.IP)
	}
	clk, n := clock.OrReal(r.Clock), max(r.Replies, 1)
	if r.GlobalRate > 0 && n > r.GlobalBurst {
		return fmt.Errorf("responder: global burst %d is below the %d replies of a probe: no probe could be answered", r.GlobalBurst, n)
	}
	gate, err := NewProbeGate(ProbeGateConfig{
		Message: r.Message, Key: r.Key, MaxTokenAge: r.MaxTokenAge, ClockSkew: r.ClockSkew,
		Rate: r.Rate, Burst: r.Burst, GlobalRate: r.GlobalRate, GlobalBurst: r.GlobalBurst,
		Networks: r.Networks,
	})
	if err != nil {
		return fmt.Errorf("responder: %w", err)
	}
	replies := r.replies(n)

	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	udp, _ := conn.(*net.UDPConn)
	buf := make([]byte, 64<<10)
	for {
		m, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("responder: read probes: %w", err)
		}
		src := sourceOf(from)
		switch v, why := gate.Admit(buf[:m], src, n, clk.Now()); v {
		case ProbeAdmitted:
		case ProbeSourceRefused:
			r.refused[why].Add(1)
			r.Log.Debug().Stringer("from", from).Stringer("reason", why).Msg("probe refused for its source address")
			continue
		case ProbeOverRate:
			r.dropped.Add(1)
			continue
		case ProbeOverGlobalRate:
			r.droppedGlobal.Add(1)
			continue
		default:
			r.Log.Debug().Stringer("from", from).Stringer("reason", v).Msg("probe ignored")
			continue
		}
		sent := 0
		for _, p := range replies {
			if r.Key != nil {
				p = r.Key.Seal(p, clk.Now())
			}
			var err error
			if ua, ok := from.(*net.UDPAddr); ok && udp != nil {
				_, err = udp.WriteToUDPAddrPort(p, ua.AddrPort())
			} else {
				_, err = conn.WriteTo(p, from)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.Log.Debug().Stringer("to", from).Err(err).Msg("reply not sent")
				continue
			}
			sent++
		}
		r.Log.Debug().Stringer("from", from).Int("replies", sent).Msg("probe answered")
	}
}

// sourceOf returns from as an address and port, or the zero AddrPort
// (refused as not IPv4) when it is not an IP address and port.
func sourceOf(from net.Addr) netip.AddrPort {
	if ua, ok := from.(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	if from == nil {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(from.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return ap
}

// replies builds the n plaintext replies: Prefix + IP+i [":" AppPort].
func (r *Responder) replies(n int) [][]byte {
	out := make([][]byte, 0, n)
	ip := r.IP
	for range n {
		out = append(out, AppendReply(nil, r.Prefix, ip, r.AppPort))
		if next := ip.Next(); next.Is4() {
			ip = next
		}
	}
	return out
}
