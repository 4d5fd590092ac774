package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// summary is the final "done" line of every mode; fields a mode does not
// use stay out of it.
type summary struct {
	Event      string  `json:"event"`
	Mode       string  `json:"mode"`
	Sent       int64   `json:"sent"`
	SendErrors int64   `json:"send_errors"`
	LastError  string  `json:"last_error,omitempty"`
	Probes     int64   `json:"probes,omitempty"`
	Received   int64   `json:"received,omitempty"`
	ElapsedS   float64 `json:"elapsed_s"`
	RatePPS    float64 `json:"rate_pps"`
	// listen
	DistinctSrcs     int    `json:"distinct_srcs,omitempty"`
	DistinctDstPorts int    `json:"distinct_dst_ports,omitempty"`
	MinDstPort       uint16 `json:"min_dst_port,omitempty"`
	MaxDstPort       uint16 `json:"max_dst_port,omitempty"`
	// alloc
	AllocatedMiB int `json:"allocated_mib,omitempty"`
}

func (s *summary) finish(start time.Time, r *rawSender) {
	s.Event = "done"
	s.ElapsedS = time.Since(start).Seconds()
	if r != nil {
		s.Sent, s.SendErrors = r.sent, r.errs
		if r.last != nil {
			s.LastError = r.last.Error()
		}
		if s.ElapsedS > 0 {
			s.RatePPS = float64(r.sent) / s.ElapsedS
		}
	}
	emit(s)
}

// pacer spaces sends at rate per second (0: no pacing).
type pacer struct {
	start time.Time
	rate  float64
}

// wait sleeps until datagram i is due; it returns false when ctx ends.
func (p pacer) wait(ctx context.Context, i int64) bool {
	if p.rate <= 0 {
		return i&1023 != 0 || ctx.Err() == nil
	}
	due := p.start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))
	if d := time.Until(due); d > 200*time.Microsecond {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
		}
	}
	return ctx.Err() == nil
}

// datagram is one -d flag of send.
type datagram struct {
	src, dst netip.AddrPort
	payload  []byte
}

type datagramsFlag []datagram

func (d *datagramsFlag) String() string { return fmt.Sprint(len(*d), " datagrams") }

// Set parses "SRC DST ENC:PAYLOAD": two ip:port and a payload that may
// itself hold spaces.
func (d *datagramsFlag) Set(s string) error {
	f := strings.SplitN(s, " ", 3)
	if len(f) != 3 {
		return fmt.Errorf("%q: want 'SRC_IP:PORT DST_IP:PORT ENC:PAYLOAD'", s)
	}
	src, err := parseAddrPort("d source", f[0])
	if err != nil {
		return err
	}
	dst, err := parseAddrPort("d destination", f[1])
	if err != nil {
		return err
	}
	p, err := parsePayload(f[2])
	if err != nil {
		return err
	}
	*d = append(*d, datagram{src, dst, p})
	return nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("forger "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error is returned and printed once by main
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

func runSend(ctx context.Context, args []string) error {
	fs := newFlagSet("send")
	var dgrams datagramsFlag
	fs.Var(&dgrams, "d", "datagram 'SRC_IP:PORT DST_IP:PORT ENC:PAYLOAD', ENC text|hex|b64 (repeatable, sent in order)")
	count := fs.Int("count", 1, "times to send the whole list")
	rate := fs.Float64("rate", 0, "datagrams per second (0: as fast as possible)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(dgrams) == 0 {
		return usageError{fmt.Errorf("no datagram: give -d 'SRC DST ENC:PAYLOAD' at least once")}
	}
	if *count < 1 || *rate < 0 {
		return usageError{fmt.Errorf("-count %d must be >= 1 and -rate %g >= 0", *count, *rate)}
	}
	r, err := newRawSender()
	if err != nil {
		return err
	}
	defer r.Close()
	ready("send", nil)
	start := time.Now()
	p := pacer{start, *rate}
	var i int64
	s := &summary{Mode: "send"}
loop:
	for range *count {
		for _, d := range dgrams {
			if !p.wait(ctx, i) {
				break loop
			}
			_ = r.send(d.src, d.dst, d.payload)
			i++
		}
	}
	s.finish(start, r)
	return nil
}

func runSpray(ctx context.Context, args []string) error {
	fs := newFlagSet("spray")
	srcS := fs.String("src", "", "forged source ip:port (required)")
	dstS := fs.String("dst", "", "destination IPv4 address (required)")
	portsS := fs.String("ports", "32768-60999", "destination ports: list and ranges a-b")
	payloadS := fs.String("payload", "", "payload: text:... ({src} {sport} {dport} {n}), hex:... or b64:... (required)")
	rate := fs.Float64("rate", 0, "datagrams per second (0: as fast as possible)")
	rounds := fs.Int("rounds", 1, "passes over the port range")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	src, err := parseAddrPort("src", *srcS)
	if err != nil {
		return usageError{err}
	}
	dst, err := netip.ParseAddr(*dstS)
	if err != nil || !dst.Is4() {
		return usageError{fmt.Errorf("-dst %q: want an IPv4 address", *dstS)}
	}
	ports, err := parsePorts("ports", *portsS)
	if err != nil {
		return usageError{err}
	}
	tmpl, err := compileTemplate("payload", *payloadS)
	if err != nil {
		return usageError{err}
	}
	if *rounds < 1 || *rate < 0 {
		return usageError{fmt.Errorf("-rounds %d must be >= 1 and -rate %g >= 0", *rounds, *rate)}
	}
	r, err := newRawSender()
	if err != nil {
		return err
	}
	defer r.Close()
	ready("spray", map[string]any{"ports": ports.n})
	start := time.Now()
	p := pacer{start, *rate}
	var i int64
	buf := make([]byte, 0, 1500)
	s := &summary{Mode: "spray"}
loop:
	for range *rounds {
		for j := range ports.n {
			if !p.wait(ctx, i) {
				break loop
			}
			dp := uint16(ports.at(j))
			buf = tmpl.expand(buf[:0], fields{n: uint64(i), ip: src.Addr(), port: uint32(src.Port()), src: src, dport: dp})
			_ = r.send(src, netip.AddrPortFrom(dst, dp), buf)
			i++
		}
	}
	s.finish(start, r)
	return nil
}
