package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// Relay answers discovery probes on chosen interfaces with a set of target
// servers provided from outside. New builds one; Serve runs it on a Conn.
// The rules it applies are in the package doc.
type Relay struct {
	cfg     Config
	gate    *discover.ProbeGate
	targets Targets
	lister  iface.Lister
	clk     clock.Clock
	log     zerolog.Logger

	view    atomic.Pointer[view]
	queue   *queue // nil when Delay is 0
	serving atomic.Bool

	// Used by the reading goroutine only.
	cursor int      // where the next probe's walk of the target set starts
	picked []Target // the current probe's targets
	outBuf []byte   // the reply being written, when Delay is 0

	received, bytesIn, relayed    atomic.Uint64
	replies, bytesOut, sendErrors atomic.Uint64
	refreshErrors                 atomic.Uint64
	drops                         [numReasons]atomic.Uint64
}

// New returns a Relay for cfg, answering with the set of targets, on the
// interfaces lister lists (read when Serve starts, then every
// cfg.RefreshEvery). clk nil means the real clock; it stamps everything,
// the rate limits, the token ages and the delay among it.
func New(cfg Config, targets Targets, lister iface.Lister, clk clock.Clock, log zerolog.Logger) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if targets == nil || lister == nil {
		return nil, errors.New("relay: a Targets source and an interface lister are required")
	}
	cfg.Interfaces = slices.Clone(cfg.Interfaces)
	cfg.Message, cfg.Prefix = slices.Clone(cfg.Message), slices.Clone(cfg.Prefix)
	r := &Relay{
		cfg: cfg, targets: targets, lister: lister, clk: clock.OrReal(clk), log: log,
		picked: make([]Target, 0, cfg.MaxReplies),
	}
	gate, err := discover.NewProbeGate(discover.ProbeGateConfig{
		Message: cfg.Message, Key: cfg.Key, MaxTokenAge: cfg.MaxTokenAge, ClockSkew: cfg.ClockSkew,
		Rate: cfg.Rate, Burst: cfg.Burst, RatePerReply: true,
		GlobalRate: cfg.GlobalRate, GlobalBurst: cfg.GlobalBurst,
		Networks: r.hostNets,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r.gate = gate
	if cfg.Delay > 0 {
		r.queue = newQueue(cfg.QueueSize)
	}
	return r, nil
}

// hostNets are the host's networks of the current view (the gate's
// Networks).
func (r *Relay) hostNets() []netip.Prefix {
	if v := r.view.Load(); v != nil {
		return v.hostNets
	}
	return nil
}

// Serve answers probes read from conn until ctx is cancelled, then returns
// nil; replies still waiting for their delay are dropped, not sent. It lists the
// interfaces first and returns an error if that fails, or if reading
// fails. It does not close conn. A Relay serves one Conn at a time.
func (r *Relay) Serve(ctx context.Context, conn Conn) error {
	if !r.serving.CompareAndSwap(false, true) {
		return errors.New("relay: already serving")
	}
	defer r.serving.Store(false)
	if err := r.refresh(); err != nil {
		return err
	}
	b, _ := conn.(Binder)
	bound := r.bind(b, nil, true)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		if r.queue != nil {
			r.queue.clear() // a later Serve must not send them late
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { r.watchInterfaces(ctx, b, bound) })
	if r.queue != nil {
		wg.Go(func() { r.schedule(ctx, conn) })
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		d, err := conn.ReadDatagram(buf)
		if err != nil {
			// The only read deadline is the one set when ctx ends.
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: read probes: %w", err)
		}
		r.handle(conn, d)
	}
}

// handle applies the rules to one datagram and answers it or counts why
// not.
func (r *Relay) handle(conn Conn, d Datagram) {
	r.received.Add(1)
	r.bytesIn.Add(uint64(len(d.Payload)))
	v := r.view.Load()
	in, ok := v.relayed[d.IfIndex]
	if !ok || d.IfIndex <= 0 {
		r.drop(ReasonForeignInterface, d)
		return
	}
	now := r.clk.Now()
	if verdict, why := r.gate.Check(d.Payload, d.Source, now); verdict != discover.ProbeAdmitted {
		detail := ""
		if verdict == discover.ProbeSourceRefused {
			detail = why.String()
		}
		r.dropDetail(reasonOf(verdict), d, detail)
		return
	}
	src := d.Source.Addr().Unmap()
	if !cidr.AnyContains(in.nets, src) {
		r.drop(ReasonOffLink, d)
		return
	}
	if _, mine := v.own[src]; mine {
		r.drop(ReasonOwnAddress, d)
		return
	}
	set, age, ok := r.targets.Targets()
	if !ok {
		r.drop(ReasonNoTargets, d)
		return
	}
	if r.cfg.MaxTargetAge > 0 && age > r.cfg.MaxTargetAge {
		r.drop(ReasonStaleTargets, d)
		return
	}
	next := r.pick(set, in.nets)
	if len(r.picked) == 0 {
		r.drop(ReasonNoTargets, d)
		return
	}
	if r.queue != nil && !r.queue.room(len(r.picked)) {
		r.drop(ReasonQueueFull, d)
		return
	}
	if verdict := r.gate.Charge(src, len(r.picked), now); verdict != discover.ProbeAdmitted {
		r.drop(reasonOf(verdict), d)
		return
	}
	r.cursor = next
	to := netip.AddrPortFrom(src, d.Source.Port())
	if r.queue == nil {
		for _, t := range r.picked {
			r.outBuf = r.send(conn, r.outBuf, to, t)
		}
	} else if !r.queue.push(now.Add(r.cfg.Delay), to, r.picked) {
		r.drop(ReasonQueueFull, d) // not reached: only this goroutine pushes
		return
	}
	r.relayed.Add(1)
	if e := r.log.Debug(); e.Enabled() {
		e.Str("from", d.Source.String()).Str("interface", in.name).Int("replies", len(r.picked)).Msg("relay: probe answered")
	}
}

// pick fills r.picked with at most MaxReplies targets of set, leaving out
// invalid ones and those on nets (the receiving interface's networks),
// walking set as a ring from r.cursor; it returns where the walk of the
// next answered probe starts: just after the last target taken.
func (r *Relay) pick(set []Target, nets []netip.Prefix) int {
	r.picked = r.picked[:0]
	if len(set) == 0 {
		return 0
	}
	start := r.cursor % len(set)
	next := start
	for i := range len(set) {
		j := (start + i) % len(set)
		t := set[j]
		ip := t.Addr.Unmap()
		if !ip.Is4() || cidr.AnyContains(nets, ip) {
			continue
		}
		r.picked = append(r.picked, Target{Addr: ip, Port: t.Port})
		next = j + 1
		if len(r.picked) == r.cfg.MaxReplies {
			break
		}
	}
	return next
}

// send writes one reply, target t for the prober to, encoding it into buf
// (returned for reuse): Prefix + t, sealed under the key in encrypted mode.
func (r *Relay) send(conn Conn, buf []byte, to netip.AddrPort, t Target) []byte {
	buf = discover.AppendReply(buf[:0], r.cfg.Prefix, t.Addr, t.Port)
	out := buf
	if r.cfg.Key != nil {
		out = r.cfg.Key.Seal(buf, r.clk.Now())
	}
	n, err := conn.WriteTo(out, to)
	if err != nil {
		r.sendErrors.Add(1)
		if e := r.log.Debug(); e.Enabled() {
			e.Str("to", to.String()).Err(err).Msg("relay: reply not sent")
		}
		return buf
	}
	r.replies.Add(1)
	r.bytesOut.Add(uint64(n))
	return buf
}

// schedule sends the delayed replies when they are due, until ctx ends:
// the one goroutine that does, whatever the number waiting.
func (r *Relay) schedule(ctx context.Context, conn Conn) {
	batch := make([]pending, 0, r.cfg.QueueSize)
	var buf []byte
	for {
		var next time.Time
		var more bool
		batch, next, more = r.queue.popDue(r.clk.Now(), batch[:0])
		for _, p := range batch {
			buf = r.send(conn, buf, p.to, p.t)
		}
		if ctx.Err() != nil {
			return
		}
		if !more {
			select {
			case <-r.queue.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		t := r.clk.NewTimer(next.Sub(r.clk.Now()))
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// drop counts datagram d as refused for why.
func (r *Relay) drop(why Reason, d Datagram) { r.dropDetail(why, d, "") }

// dropDetail is drop with a detail for the debug log (which source
// refusal).
func (r *Relay) dropDetail(why Reason, d Datagram, detail string) {
	r.drops[why].Add(1)
	if e := r.log.Debug(); e.Enabled() {
		if detail != "" {
			e = e.Str("detail", detail)
		}
		e.Str("from", d.Source.String()).Int("ifindex", d.IfIndex).Str("reason", why.String()).Msg("relay: datagram not answered")
	}
}

// refresh re-reads the interfaces and stores the new view; it logs a change
// of the relay interfaces' networks.
func (r *Relay) refresh() error {
	all, err := r.lister.Interfaces()
	if err != nil {
		r.refreshErrors.Add(1)
		return fmt.Errorf("relay: list the interfaces %q: %w", r.cfg.Interfaces, err)
	}
	v := newView(all, r.cfg.Interfaces)
	old := r.view.Swap(v)
	now := v.describe()
	if old != nil && slices.Equal(old.describe(), now) && slices.Equal(old.missing, v.missing) {
		return nil
	}
	ev := r.log.Info()
	if len(v.missing) > 0 {
		ev = r.log.Warn().Strs("missing", v.missing)
	}
	ev.Strs("networks", now).Msg("relay: answering on these interfaces")
	return nil
}

// bind hands b (nil: the Conn listens on its own) the current view's
// broadcast addresses, the first time or when they differ from was, the
// last handed over, and returns them; what b cannot listen on is logged
// and counted as an interface error.
func (r *Relay) bind(b Binder, was []netip.Addr, first bool) []netip.Addr {
	if b == nil {
		return nil
	}
	want := r.view.Load().broadcasts()
	if !first && slices.Equal(was, want) {
		return was
	}
	if err := b.Bind(want); err != nil {
		r.refreshErrors.Add(1)
		r.log.Warn().Err(err).Msg("relay: cannot listen for probes on a relay network's broadcast address: its probes go unanswered (255.255.255.255 still listened on); tried again at the next reading of the interfaces")
		return nil
	}
	return want
}

// watchInterfaces refreshes the view every RefreshEvery until ctx ends,
// keeping the last view when listing fails (logged at the first failure
// of a run and at the recovery), and keeps b listening on the view's
// broadcast addresses (bound: those it was given last).
func (r *Relay) watchInterfaces(ctx context.Context, b Binder, bound []netip.Addr) {
	failing := false
	for clock.Sleep(r.clk, r.cfg.RefreshEvery, ctx.Done()) {
		if err := r.refresh(); err != nil {
			if !failing {
				r.log.Warn().Err(err).Msg("relay: interfaces not re-read: keeping the last networks listed")
			}
			failing = true
			continue
		}
		if failing {
			r.log.Info().Msg("relay: interfaces listed again")
			failing = false
		}
		bound = r.bind(b, bound, false)
	}
}
