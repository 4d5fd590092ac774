package discover

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
)

// This file is the admission of probes, the server side's counterpart of
// admit.go: what a Responder (and the relay, internal/relay) checks before
// a probe costs a reply. One ProbeGate holds the payload and key check,
// the source-address refusals and the rate limits, so every answering
// side applies the same rules and the same limiter.

// ProbeVerdict is a ProbeGate's answer for one probe: admitted, or why
// not. Its values are a small fixed set, usable as metric labels.
type ProbeVerdict uint8

// The verdicts, in the order the gate reaches them.
const (
	// ProbeAdmitted: answer the probe.
	ProbeAdmitted ProbeVerdict = iota
	// ProbeBadPayload: plaintext mode, the payload is not Message byte for
	// byte; encrypted mode, it is not shaped like a Fernet token (a
	// plaintext probe among others), or it is an authentic token whose
	// plaintext is not Message.
	ProbeBadPayload
	// ProbeWrongKey: encrypted mode, a token-shaped payload whose signature
	// or padding does not check under the key (another key, or forged).
	ProbeWrongKey
	// ProbeTokenAge: encrypted mode, an authentic token stamped more than
	// MaxTokenAge+ClockSkew ago (a replay) or more than ClockSkew ahead.
	ProbeTokenAge
	// ProbeSourceRefused: the source address is one no host sends from or
	// one that reaches many hosts; the ProbeRefusal says which.
	ProbeSourceRefused
	// ProbeOverRate: the source is over its per-source Rate.
	ProbeOverRate
	// ProbeOverGlobalRate: the replies would exceed the GlobalRate budget
	// over all sources.
	ProbeOverGlobalRate

	numProbeVerdicts
)

var probeVerdictNames = [numProbeVerdicts]string{
	ProbeAdmitted:       "admitted",
	ProbeBadPayload:     "bad_payload",
	ProbeWrongKey:       "wrong_key",
	ProbeTokenAge:       "token_age",
	ProbeSourceRefused:  "source",
	ProbeOverRate:       "rate",
	ProbeOverGlobalRate: "global_rate",
}

// String returns the verdict's name ("wrong_key"), its metric label.
func (v ProbeVerdict) String() string {
	if v < numProbeVerdicts {
		return probeVerdictNames[v]
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// ProbeRefusal is why a valid probe's source address gets no reply.
type ProbeRefusal int

// The refusals, in the order checkSource tests them.
const (
	// RefusedNotIPv4: the source is not an IPv4 UDP address.
	RefusedNotIPv4 ProbeRefusal = iota
	// RefusedThisNetwork: 0.0.0.0/8, "this host on this network", never a
	// unicast source.
	RefusedThisNetwork
	// RefusedLimitedBroadcast: 255.255.255.255, every host of the LAN.
	RefusedLimitedBroadcast
	// RefusedMulticast: 224.0.0.0/4.
	RefusedMulticast
	// RefusedReserved: 240.0.0.0/4 other than 255.255.255.255.
	RefusedReserved
	// RefusedNetworkAddress: the network address of one of Networks.
	RefusedNetworkAddress
	// RefusedNetworkBroadcast: the broadcast address of one of Networks.
	RefusedNetworkBroadcast
	// RefusedPortZero: source port 0, which no socket sends from.
	RefusedPortZero
	numProbeRefusals
)

// ProbeRefusals returns every ProbeRefusal, in order.
func ProbeRefusals() []ProbeRefusal {
	out := make([]ProbeRefusal, numProbeRefusals)
	for i := range out {
		out[i] = ProbeRefusal(i)
	}
	return out
}

// String returns the refusal's name as logs and counters spell it.
func (w ProbeRefusal) String() string {
	switch w {
	case RefusedNotIPv4:
		return "not_ipv4"
	case RefusedThisNetwork:
		return "this_network"
	case RefusedLimitedBroadcast:
		return "limited_broadcast"
	case RefusedMulticast:
		return "multicast"
	case RefusedReserved:
		return "reserved"
	case RefusedNetworkAddress:
		return "network_address"
	case RefusedNetworkBroadcast:
		return "network_broadcast"
	case RefusedPortZero:
		return "port_zero"
	}
	return "refusal(" + strconv.Itoa(int(w)) + ")"
}

// checkSource returns why src gets no reply, and false when it may get one.
// Loopback sources are answered: Linux drops a packet from 127.0.0.0/8 that
// arrives on any other interface (a martian), so such a probe comes from
// this host, and the reply stays on it.
func checkSource(src netip.AddrPort, networks []netip.Prefix) (ProbeRefusal, bool) {
	ip := src.Addr().Unmap()
	if !ip.Is4() {
		return RefusedNotIPv4, true
	}
	b := ip.As4()
	switch {
	case b[0] == 0:
		return RefusedThisNetwork, true
	case b == [4]byte{255, 255, 255, 255}:
		return RefusedLimitedBroadcast, true
	case b[0] >= 240:
		return RefusedReserved, true
	case b[0] >= 224:
		return RefusedMulticast, true
	}
	for _, p := range networks {
		// A /31 or /32 has neither network nor broadcast address (RFC 3021).
		if !p.IsValid() || !p.Addr().Is4() || p.Bits() > 30 {
			continue
		}
		switch ip {
		case p.Masked().Addr():
			return RefusedNetworkAddress, true
		case cidr.Broadcast(p):
			return RefusedNetworkBroadcast, true
		}
	}
	if src.Port() == 0 {
		return RefusedPortZero, true
	}
	return 0, false
}

// ProbeGateConfig configures a ProbeGate.
type ProbeGateConfig struct {
	// Message is the probe payload answered (plaintext mode), or the
	// plaintext a probe token must hold (encrypted mode). Required.
	Message []byte
	// Key enables encrypted mode when non-nil.
	Key *Key
	// MaxTokenAge and ClockSkew bound probe token age; 0 means
	// DefaultMaxTokenAge and DefaultClockSkew.
	MaxTokenAge, ClockSkew time.Duration
	// Rate is how many tokens per second each source address gets (after
	// a burst of Burst, at least 1); 0 or less means no per-source limit.
	// A token is a probe, or a reply when RatePerReply is set.
	Rate         float64
	Burst        int
	RatePerReply bool
	// GlobalRate is how many replies per second all sources together get
	// (after a burst of GlobalBurst, which must then be at least 1); 0 or
	// less means no limit.
	GlobalRate  float64
	GlobalBurst int
	// Networks returns the host's own IPv4 networks (interface prefixes),
	// whose network and broadcast addresses are refused as sources. It is
	// called once for each probe whose payload passes, concurrently with
	// whatever refreshes it; nil means no networks.
	Networks func() []netip.Prefix
}

// maxLimiters bounds the per-source limiters kept: a flood from many
// (forged) sources empties the table instead of growing it.
const maxLimiters = 1 << 14

// ProbeGate decides, for each probe a server side receives, whether it is
// answered: Check tests the payload (and the key) and the source address,
// Charge takes the probe's cost from the per-source token bucket and the
// global budget, Admit does both. It counts nothing: its callers count
// the verdicts in their own terms. Safe for concurrent use.
//
// The per-source buckets are kept for at most 16,384 sources; when a flood
// from more (forged) sources fills the table, it is emptied and every
// source starts again from a full burst. The global budget bounds what
// such a flood makes the gate admit.
type ProbeGate struct {
	message      []byte
	key          *Key
	maxAge, skew time.Duration
	rate         float64
	burst        int
	perReply     bool
	networks     func() []netip.Prefix

	mu       sync.Mutex
	limiters map[netip.Addr]*rate.Limiter
	global   *rate.Limiter
}

// NewProbeGate returns a gate for c, or an error naming every setting that
// would make it refuse every probe.
func NewProbeGate(c ProbeGateConfig) (*ProbeGate, error) {
	var errs []error
	if len(c.Message) == 0 {
		errs = append(errs, errors.New("probe gate: message must not be empty"))
	}
	if c.GlobalRate > 0 && c.GlobalBurst < 1 {
		errs = append(errs, fmt.Errorf("probe gate: global burst %d with global rate %v: want >= 1, or no probe could be answered", c.GlobalBurst, c.GlobalRate))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	g := &ProbeGate{
		message: bytes.Clone(c.Message), key: c.Key,
		maxAge: c.MaxTokenAge, skew: c.ClockSkew,
		rate: c.Rate, burst: max(c.Burst, 1), perReply: c.RatePerReply,
		networks: c.Networks,
		limiters: map[netip.Addr]*rate.Limiter{},
	}
	if g.maxAge == 0 {
		g.maxAge = DefaultMaxTokenAge
	}
	if g.skew == 0 {
		g.skew = DefaultClockSkew
	}
	if c.GlobalRate > 0 {
		g.global = rate.NewLimiter(rate.Limit(c.GlobalRate), c.GlobalBurst)
	}
	return g, nil
}

// Admit is Check, then Charge for replies replies if the probe passed:
// the whole admission of one probe from src received at now.
func (g *ProbeGate) Admit(payload []byte, src netip.AddrPort, replies int, now time.Time) (ProbeVerdict, ProbeRefusal) {
	if v, why := g.Check(payload, src, now); v != ProbeAdmitted {
		return v, why
	}
	return g.Charge(src.Addr().Unmap(), replies, now), 0
}

// Check tests a probe from src received at now without charging for it:
// the payload (and in encrypted mode the token: key, age, plaintext), then
// the source address against the refusals of ProbeRefusal. The refusal is
// meaningful only with ProbeSourceRefused. Cheap checks come after the
// payload's on purpose: a datagram that is no probe is not a refused
// probe, whatever its source.
func (g *ProbeGate) Check(payload []byte, src netip.AddrPort, now time.Time) (ProbeVerdict, ProbeRefusal) {
	if v := g.checkPayload(payload, now); v != ProbeAdmitted {
		return v, 0
	}
	var nets []netip.Prefix
	if g.networks != nil {
		nets = g.networks()
	}
	if why, refused := checkSource(src, nets); refused {
		return ProbeSourceRefused, why
	}
	return ProbeAdmitted, 0
}

// checkPayload is Check's payload half.
func (g *ProbeGate) checkPayload(p []byte, now time.Time) ProbeVerdict {
	if g.key == nil {
		if !bytes.Equal(p, g.message) {
			return ProbeBadPayload
		}
		return ProbeAdmitted
	}
	if _, err := fernetHeader(trimASCIISpace(p)); err != nil {
		return ProbeBadPayload
	}
	pt, err := g.key.Open(p, now, g.maxAge, g.skew)
	switch {
	case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenFromFuture):
		return ProbeTokenAge
	case err != nil:
		return ProbeWrongKey
	case !bytes.Equal(pt, g.message):
		return ProbeBadPayload
	}
	return ProbeAdmitted
}

// Charge takes the cost of answering src with replies replies at now: one
// token of src's bucket (replies tokens with RatePerReply) and replies
// from the global budget. It takes nothing and says why when either
// cannot pay: src's bucket is looked at first, and its tokens are taken
// only once the global budget has paid, so a probe dropped for the budget
// costs its source nothing and a source over its own rate does not spend
// the budget. All or nothing: a cost above Burst or GlobalBurst is never
// admitted.
func (g *ProbeGate) Charge(src netip.Addr, replies int, now time.Time) ProbeVerdict {
	cost := 1
	if g.perReply {
		cost = replies
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.limiter(src)
	if l != nil && l.TokensAt(now) < float64(cost) {
		return ProbeOverRate
	}
	if g.global != nil && !g.global.AllowN(now, replies) {
		return ProbeOverGlobalRate
	}
	if l != nil {
		l.AllowN(now, cost)
	}
	return ProbeAdmitted
}

// limiter returns the limiter of source ip, or nil when there is no
// per-source rate. Called with mu held.
func (g *ProbeGate) limiter(ip netip.Addr) *rate.Limiter {
	if g.rate <= 0 {
		return nil
	}
	l, ok := g.limiters[ip]
	if !ok {
		if len(g.limiters) >= maxLimiters {
			clear(g.limiters)
		}
		l = rate.NewLimiter(rate.Limit(g.rate), g.burst)
		g.limiters[ip] = l
	}
	return l
}
