package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

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
	return c.round(ctx, nil)
}

// RoundNotify runs one round like Round and also calls onServer with each
// server as its first valid reply of the round is kept, before the round
// ends: the Server it is given is the one Result.Servers will hold (the
// same fields, Received included). Duplicates (a server already kept this
// round, by (IP, Port)) and servers beyond MaxReplies are not reported, so
// onServer is called at most once per server and round, in arrival order.
//
// onServer runs on the goroutine that reads the replies, before the next
// datagram is read: it must return within microseconds (hand the server to
// another goroutine; a burst of thousands of replies queues in the socket
// meanwhile) and must not call the Client. A nil onServer makes RoundNotify
// Round.
func (c *Client) RoundNotify(ctx context.Context, onServer func(Server)) (Result, error) {
	return c.round(ctx, onServer)
}

func (c *Client) round(ctx context.Context, onServer func(Server)) (Result, error) {
	started := c.clock.Now()
	begin := socketNow()
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
	c.log.log(slog.LevelDebug, "receive buffer", slog.Int("requested", c.opts.RecvBuffer), slog.Int("granted", granted))

	r := newRound(c, conn, all, sel, begin, deadline)
	r.onServer = onServer
	// Sends never block past the deadline: probes to unresolved on-link
	// hosts wait in the kernel for ARP and fill the socket's send buffer,
	// and a full buffer would block the next write until ARP gives up (3 s).
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return res, fmt.Errorf("set write deadline: %w", err)
	}
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagInterface, true); err != nil {
		c.log.log(slog.LevelDebug, "no IP_PKTINFO: ingress interface from source address only", slog.Any("error", err))
	}

	scanning := c.opts.SubnetScan && len(c.opts.ScanCIDRs) > 0
	var cur scanCursor
	if scanning {
		cur, r.keepAlive = c.scanStart(r)
		r.onLinkRate = c.neigh().OnLinkRate()
		r.adm.scanning(cur, r.keepAlive)
	}
	// A first burst that could not be sent at all fails the round only
	// when no retry follows: a link that comes up, or a route that
	// appears, within the round still lets a retry out.
	burstErr := r.firstBurst()
	if burstErr != nil && (c.opts.Retries == 0 || !r.anyBroadcast()) {
		res.Stats = r.stats()
		res.Duration = c.clock.Now().Sub(started)
		return res, burstErr
	}

	stop := context.AfterFunc(rctx, r.kick)
	defer stop()
	sendCtx, stopSending := context.WithCancel(rctx)
	var senders sync.WaitGroup
	senders.Go(func() { r.sendRetries(sendCtx) })
	if scanning {
		senders.Go(func() { r.scan(sendCtx, &cur) })
	}
	go func() {
		senders.Wait()
		done := r.settleClk.Now()
		r.sendsDoneAt.Store(&done)
		r.kick()
	}()

	rerr := r.receive(rctx)
	stopSending()
	senders.Wait()
	if scanning {
		c.scanDone(cur)
	}

	res.Servers = r.servers()
	if n, ok := socketDrops(conn); ok {
		r.st.KernelDrops = n
	}
	res.Stats = r.stats()
	c.noteRefusals(r.notes, res.Stats.Refused)
	if scanning {
		res.Stats.ScanHosts = int(cur.total)
		res.Stats.ScanProgress = cur.progress()
		res.Stats.ScanRate = c.opts.ScanRate
		if containsAny(r.onLink, c.opts.ScanCIDRs) {
			res.Stats.ScanOnLinkRate = r.onLinkRate
		}
	}
	res.Duration = c.clock.Now().Sub(started)
	if len(res.Servers) == 0 && rerr == nil {
		c.diagnose(sel)
	}
	if rerr == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		rerr = fmt.Errorf("discovery round: %w", ctx.Err())
	}
	if rerr == nil && burstErr != nil && r.broadcastsSent.Load() == 0 {
		rerr = fmt.Errorf("%w (first burst and %d retries)", burstErr, c.opts.Retries)
	}
	return res, rerr
}

// socketNow reads the real clock, for every time measured against the
// socket's read deadline: the round's begin and deadline (and ctx's) and
// the retry schedule. The kernel measures socket deadlines on the real
// clock, so these never read the Client's clock, which only stamps results
// and judges token age. Settle is timed on the round's settle clock (the
// real clock too, unless a test set Client.settleClock).
func socketNow() time.Time { return time.Now() }

// round is the state of one Round: its socket, its senders' counters (atomic:
// written by the sender goroutines) and its receiver's state (owned by the
// receiving goroutine).
type round struct {
	c        *Client
	conn     *net.UDPConn
	sel      []iface.Interface
	begin    time.Time // socketNow at the start
	deadline time.Time // real clock: the socket's read deadline

	own        map[netip.Addr]struct{} // our own addresses: never scanned
	broadcasts []netip.Addr            // selected broadcasts, for AddressAuto
	ifByIndex  map[int]iface.Interface
	dests      []probeDest

	// scan: the pacing clock (real time, like the deadline), the networks
	// whose hosts are resolved with ARP and their rate, and this round's
	// keep-alive targets.
	clk        clock.Clock
	onLink     []netip.Prefix
	onLinkRate float64
	keepAlive  []netip.Addr

	probesSent, sendErrors, scanTargets atomic.Int64
	keepAlives, scanCovered, scanCycles atomic.Int64
	scanFirst, scanLast                 atomic.Int64 // clk, Unix nanos; 0 before the first scan probe
	kicks                               atomic.Uint64
	broadcastsSent                      atomic.Int64 // broadcast probes sent, first burst and retries

	// settleClk times Settle's quiet period, which starts when sending is
	// done (sendsDoneAt, on settleClk; nil while sending) or at lastNew,
	// whichever is later (receive).
	settleClk   clock.Clock
	sendsDoneAt atomic.Pointer[time.Time]

	// adm is the admission policy's view of this round; notBefore the
	// oldest stamp an encrypted reply may carry (the round's start on the
	// Client's clock, in the token's whole seconds, less ClockSkew).
	adm       *admission
	notBefore time.Time

	// receiver-owned. Kept servers are compact pointer-free records plus
	// a byte arena of their payloads, so ingesting thousands of new servers
	// neither grows pointerful slices nor gives the GC anything to scan;
	// the Servers are built once, at the end of the round.
	seen    map[uint64]struct{} // endpointKey of kept servers
	kept    []keptReply
	arena   []byte
	lastNew time.Time // settleClk when the last new server was kept
	st      Stats
	// perSource counts the new servers each source introduced; refused
	// the refusals by reason; notes the (source, reason) pairs refused,
	// at most maxRoundNotes, for the Client's log.
	perSource map[[4]byte]int
	refused   RefusalCounts
	notes     map[refusalNote]struct{}
	// onServer, when set, is told of each kept server as it is kept
	// (RoundNotify).
	onServer func(Server)
}

// keptReply is a kept server before it becomes a Server.
type keptReply struct {
	ip, payloadIP, src [4]byte
	port, srcPort      uint16
	hasPort, fromSrc   bool
	ifindex            int32
	rawOff, rawLen     uint32
	received           int64 // Client's clock at ingest, Unix nanoseconds
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
		ifByIndex: make(map[int]iface.Interface, len(all)),
		seen:      make(map[uint64]struct{}, min(c.opts.MaxReplies, 1024)),
		clk:       clock.Real(),
		settleClk: clock.OrReal(c.settleClock),
		onLink:    onLinkPrefixes(all),
		adm:       newAdmission(&c.opts, all, sel),
		notBefore: c.clock.Now().Truncate(time.Second).Add(-c.opts.ClockSkew),
		perSource: map[[4]byte]int{},
		notes:     map[refusalNote]struct{}{},
	}
	for _, i := range all {
		r.own[i.Addr] = struct{}{}
		if i.Index > 0 {
			r.ifByIndex[i.Index] = i
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

func (r *round) stats() Stats {
	s := r.st
	s.ProbesSent = int(r.probesSent.Load())
	s.SendErrors = int(r.sendErrors.Load())
	s.ScanTargets = int(r.scanTargets.Load())
	s.ScanKeepAlives = int(r.keepAlives.Load())
	s.ScanCovered = int(r.scanCovered.Load())
	s.ScanCycles = int(r.scanCycles.Load())
	if first, last := r.scanFirst.Load(), r.scanLast.Load(); first != 0 && last > first {
		s.ScanSeconds = float64(last-first) / 1e9
	}
	s.Refused = r.refused
	return s
}
