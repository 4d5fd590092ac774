package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/net/ipv4"
	"golang.org/x/time/rate"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// Defaults applied when the corresponding Options field is zero, and the
// limits New enforces.
const (
	DefaultMaxDatagram = 1024
	DefaultRecvBuffer  = 8 << 20
	DefaultMaxTokenAge = 60 * time.Second
	DefaultClockSkew   = 30 * time.Second
	// MaxScanHosts bounds the hosts of all ScanCIDRs together.
	MaxScanHosts = 65536
	// maxUDPPayload is the largest IPv4 UDP payload.
	maxUDPPayload = 65507
	// maxPolicyNotes bounds the (payload, source) pairs a Client remembers
	// having logged an address-policy substitution for.
	maxPolicyNotes = 4096
)

// DefaultOptions returns the upstream client's defaults (port 9999,
// DISCOVER_SERVER, SERVER_IP:, 5 s, 3 retries, subnet scan on, default port
// 8000) plus this package's bounds: address policy auto, 1000 scan probes/s,
// 100,000 servers, 1024-byte datagrams, an 8 MiB receive buffer, tokens at
// most 60 s old with 30 s of clock skew.
func DefaultOptions() Options {
	return Options{
		Port:        9999,
		Message:     []byte("DISCOVER_SERVER"),
		Prefix:      []byte("SERVER_IP:"),
		Timeout:     5 * time.Second,
		Retries:     3,
		DefaultPort: 8000,
		AddressFrom: AddressAuto,
		SubnetScan:  true,
		ScanRate:    1000,
		MaxReplies:  100_000,
		MaxDatagram: DefaultMaxDatagram,
		RecvBuffer:  DefaultRecvBuffer,
		MaxTokenAge: DefaultMaxTokenAge,
		ClockSkew:   DefaultClockSkew,
	}
}

// Client runs discovery rounds. It is safe for concurrent use, though rounds
// are normally run one after another; each round uses its own socket.
type Client struct {
	opts   Options // validated, defaults filled in
	lister iface.Lister
	log    zerolog.Logger
	clock  func() time.Time

	mu          sync.Mutex
	policyNotes map[[2]netip.Addr]struct{} // (payload, source) pairs already logged
	diagnosed   bool                       // segmented-network warning given

	// sendHook, when set (tests), replaces the socket write of every probe.
	sendHook func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error
}

// New validates opts, fills in the defaults of zero MaxDatagram,
// RecvBuffer, MaxTokenAge and ClockSkew, and returns a Client listing
// interfaces with lister and stamping times with clock (time.Now if nil).
// All problems are reported at once (errors.Join), each naming its config
// key and value, e.g. "timeout: must be > 0, got -1s".
func New(opts Options, lister iface.Lister, log zerolog.Logger, clock func() time.Time) (*Client, error) {
	if opts.MaxDatagram == 0 {
		opts.MaxDatagram = DefaultMaxDatagram
	}
	if opts.RecvBuffer == 0 {
		opts.RecvBuffer = DefaultRecvBuffer
	}
	if opts.MaxTokenAge == 0 {
		opts.MaxTokenAge = DefaultMaxTokenAge
	}
	if opts.ClockSkew == 0 {
		opts.ClockSkew = DefaultClockSkew
	}
	if err := validate(opts, lister); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = time.Now
	}
	opts.Message = slices.Clone(opts.Message)
	opts.Prefix = slices.Clone(opts.Prefix)
	opts.ScanCIDRs = slices.Clone(opts.ScanCIDRs)
	opts.Whitelist = slices.Clone(opts.Whitelist)
	opts.Blacklist = slices.Clone(opts.Blacklist)
	return &Client{opts: opts, lister: lister, log: log, clock: clock}, nil
}

func validate(o Options, lister iface.Lister) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if lister == nil {
		bad("lister", "must not be nil")
	}
	if o.Port == 0 {
		bad("discovery_port", "must be 1..65535, got 0")
	}
	switch {
	case len(o.Message) == 0:
		bad("discovery_message", "must not be empty")
	case o.Key == nil && len(o.Message) > maxUDPPayload:
		bad("discovery_message", "must be at most %d bytes, got %d", maxUDPPayload, len(o.Message))
	case o.Key != nil && fernetTextLen(len(o.Message)) > maxUDPPayload:
		bad("discovery_message", "its Fernet token must fit one datagram (%d bytes), got a %d-byte message", maxUDPPayload, len(o.Message))
	}
	if len(o.Prefix) == 0 {
		bad("response_prefix", "must not be empty")
	}
	if o.Timeout <= 0 {
		bad("timeout", "must be > 0, got %s", o.Timeout)
	}
	if o.Retries < 0 {
		bad("retries", "must be >= 0, got %d", o.Retries)
	}
	if o.DefaultPort == 0 {
		bad("default_port", "must be 1..65535, got 0")
	}
	switch o.AddressFrom {
	case AddressAuto, AddressPayload, AddressSource:
	default:
		bad("address_from", "must be auto, payload or source, got %q", string(o.AddressFrom))
	}
	if o.Settle < 0 {
		bad("settle", "must be >= 0, got %s", o.Settle)
	}
	var total uint64
	for _, p := range o.ScanCIDRs {
		if !p.IsValid() || !p.Addr().Is4() {
			bad("scan_cidrs", "%s is not an IPv4 network", p)
			continue
		}
		n := cidr.HostCount(p)
		total += n
		if n > MaxScanHosts {
			bad("scan_cidrs", "%s has %d hosts, more than the limit of %d per round", p, n, MaxScanHosts)
		}
	}
	if total > MaxScanHosts && len(o.ScanCIDRs) > 1 {
		bad("scan_cidrs", "%d hosts in %d networks, more than the limit of %d per round", total, len(o.ScanCIDRs), MaxScanHosts)
	}
	if o.SubnetScan && len(o.ScanCIDRs) > 0 && o.ScanRate <= 0 {
		bad("scan_rate", "must be > 0 when scanning, got %d", o.ScanRate)
	}
	if o.MaxReplies <= 0 {
		bad("max_replies", "must be > 0, got %d", o.MaxReplies)
	}
	if o.MaxDatagram < 0 || o.MaxDatagram > maxUDPPayload {
		bad("max_datagram", "must be 1..%d, got %d", maxUDPPayload, o.MaxDatagram)
	}
	if o.RecvBuffer < 0 {
		bad("recv_buffer", "must be >= 0, got %d", o.RecvBuffer)
	}
	if o.MaxTokenAge < 0 {
		bad("max_token_age", "must be >= 0, got %s", o.MaxTokenAge)
	}
	if o.ClockSkew < 0 {
		bad("clock_skew", "must be >= 0, got %s", o.ClockSkew)
	}
	return errors.Join(errs...)
}

// fernetTextLen is the length of the token text for an n-byte message.
func fernetTextLen(n int) int {
	raw := 1 + 8 + 16 + (n/16+1)*16 + 32
	return (raw + 2) / 3 * 4
}

// Options returns the validated options with defaults filled in.
func (c *Client) Options() Options { return c.opts }

// Selected returns the interfaces a round would probe: the lister's
// interfaces filtered by iface.Select with the whitelist and blacklist. None
// is ErrNoInterfaces, wrapped with what was listed and the filters.
func (c *Client) Selected() ([]iface.Interface, error) {
	_, sel, err := c.selected()
	return sel, err
}

func (c *Client) selected() (all, sel []iface.Interface, err error) {
	all, err = c.lister.Interfaces()
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces: %w", err)
	}
	sel = iface.Select(all, c.opts.Whitelist, c.opts.Blacklist)
	if len(sel) == 0 {
		return all, nil, fmt.Errorf("%w: listed [%s], whitelist %q, blacklist %q",
			ErrNoInterfaces, describe(all), c.opts.Whitelist, c.opts.Blacklist)
	}
	return all, sel, nil
}

// describe lists interfaces for an error message: name, address and why
// selection skips it.
func describe(all []iface.Interface) string {
	parts := make([]string, 0, len(all))
	for _, i := range all {
		s := i.Name + " " + i.Addr.String()
		switch {
		case !i.Up:
			s += " (down)"
		case i.Loopback:
			s += " (loopback)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// Round runs one discovery round. See the package documentation for the
// timing model. The round ends at the earlier of ctx's deadline and
// Options.Timeout, at the first valid reply with Options.One, or once
// Options.Settle has passed without a new server after the last scheduled
// probe went out. A round that merely finds nothing is not an error.
//
// Errors: ErrNoInterfaces and ErrNoProbeSent (wrapped) are failed rounds;
// cancellation of ctx returns what was found so far with ctx's error; socket
// failures are returned wrapped. The Result is meaningful with every error
// except a failed listing.
func (c *Client) Round(ctx context.Context) (Result, error) {
	started := c.clock()
	begin := time.Now()
	all, sel, err := c.selected()
	res := Result{Interfaces: sel, Started: started}
	if err != nil {
		return res, err
	}
	deadline := begin.Add(c.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	conn, granted, err := listenProbe(rctx, c.opts.RecvBuffer)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	res.RecvBuffer = granted
	c.log.Debug().Int("requested", c.opts.RecvBuffer).Int("granted", granted).Msg("receive buffer")

	r := newRound(c, conn, all, sel, begin, deadline)
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagInterface, true); err != nil {
		c.log.Debug().Err(err).Msg("no IP_PKTINFO: ingress interface from source address only")
	}

	if err := r.firstBurst(); err != nil {
		res.Stats = r.stats()
		res.Duration = c.clock().Sub(started)
		return res, err
	}

	stop := context.AfterFunc(rctx, r.kick)
	defer stop()
	sendCtx, stopSending := context.WithCancel(rctx)
	var senders sync.WaitGroup
	senders.Go(func() { r.sendRetries(sendCtx) })
	if c.opts.SubnetScan && len(c.opts.ScanCIDRs) > 0 {
		senders.Go(func() { r.scan(sendCtx) })
	}
	go func() {
		senders.Wait()
		r.sendsDoneAt.Store(time.Now().UnixNano())
		r.kick()
	}()

	rerr := r.receive(rctx)
	stopSending()
	senders.Wait()

	res.Servers = r.servers()
	res.Stats = r.stats()
	res.Duration = c.clock().Sub(started)
	if len(res.Servers) == 0 && rerr == nil {
		c.diagnose(sel)
	}
	if rerr == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		rerr = fmt.Errorf("discovery round: %w", ctx.Err())
	}
	return res, rerr
}

// round is the state of one Round: its socket, its senders' counters (atomic:
// written by the sender goroutines) and its receiver's state (owned by the
// receiving goroutine).
type round struct {
	c        *Client
	conn     *net.UDPConn
	sel      []iface.Interface
	begin    time.Time
	deadline time.Time

	own        map[netip.Addr]struct{} // our own addresses: never scanned
	broadcasts []netip.Addr            // selected broadcasts, for AddressAuto
	ifByIndex  map[int]string
	dests      []probeDest

	probesSent, sendErrors, scanTargets atomic.Int64
	sendsDoneAt                         atomic.Int64 // unix nanos; 0 while sending
	kicks                               atomic.Uint64

	// receiver-owned. Kept servers are compact pointer-free records plus
	// a byte arena of their payloads, so ingesting thousands of new servers
	// neither grows pointerful slices nor gives the GC anything to scan;
	// the Servers are built once, at the end of the round.
	seen    map[uint64]struct{} // endpointKey of kept servers
	kept    []keptReply
	arena   []byte
	lastNew time.Time
	st      Stats
}

// keptReply is a kept server before it becomes a Server.
type keptReply struct {
	ip, payloadIP, src [4]byte
	port, srcPort      uint16
	hasPort, fromSrc   bool
	ifindex            int32
	rawOff, rawLen     uint32
	received           int64 // clock, Unix nanoseconds
}

// endpointKey packs an IPv4 endpoint into a map key without pointers.
func endpointKey(ip [4]byte, port uint16) uint64 {
	return uint64(ip[0])<<40 | uint64(ip[1])<<32 | uint64(ip[2])<<24 | uint64(ip[3])<<16 | uint64(port)
}

// probeDest is one broadcast destination and the interfaces it serves.
type probeDest struct {
	addr  netip.AddrPort
	names string
}

func newRound(c *Client, conn *net.UDPConn, all, sel []iface.Interface, begin, deadline time.Time) *round {
	r := &round{
		c: c, conn: conn, sel: sel, begin: begin, deadline: deadline,
		own:       make(map[netip.Addr]struct{}, len(all)),
		ifByIndex: make(map[int]string, len(all)),
		seen:      make(map[uint64]struct{}, min(c.opts.MaxReplies, 1024)),
	}
	for _, i := range all {
		r.own[i.Addr] = struct{}{}
		if i.Index > 0 {
			r.ifByIndex[i.Index] = i.Name
		}
	}
	for _, i := range sel {
		b := i.Broadcast
		if !b.Is4() {
			b = cidr.Broadcast(i.Prefix)
		}
		r.broadcasts = append(r.broadcasts, b)
		dst := netip.AddrPortFrom(b, c.opts.Port)
		if k := slices.IndexFunc(r.dests, func(d probeDest) bool { return d.addr == dst }); k >= 0 {
			r.dests[k].names += "," + i.Name
			continue
		}
		r.dests = append(r.dests, probeDest{addr: dst, names: i.Name})
	}
	return r
}

// kick makes a blocked read return at once so the receiver re-evaluates its
// deadline (senders finished, ctx cancelled).
func (r *round) kick() {
	r.kicks.Add(1)
	_ = r.conn.SetReadDeadline(time.Unix(1, 0))
}

// probe sends one probe (a fresh token in encrypted mode) to dst.
func (r *round) probe(dst netip.AddrPort) error {
	msg := r.c.opts.Message
	if r.c.opts.Key != nil {
		msg = r.c.opts.Key.Seal(msg, r.c.clock())
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
// Timeout*i/(Retries+1) after the round began.
func (r *round) sendRetries(ctx context.Context) {
	n := r.c.opts.Retries
	for i := 1; i <= n; i++ {
		at := r.begin.Add(r.c.opts.Timeout * time.Duration(i) / time.Duration(n+1))
		t := time.NewTimer(time.Until(at))
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
// addresses, paced at ScanRate per second.
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
			now := time.Now()
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
					r.c.log.Debug().Dur("settle", o.Settle).Msg("round settled")
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

// ingest handles one datagram and reports whether it added a server.
func (r *round) ingest(b []byte, src netip.AddrPort, ifindex int) bool {
	o := &r.c.opts
	r.st.Replies++
	if len(b) > o.MaxDatagram {
		r.st.Oversized++
		return false
	}
	plain := b
	if o.Key != nil {
		pt, err := o.Key.Open(b, r.c.clock(), o.MaxTokenAge, o.ClockSkew)
		if err != nil {
			r.st.Rejected++
			r.c.log.Debug().Stringer("from", src).Err(err).Msg("reply rejected")
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
	r.lastNew = time.Now()
	r.kept = append(r.kept, keptReply{
		ip: ip4, payloadIP: payloadIP.As4(), src: srcIP.As4(),
		port: port, srcPort: src.Port(),
		hasPort: hasPort, fromSrc: from == AddressSource,
		ifindex:  int32(ifindex),
		rawOff:   uint32(len(r.arena)),
		rawLen:   uint32(len(plain)),
		received: r.c.clock().UnixNano(),
	})
	r.arena = append(r.arena, plain...)
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
		raw := text[k.rawOff : k.rawOff+k.rawLen]
		if !utf8.ValidString(raw) {
			raw = RawString([]byte(raw))
		}
		src := netip.AddrFrom4(k.src)
		from := AddressPayload
		if k.fromSrc {
			from = AddressSource
		}
		out[i] = Server{
			IP:            netip.AddrFrom4(k.ip),
			Port:          k.port,
			PayloadIP:     netip.AddrFrom4(k.payloadIP),
			PortFromReply: k.hasPort,
			Source:        netip.AddrPortFrom(src, k.srcPort),
			Interface:     r.ingressName(int(k.ifindex), src),
			Raw:           raw,
			AddressFrom:   from,
			Received:      time.Unix(0, k.received),
		}
	}
	return out
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

// ingressName names the interface a reply arrived on: by IP_PKTINFO index
// when known, else the first selected interface whose network holds src.
func (r *round) ingressName(index int, src netip.Addr) string {
	if name, ok := r.ifByIndex[index]; ok && index > 0 {
		return name
	}
	for _, i := range r.sel {
		if i.Prefix.Contains(src) {
			return i.Name
		}
	}
	return ""
}

func (r *round) stats() Stats {
	s := r.st
	s.ProbesSent = int(r.probesSent.Load())
	s.SendErrors = int(r.sendErrors.Load())
	s.ScanTargets = int(r.scanTargets.Load())
	return s
}

// notePolicy logs, once per (payload, source) pair per Client, that
// AddressAuto registered the source address instead of the payload's.
func (c *Client) notePolicy(payload, source netip.Addr, reason string) {
	c.mu.Lock()
	k := [2]netip.Addr{payload, source}
	_, done := c.policyNotes[k]
	if !done && len(c.policyNotes) < maxPolicyNotes {
		if c.policyNotes == nil {
			c.policyNotes = make(map[[2]netip.Addr]struct{})
		}
		c.policyNotes[k] = struct{}{}
	} else {
		done = true
	}
	c.mu.Unlock()
	if !done {
		c.log.Info().Stringer("payload_ip", payload).Stringer("source_ip", source).Str("reason", reason).
			Msg("reply advertises an address that cannot be registered; using the packet's source address")
	}
}

// diagnose logs the segmented-network diagnosis of the selected interfaces,
// once per Client, when a round found nothing.
func (c *Client) diagnose(sel []iface.Interface) {
	c.mu.Lock()
	done := c.diagnosed
	c.diagnosed = true
	c.mu.Unlock()
	if done {
		return
	}
	for _, s := range iface.Diagnose(sel) {
		c.log.Warn().Str("interface", s.Interface).Stringer("ip", s.IP).Stringer("network", s.Network).
			Int("prefix", s.Prefix).Uint64("total_hosts", s.TotalHosts).
			Stringer("calculated_broadcast", s.CalculatedBroadcast).
			Stringer("likely_broadcast_domain", s.LikelyBroadcastDomain).
			Bool("is_corporate", s.IsCorporate).Int("segments", s.Segments).
			Str("advice", s.Advice()).
			Msg("no servers found; this network is probably segmented and broadcast may not reach them")
	}
}
