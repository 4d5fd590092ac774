package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// Discoverer runs one discovery round. An error (typically wrapping
// discover.ErrNoInterfaces or discover.ErrNoProbeSent) makes the round a
// failed round: it counts as no miss for any endpoint.
type Discoverer interface {
	Round(ctx context.Context) (discover.Result, error)
}

// KeepAliver is implemented by a Discoverer that probes known servers by
// unicast every round (discover.Client.KeepAlive). Before each round the
// loop passes the reply source addresses of every endpoint the planner
// holds, so the keep-alive set is the planner's: a server it removed after
// MissedRounds rounds is no longer probed, and one it holds is probed until
// then, so each of its misses is a round in which it did not answer.
type KeepAliver interface {
	KeepAlive(sources []netip.AddrPort)
}

// ScanPlanner is implemented by a Discoverer with a rolling subnet scan;
// the loop logs the plan at start.
type ScanPlanner interface {
	ScanPlan() discover.ScanPlan
}

// Inventory is told what the bridge holds: the snapshot of every completed
// round (Round), each snapshot handed over between round ends (Arrived:
// servers added as they arrived during a round, and the held set after a
// health transition of the app checks) and every failed round (Failed).
// Its methods must not block: the loop calls them.
type Inventory interface {
	Round(s endpoint.Snapshot)
	Arrived(s endpoint.Snapshot)
	Failed(err error)
}

// Inventories returns one Inventory telling each of invs, in order, what
// it is told; the nil ones are left out, and nil when none is left (the
// http_sd endpoint and the relay's local source both follow what the
// bridge holds).
func Inventories(invs ...Inventory) Inventory {
	var out inventories
	for _, inv := range invs {
		if inv != nil {
			out = append(out, inv)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

// inventories tells every Inventory it holds.
type inventories []Inventory

func (is inventories) Round(s endpoint.Snapshot) {
	for _, i := range is {
		i.Round(s)
	}
}

func (is inventories) Arrived(s endpoint.Snapshot) {
	for _, i := range is {
		i.Arrived(s)
	}
}

func (is inventories) Failed(err error) {
	for _, i := range is {
		i.Failed(err)
	}
}

// Board is told what the bridge holds, for `bridge explain`
// (internal/explain): the planner's state whenever the held set changed,
// each sink as its worker is made, and the outcome of every apply. Its
// methods must not block: the loop and the workers call them.
type Board interface {
	Planned(round uint64, s plan.State)
	AddSink(name string, s sink.Sink)
	Applied(name string, s endpoint.Snapshot, err error)
}

// BackoffConfig bounds the capped exponential backoff (with jitter) between
// retries of a failed sink Apply. Zero values take the defaults.
type BackoffConfig struct {
	Min time.Duration // first delay; default 1s
	Max time.Duration // cap; default 30s
}

// Defaults applied by Run to zero fields of Config.
const (
	DefaultBackoffMin      = time.Second
	DefaultBackoffMax      = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultOnceAttempts    = 3
)

// ErrInvalidConfig is wrapped by every configuration error Run returns.
var ErrInvalidConfig = errors.New("invalid runner config")

// Config configures Run.
type Config struct {
	// Interval between round starts (required unless Once).
	Interval time.Duration
	// MissedRounds is how many consecutive complete rounds without a reply
	// remove an endpoint (>= 1).
	MissedRounds int
	// RoundTimeout is the deadline of one discovery round (the timeout
	// key). With it set the loop notices a pause (SIGSTOP, a starved or
	// frozen container): a round that took longer than twice its deadline
	// (and at least a second more) is discarded as stale, and the rounds
	// skipped meanwhile count as misses, so what the sinks get after a pause
	// is what a fresh round saw. Zero disables both checks.
	RoundTimeout time.Duration
	// MaxRemovalFraction and RemovalGuardRounds tune the planner's removal
	// guard (plan.Config): a round whose due removals are at least 2 and
	// more than MaxRemovalFraction of the known servers holds them for
	// RemovalGuardRounds more rounds. Zero in either (or a fraction of 1)
	// turns the guard off.
	MaxRemovalFraction float64
	RemovalGuardRounds int
	// HeldUnobserved is removal_guard_held unobserved: with an app check,
	// a server whose removal the guard holds is handed to the sinks
	// failing ("unseen, its removal held"). By default (false: ready, fail
	// open) it is handed to them ready, its app check set aside.
	HeldUnobserved bool
	// Limits bound the servers the planner holds (max_servers and
	// max_servers_per_source): new ones beyond them are refused, counted,
	// logged once per episode and reported on /readyz; those held stay.
	// Zero fields are no limit.
	Limits plan.Limits
	// Once runs one round, applies it synchronously and returns.
	Once bool
	// Encryption says whether the probes and replies are Fernet tokens; the
	// start-up line ("loop started") reports it, so an operator sees the
	// mode without reading the configuration.
	Encryption bool
	// DryRun never applies or closes a sink; it writes each round's
	// operations as JSON lines to DryRunOut.
	DryRun    bool
	DryRunOut io.Writer
	// Sinks receive the snapshot of every completed round.
	Sinks []sink.Sink
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Log receives the loop's logs (the zero Logger discards them).
	Log zerolog.Logger
	// Metrics and Health may be nil.
	Metrics *Metrics
	Health  *Health
	// Inventory, when set, is handed every snapshot the sinks are handed
	// and told of every failed round (the Prometheus http_sd endpoint,
	// internal/promsd). With DryRun it still gets them: it changes no
	// registry.
	Inventory Inventory
	// Backoff between retries of a failed sink Apply.
	Backoff BackoffConfig
	// ShutdownTimeout bounds, at shutdown, the wait for in-flight and final
	// sink Applies, and separately the sinks' Close calls. Default 10s.
	ShutdownTimeout time.Duration
	// OnceAttempts is how many times Once tries each sink's Apply. Default 3.
	OnceAttempts int
	// AddWindow is how long the loop gathers the servers a round reports
	// as they arrive (a Discoverer that is a Notifier) before handing them
	// to the sinks as one early snapshot; default DefaultAddWindow. A
	// negative AddWindow turns adds as they arrive off: adds wait for the
	// round's end.
	AddWindow time.Duration
	// Checker, when set, checks each held server's app (app_check): the
	// loop tells it the held set after every change, every snapshot the
	// sinks and the Inventory are handed carries each server's health
	// (Checker.Decorate), and a health transition between rounds hands
	// them the held set again at once (not with DryRun). Nil: no app
	// checks, every held server is ready.
	Checker Checker
	// FirstVerdictWait is how long the first completed round's snapshot
	// waits for the app checks' first verdicts on the servers it holds,
	// when the Checker is an InitialChecker (0: no wait).
	FirstVerdictWait time.Duration
	// Board, when set, is told what the bridge holds, for `bridge
	// explain` (internal/explain).
	Board Board
	// Probe, when set with Once, checks each server the round found once
	// after the round; that result makes it ready or failing for the one
	// apply. ProbeConcurrency bounds the checks in flight (default
	// appcheck.DefaultConcurrency).
	Probe            Probe
	ProbeConcurrency int
	// AfterRound, when set, is called after each round of the loop, once its
	// snapshot was handed to the sinks. The loop is idle until the next
	// round, which makes it the time to give memory back to the OS.
	AfterRound func()
}

// Outcome summarises a Run.
type Outcome struct {
	// Rounds is how many rounds ran (an abandoned round included).
	Rounds uint64
	// Found is how many servers the last completed round saw.
	Found int
	// Differs reports that --dry-run emitted at least one add or remove.
	Differs bool
	// Failed reports that the last round failed (or was abandoned), with
	// RoundErr saying why.
	Failed   bool
	RoundErr error
}

func (c Config) withDefaults() (Config, error) {
	var errs []error
	if !c.Once && c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("%w: interval %v: must be positive", ErrInvalidConfig, c.Interval))
	}
	if c.RoundTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: round timeout %v: must not be negative", ErrInvalidConfig, c.RoundTimeout))
	}
	if c.MissedRounds < 1 {
		errs = append(errs, fmt.Errorf("%w: missed rounds %d: must be at least 1", ErrInvalidConfig, c.MissedRounds))
	}
	if !(c.MaxRemovalFraction >= 0 && c.MaxRemovalFraction <= 1) {
		errs = append(errs, fmt.Errorf("%w: max removal fraction %v: want 0..1", ErrInvalidConfig, c.MaxRemovalFraction))
	}
	if c.RemovalGuardRounds < 0 {
		errs = append(errs, fmt.Errorf("%w: removal guard rounds %d: must be >= 0", ErrInvalidConfig, c.RemovalGuardRounds))
	}
	if c.Limits.MaxServers < 0 || c.Limits.MaxPerSource < 0 {
		errs = append(errs, fmt.Errorf("%w: limits %+v: must not be negative", ErrInvalidConfig, c.Limits))
	}
	if c.DryRun && c.DryRunOut == nil {
		errs = append(errs, fmt.Errorf("%w: dry run needs an output writer", ErrInvalidConfig))
	}
	for i, s := range c.Sinks {
		if s == nil {
			errs = append(errs, fmt.Errorf("%w: sink %d is nil", ErrInvalidConfig, i))
		}
	}
	if c.Backoff.Min < 0 || c.Backoff.Max < 0 || c.ShutdownTimeout < 0 || c.OnceAttempts < 0 {
		errs = append(errs, fmt.Errorf("%w: negative backoff (%v, %v), shutdown timeout %v or once attempts %d",
			ErrInvalidConfig, c.Backoff.Min, c.Backoff.Max, c.ShutdownTimeout, c.OnceAttempts))
	}
	c.Clock = clock.OrReal(c.Clock)
	if c.Backoff.Min == 0 {
		c.Backoff.Min = DefaultBackoffMin
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = DefaultBackoffMax
	}
	c.Backoff.Max = max(c.Backoff.Max, c.Backoff.Min)
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.AddWindow == 0 {
		c.AddWindow = DefaultAddWindow
	}
	if c.OnceAttempts == 0 {
		c.OnceAttempts = DefaultOnceAttempts
	}
	if c.ProbeConcurrency <= 0 {
		c.ProbeConcurrency = appcheck.DefaultConcurrency
	}
	return c, errors.Join(errs...)
}
