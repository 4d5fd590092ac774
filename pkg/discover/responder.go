package discover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

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

	dropped atomic.Uint64
}

// Dropped is how many valid probes went unanswered because their source
// exceeded Rate.
func (r *Responder) Dropped() uint64 { return r.dropped.Load() }

// maxLimiters bounds the per-source limiters kept: a flood from many
// (forged) sources empties the table instead of growing it.
const maxLimiters = 1 << 14

// limiter returns the limiter of source ip, or nil when Rate is 0.
func (r *Responder) limiter(limiters map[netip.Addr]*rate.Limiter, ip netip.Addr) *rate.Limiter {
	if r.Rate <= 0 {
		return nil
	}
	l, ok := limiters[ip]
	if !ok {
		if len(limiters) >= maxLimiters {
			clear(limiters)
		}
		l = rate.NewLimiter(rate.Limit(r.Rate), max(r.Burst, 1))
		limiters[ip] = l
	}
	return l
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
	clk, maxAge, skew, n := clock.OrReal(r.Clock), r.MaxTokenAge, r.ClockSkew, max(r.Replies, 1)
	if maxAge == 0 {
		maxAge = DefaultMaxTokenAge
	}
	if skew == 0 {
		skew = DefaultClockSkew
	}
	replies := r.replies(n)

	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	udp, _ := conn.(*net.UDPConn)
	buf := make([]byte, 64<<10)
	limiters := map[netip.Addr]*rate.Limiter{}
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
		if why := r.check(buf[:m], clk.Now(), maxAge, skew); why != nil {
			r.Log.Debug().Stringer("from", from).Err(why).Msg("probe ignored")
			continue
		}
		if ua, ok := from.(*net.UDPAddr); ok {
			if l := r.limiter(limiters, ua.AddrPort().Addr().Unmap()); l != nil && !l.AllowN(clk.Now(), 1) {
				r.dropped.Add(1)
				continue
			}
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

// check returns why a probe gets no reply, or nil.
func (r *Responder) check(p []byte, now time.Time, maxAge, skew time.Duration) error {
	if r.Key == nil {
		if !bytes.Equal(p, r.Message) {
			return errors.New("payload is not the discovery message")
		}
		return nil
	}
	pt, err := r.Key.Open(p, now, maxAge, skew)
	if err != nil {
		return err
	}
	if !bytes.Equal(pt, r.Message) {
		return errors.New("token does not hold the discovery message")
	}
	return nil
}

// replies builds the n plaintext replies: Prefix + IP+i [":" AppPort].
func (r *Responder) replies(n int) [][]byte {
	out := make([][]byte, 0, n)
	ip := r.IP
	for range n {
		b := append(bytes.Clone(r.Prefix), ip.String()...)
		if r.AppPort != 0 {
			b = strconv.AppendUint(append(b, ':'), uint64(r.AppPort), 10)
		}
		out = append(out, b)
		if next := ip.Next(); next.Is4() {
			ip = next
		}
	}
	return out
}
