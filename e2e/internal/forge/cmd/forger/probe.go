package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// roundEvent is printed after each probe round.
type roundEvent struct {
	Event            string   `json:"event"` // "round"
	Round            int      `json:"round"`
	Replies          int64    `json:"replies"`
	DistinctPayloads int      `json:"distinct_payloads"`
	NewPayloads      int      `json:"new_payloads"` // not seen in an earlier round
	DistinctSrcs     int      `json:"distinct_srcs"`
	FirstS           float64  `json:"first_s,omitempty"` // seconds from the probe to the first reply
	LastS            float64  `json:"last_s,omitempty"`
	Sample           []sample `json:"sample,omitempty"` // the first few replies
}

type sample struct {
	Src     string `json:"src"`
	Payload string `json:"payload"`
}

// sampleSize is how many replies a round event quotes.
const sampleSize = 5

func runProbe(ctx context.Context, args []string) error {
	fs := newFlagSet("probe")
	to := fs.String("to", "", "probe destination ip:port, e.g. the LAN broadcast 10.213.1.255:9999 (required)")
	from := fs.String("from", "0.0.0.0:0", "local ip:port to send from")
	payloadS := fs.String("payload", "text:DISCOVER_SERVER", "probe payload: text:, hex: or b64:")
	wait := fs.Duration("wait", time.Second, "how long a round collects replies")
	rounds := fs.Int("rounds", 1, "probe rounds")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dst, err := parseAddrPort("to", *to)
	if err != nil {
		return usageError{err}
	}
	payload, err := parsePayload(*payloadS)
	if err != nil {
		return usageError{fmt.Errorf("-payload: %w", err)}
	}
	if *rounds < 1 || *wait <= 0 {
		return usageError{fmt.Errorf("-rounds %d must be >= 1 and -wait %s > 0", *rounds, *wait)}
	}
	conn, err := listenUDP(ctx, *from)
	if err != nil {
		return err
	}
	defer conn.Close()
	ready("probe", map[string]any{"local": conn.LocalAddr().String()})
	start := time.Now()
	s := &summary{Mode: "probe"}
	seen := map[string]struct{}{}
	buf := make([]byte, 65535)
	for round := range *rounds {
		if _, err := conn.WriteToUDPAddrPort(payload, dst); err != nil {
			return fmt.Errorf("send probe to %s: %w", dst, err)
		}
		s.Sent++
		t0 := time.Now()
		if err := conn.SetReadDeadline(t0.Add(*wait)); err != nil {
			return err
		}
		ev := roundEvent{Event: "round", Round: round}
		payloads := map[string]struct{}{}
		srcs := map[netip.AddrPort]struct{}{}
		for {
			n, src, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				if ctx.Err() != nil {
					break
				}
				return fmt.Errorf("read replies: %w", err)
			}
			el := time.Since(t0).Seconds()
			if ev.Replies == 0 {
				ev.FirstS = el
			}
			ev.LastS = el
			ev.Replies++
			src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
			srcs[src] = struct{}{}
			p := string(buf[:n])
			payloads[p] = struct{}{}
			if len(ev.Sample) < sampleSize {
				ev.Sample = append(ev.Sample, sample{src.String(), p})
			}
		}
		for p := range payloads {
			if _, old := seen[p]; !old {
				ev.NewPayloads++
				seen[p] = struct{}{}
			}
		}
		ev.DistinctPayloads, ev.DistinctSrcs = len(payloads), len(srcs)
		s.Received += ev.Replies
		emit(ev)
		if ctx.Err() != nil {
			break
		}
	}
	s.finish(start, nil)
	return nil
}
