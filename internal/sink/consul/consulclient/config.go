package consulclient

import (
	"cmp"
	"errors"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Limits, names and values both modes share with Consul and its readers.
const (
	// MinSessionTTL is the shortest session TTL Consul accepts.
	MinSessionTTL = 10 * time.Second
	// MaxParallel bounds consul_parallel in both modes.
	MaxParallel = 64
	// DefaultParallel is consul_parallel's default: agent mode's writes and
	// catalog mode's transactions in flight.
	DefaultParallel = 8

	// BridgeServiceName is the Consul service name under which every bridge
	// registers itself (its heartbeat TTL check lives there).
	BridgeServiceName = "udp-discovery-bridge"
	// ManagedByValue is the value of the managed-by meta key on everything the
	// bridge registers.
	ManagedByValue = "udp-discovery-bridge"

	// Meta keys written on every registered service.
	MetaManagedBy     = "managed-by"
	MetaBridgeID      = "bridge-id"
	MetaInterface     = "interface"
	MetaSourceAddress = "source-address"
	// MetaChecks fingerprints the check configuration, so that a restart
	// with different check settings re-registers the services.
	MetaChecks = "bridge-checks"

	// OnExit values.
	OnExitDeregister = config.OnExitDeregister
	OnExitKeep       = config.OnExitKeep

	// Check values.
	CheckNone = ""
	CheckTCP  = "tcp"
	CheckHTTP = "http"
)

// SharedConfig is what both modes need: how to reach Consul, what to
// register under which names, the checks, and the round they follow.
type SharedConfig struct {
	// Client is how to reach Consul (consul_addr, consul_token, TLS, ...).
	Client ClientConfig
	// Service is the Consul service name of discovered servers
	// (consul_service); Tags are put on each instance (consul_tags).
	Service string
	Tags    []string
	// BridgeID names this bridge in meta and in its own service ID
	// (bridge_id; required: the CLI defaults it to the host name).
	BridgeID string
	// DeregisterAfter is how long after its check turned critical a server
	// is removed (consul_deregister_after): agent mode sets it as
	// DeregisterCriticalServiceAfter on each server's alias check (Consul's
	// floor, 1m), catalog mode's leader reaps (5s at least).
	DeregisterAfter time.Duration
	// Check, CheckInterval and HTTPPath are the deprecated consul_check,
	// consul_check_interval and consul_http_path: a check on the server
	// itself, "" (none), "tcp" or "http", every CheckInterval, of path
	// HTTPPath. The bridge now runs that check itself (cmd/bridge maps
	// these keys to app_check, app_check_interval and app_check_path), so
	// agent mode ignores them and carries the bridge's verdict (AppCheck)
	// instead of registering a check the agent would run.
	Check         string
	CheckInterval time.Duration
	HTTPPath      string
	// AppCheck is set when the bridge runs app checks (sink.Deps.AppCheck):
	// agent mode then gives every server a TTL check of the bridge's own,
	// "<service id>:app", whose status and output follow the endpoint's
	// Check (see agent.AppCheckTTL).
	AppCheck bool
	// Resync is how often the sink re-reads what it owns (consul_resync;
	// anti-entropy). The first Apply always reads.
	Resync time.Duration
	// OnExit is what Close does with owned services (on_exit):
	// "deregister" or "keep" (leave them for the heartbeat to expire).
	OnExit string
	// Round is how long one discovery round may take, interval + timeout
	// (the section sets it, in both modes). Catalog mode does not publish a
	// snapshot older than two rounds (a paused process); catalog mode and
	// the lock of either mode retry Consul at least once a round (and at
	// most every 5s) while it is unreachable. Zero: no snapshot is stale,
	// catalog retries back off to 5s, the agent-mode lock's to 30s.
	Round time.Duration
	// Clock drives resync, heartbeat pacing, progress logs and lock retries
	// (nil: the real clock).
	Clock clock.Clock
}

// DefaultSharedConfig returns the defaults of the shared part, every field
// with a default filled. They are written here once: the configuration
// keys take their defaults from them, and WithDefaults fills zero fields.
func DefaultSharedConfig() SharedConfig {
	return SharedConfig{
		Service:         "django",
		DeregisterAfter: time.Minute, // Consul's floor in agent mode
		CheckInterval:   10 * time.Second,
		HTTPPath:        "/",
		Resync:          time.Minute,
		OnExit:          OnExitDeregister,
	}
}

// WithDefaults returns c with its zero fields set from DefaultSharedConfig,
// and the real clock when it has none.
func (c SharedConfig) WithDefaults() SharedConfig {
	d := DefaultSharedConfig()
	c.Service = cmp.Or(c.Service, d.Service)
	c.DeregisterAfter = cmp.Or(c.DeregisterAfter, d.DeregisterAfter)
	c.CheckInterval = cmp.Or(c.CheckInterval, d.CheckInterval)
	c.HTTPPath = cmp.Or(c.HTTPPath, d.HTTPPath)
	c.Resync = cmp.Or(c.Resync, d.Resync)
	c.OnExit = cmp.Or(c.OnExit, d.OnExit)
	c.Clock = clock.OrReal(c.Clock)
	return c
}

// maxRetry bounds catalog mode's backoff against Consul (session creation,
// the leader's reads and writes): once Consul answers again, a bridge is
// back within this long.
const maxRetry = 5 * time.Second

// RetryCap is the longest wait between two attempts to reach Consul: a
// round, between one second and 5s.
func (c SharedConfig) RetryCap() time.Duration {
	if c.Round <= 0 {
		return maxRetry
	}
	return min(max(c.Round, time.Second), maxRetry)
}

// DefaultKVPrefix is the KV prefix of a fleet registering service.
func DefaultKVPrefix(service string) string { return "udp-discovery-bridge/" + service }

// Validate reports every problem of the shared part of a (defaulted)
// configuration at once, each a *config.KeyError naming the configuration
// key. The floor of DeregisterAfter depends on the mode and is checked by
// the mode's part.
func (c SharedConfig) Validate() error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, &config.KeyError{Key: key, Value: v, Why: why})
	}
	if c.BridgeID == "" {
		bad("bridge_id", c.BridgeID, "must not be empty")
	} else if _, err := QuoteFilterString(c.BridgeID); err != nil {
		bad("bridge_id", c.BridgeID, err.Error())
	}
	if c.Service == "" {
		bad("consul_service", c.Service, "must not be empty")
	} else if c.Service == BridgeServiceName {
		bad("consul_service", c.Service, "reserved for the bridge's own service")
	}
	errs = append(errs, config.OneOf("consul_check", c.Check, CheckNone, CheckTCP, CheckHTTP))
	if c.Check != CheckNone && c.CheckInterval <= 0 {
		bad("consul_check_interval", c.CheckInterval, "must be > 0")
	}
	if c.Check == CheckHTTP && !strings.HasPrefix(c.HTTPPath, "/") {
		bad("consul_http_path", c.HTTPPath, "must start with /")
	}
	if c.Resync <= 0 {
		bad("consul_resync", c.Resync, "must be > 0")
	}
	errs = append(errs, config.OneOf("on_exit", c.OnExit, OnExitDeregister, OnExitKeep))
	return errors.Join(errs...)
}
