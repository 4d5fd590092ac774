package relay

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// The defaults of Config (DefaultConfig). The reasoning is in
// docs/design/relay.md; in short:
const (
	// DefaultDelay holds every relayed reply back 50 ms, so that a local
	// server's own answer reaches the client first: the upstream client's
	// discover_one takes the first reply, and a stock server answers within
	// 0.2-1.5 ms of the probe (measured on a namespace LAN, the probe's
	// round trip itself p99.9 0.3 ms). 50 ms is 30 times the slowest
	// answer measured, and ten of CPython's 5 ms thread switch intervals
	// for a listener that runs as a thread of a busy web process. It costs
	// a stock client nothing: upstream waits its whole timeout (5 s) for
	// replies in any case.
	DefaultDelay = 50 * time.Millisecond
	// DefaultMaxReplies answers a probe with at most 8 servers, the
	// default of discover's MaxServersPerSource: a bridge's round keeps at
	// most that many new servers from one source, so more replies from
	// one relay would be refused by a bridge client and only raise the
	// amplification. Consecutive probes page through a larger set.
	DefaultMaxReplies = discover.DefaultMaxServersPerSource
	// DefaultRate and DefaultBurst are each source's token bucket, in
	// replies: one full answer (DefaultMaxReplies) a second, after four at
	// once (a bridge's round sends its probe and up to three retries).
	DefaultRate  = float64(DefaultMaxReplies)
	DefaultBurst = 4 * DefaultMaxReplies
	// DefaultGlobalRate and DefaultGlobalBurst bound the replies to all
	// sources together, as bridge respond's do: 100 a second after 200.
	DefaultGlobalRate  = 100
	DefaultGlobalBurst = 200
	// DefaultQueueSize is how many delayed replies may wait at once. With
	// the global limit on, at most GlobalBurst + GlobalRate × Delay (205
	// with the defaults) can be waiting while the sender keeps up.
	DefaultQueueSize = 1024
	// DefaultRefreshEvery is how often the host's interfaces are re-read,
	// as bridge respond re-reads its networks.
	DefaultRefreshEvery = 10 * time.Second

	// MaxDelay bounds Delay: a relayed reply must arrive well inside a
	// client's timeout (5 s upstream, and the bridge's retries go out
	// every 1.25 s of a default round).
	MaxDelay = time.Second
	// MaxMaxReplies and maxQueueSize bound what one setting can make the
	// relay allocate.
	MaxMaxReplies = 1 << 12
	maxQueueSize  = 1 << 20
)

// Config is what a Relay answers and how much. DefaultConfig returns the
// defaults; New validates with Validate. Fields are taken as given, except
// that MaxTokenAge and ClockSkew 0 mean discover's defaults, as in
// discover.Options.
type Config struct {
	// Interfaces are the names of the interfaces whose probes are
	// answered (exact, case-sensitive). Datagrams arriving on any other
	// interface are ignored. Required.
	Interfaces []string
	// Message is the probe answered (plaintext mode), or the plaintext a
	// probe token must hold (encrypted mode); Prefix starts every reply.
	Message, Prefix []byte
	// Key enables encrypted mode: probes must be tokens under Key, and
	// every reply is a token under Key.
	Key *discover.Key
	// MaxTokenAge and ClockSkew bound a probe token's age, as discovery
	// bounds a reply's.
	MaxTokenAge, ClockSkew time.Duration
	// Delay holds each probe's replies back this long (0: sent at once,
	// by the reading goroutine). At most MaxDelay.
	Delay time.Duration
	// MaxReplies is the most targets one probe is answered with.
	MaxReplies int
	// Rate is how many replies per second each source gets, after a burst
	// of Burst (at least MaxReplies); 0 means no per-source limit.
	Rate  float64
	Burst int
	// GlobalRate is how many replies per second all sources together get,
	// after a burst of GlobalBurst (at least MaxReplies); 0 means no limit.
	GlobalRate  float64
	GlobalBurst int
	// QueueSize is how many delayed replies may wait at once (at least
	// MaxReplies when Delay is set); a probe whose replies do not fit is
	// dropped whole (ReasonQueueFull).
	QueueSize int
	// MaxTargetAge refuses a target set older than this (ReasonStaleTargets);
	// 0 leaves it to the Targets source, whose ok says whether its set
	// may be used.
	MaxTargetAge time.Duration
	// RefreshEvery is how often the host's interfaces and their networks
	// are re-read.
	RefreshEvery time.Duration
}

// DefaultConfig returns the defaults, with discovery's message, prefix and
// token-age bounds; Interfaces is left empty (the caller chooses).
func DefaultConfig() Config {
	o := discover.DefaultOptions()
	return Config{
		Message: o.Message, Prefix: o.Prefix,
		MaxTokenAge: o.MaxTokenAge, ClockSkew: o.ClockSkew,
		Delay:      DefaultDelay,
		MaxReplies: DefaultMaxReplies,
		Rate:       DefaultRate, Burst: DefaultBurst,
		GlobalRate: DefaultGlobalRate, GlobalBurst: DefaultGlobalBurst,
		QueueSize:    DefaultQueueSize,
		RefreshEvery: DefaultRefreshEvery,
	}
}

// Validate returns every problem of c at once, each naming the setting and
// its value, or nil.
func (c Config) Validate() error {
	var errs []error
	bad := func(name string, v any, why string) {
		errs = append(errs, fmt.Errorf("relay %s %v: %s", name, v, why))
	}
	if len(c.Interfaces) == 0 {
		bad("interfaces", "[]", "name at least one interface to answer on")
	}
	for _, n := range c.Interfaces {
		if n == "" {
			bad("interfaces", fmt.Sprintf("%q", c.Interfaces), "an interface name must not be empty")
			break
		}
	}
	if len(c.Message) == 0 {
		bad("message", `""`, "must not be empty")
	}
	if len(c.Prefix) == 0 {
		bad("prefix", `""`, "must not be empty")
	}
	if c.MaxTokenAge < 0 {
		bad("max_token_age", c.MaxTokenAge, "want >= 0 (0: the default)")
	}
	if c.ClockSkew < 0 {
		bad("clock_skew", c.ClockSkew, "want >= 0 (0: the default)")
	}
	if c.Delay < 0 || c.Delay > MaxDelay {
		bad("delay", c.Delay, fmt.Sprintf("want 0..%s", MaxDelay))
	}
	if c.MaxReplies < 1 || c.MaxReplies > MaxMaxReplies {
		bad("max_replies", c.MaxReplies, fmt.Sprintf("want 1..%d", MaxMaxReplies))
	}
	if !rateOK(c.Rate) {
		bad("rate", c.Rate, "want a number >= 0 (0: no limit)")
	} else if c.Rate > 0 && c.Burst < c.MaxReplies {
		bad("burst", c.Burst, fmt.Sprintf("below max_replies %d: a full answer could never be paid for", c.MaxReplies))
	}
	if !rateOK(c.GlobalRate) {
		bad("global_rate", c.GlobalRate, "want a number >= 0 (0: no limit)")
	} else if c.GlobalRate > 0 && c.GlobalBurst < c.MaxReplies {
		bad("global_burst", c.GlobalBurst, fmt.Sprintf("below max_replies %d: a full answer could never be paid for", c.MaxReplies))
	}
	if c.Delay > 0 && (c.QueueSize < c.MaxReplies || c.QueueSize > maxQueueSize) {
		bad("queue_size", c.QueueSize, fmt.Sprintf("want max_replies (%d)..%d with a delay", c.MaxReplies, maxQueueSize))
	}
	if c.MaxTargetAge < 0 {
		bad("max_target_age", c.MaxTargetAge, "want >= 0 (0: the source decides)")
	}
	if c.RefreshEvery <= 0 {
		bad("refresh_every", c.RefreshEvery, "want > 0")
	}
	return errors.Join(errs...)
}

func rateOK(r float64) bool { return r >= 0 && !math.IsInf(r, 0) && !math.IsNaN(r) }
