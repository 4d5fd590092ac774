package consul

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Limits, names and values the sink shares with Consul and its readers.
const (
	// MinDeregisterAfter is Consul's own floor for
	// DeregisterCriticalServiceAfter.
	MinDeregisterAfter = time.Minute
	// MinCatalogDeregisterAfter is catalog mode's floor: the leader reaps,
	// not an agent, so Consul's 1m floor does not apply.
	MinCatalogDeregisterAfter = 5 * time.Second
	// MinSessionTTL is the shortest session TTL Consul accepts.
	MinSessionTTL = 10 * time.Second

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
	OnExitDeregister = "deregister"
	OnExitKeep       = "keep"

	// Mode values.
	ModeAgent   = "agent"
	ModeCatalog = "catalog"

	// Check values.
	CheckNone = ""
	CheckTCP  = "tcp"
	CheckHTTP = "http"
)

// DefaultConfig returns the sink's defaults. They are written here once:
// the configuration keys (section.go) take their defaults from it, and New
// fills zero fields of a Config from it.
func DefaultConfig() Config {
	return Config{
		Mode:            ModeAgent,
		Service:         "django",
		TTL:             30 * time.Second,
		DeregisterAfter: MinDeregisterAfter,
		CheckInterval:   10 * time.Second,
		HTTPPath:        "/",
		Resync:          time.Minute,
		OnExit:          OnExitDeregister,
		LockSessionTTL:  MinSessionTTL,
		LockWait:        5 * time.Second,
		Parallel:        8,
	}
}

// Config configures the Consul sink in agent mode. The comment of each
// field names its configuration key; fields without one are for Go callers
// (and tests) only. Zero fields take DefaultConfig's values.
type Config struct {
	// Client is how to reach Consul (consul_addr, consul_token, TLS, ...).
	Client ClientConfig
	// Mode is "agent" (register with the local agent) or "catalog" (write
	// the catalog on the servers through one elected bridge; consul_mode).
	Mode string

	// Service is the Consul service name of discovered servers
	// (consul_service); Tags are put on each instance (consul_tags).
	Service string
	Tags    []string
	// BridgeID names this bridge in meta and in its own service ID
	// (bridge_id; required: the CLI defaults it to the host name).
	BridgeID string
	// TTL is the bridge's heartbeat check TTL (consul_ttl). Each Apply
	// refreshes it, so it must exceed the round interval plus the round
	// timeout (the configuration section checks; it knows both).
	TTL time.Duration
	// DeregisterAfter is DeregisterCriticalServiceAfter on each server's
	// alias check (consul_deregister_after; at least 1m).
	DeregisterAfter time.Duration
	// Check adds a check on the server itself (consul_check): "" (none),
	// "tcp" or "http", run every CheckInterval (consul_check_interval);
	// HTTPPath (consul_http_path) is the path the http check requests.
	Check         string
	CheckInterval time.Duration
	HTTPPath      string
	// Resync is how often Apply re-reads what it owns from the agent
	// (consul_resync; anti-entropy). The first Apply always reads.
	Resync time.Duration
	// OnExit is what Close does with owned services (on_exit):
	// "deregister" or "keep" (leave them for the heartbeat to expire).
	OnExit string
	// LockKey enables HA (consul_lock): only the holder of this KV lock
	// registers servers. LockSessionTTL is the lock session's TTL
	// (consul_lock_session_ttl; at least 10s).
	LockKey        string
	LockSessionTTL time.Duration
	// LockWait bounds one blocking read while waiting for the lock, and so
	// how long Close may wait for the lock goroutine (Go callers only).
	LockWait time.Duration
	// Parallel is how many registrations or deregistrations one Apply keeps
	// in flight (consul_parallel; 1..64).
	Parallel int
	// Catalog mode only. KVPrefix is where the bridges keep their
	// observations and the leader key (consul_kv_prefix; default
	// "udp-discovery-bridge/<service>"); it also names the fleet in meta, so
	// fleets with other prefixes never touch each other's entries. Segment
	// names this bridge's LAN segment for every server it observes
	// (segment; default: the network of the interface each reply came in
	// on); SegmentTag adds "segment=<segment>" tags (consul_segment_tag).
	// ObserversMeta adds the "observers" meta, the number of bridges that
	// see the server (consul_observers_meta): off by default, because then
	// a bridge joining or leaving rewrites every server it sees.
	// StartupGrace is how long a new leader waits before turning anything
	// critical (bridges publish after their first round; the section sets
	// interval + timeout). Once makes Apply reconcile as leader before it
	// returns (run --once).
	// WriteRate caps the leader's catalog transactions per second
	// (consul_write_rate; 0: no cap). With or without it the leader slows
	// down when Consul refuses writes for its request_limits.
	KVPrefix      string
	Segment       string
	SegmentTag    bool
	ObserversMeta bool
	WriteRate     float64
	StartupGrace  time.Duration
	Once          bool
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

// maxRetry bounds catalog mode's backoff against Consul (session creation,
// the leader's reads and writes): once Consul answers again, a bridge is
// back within this long.
const maxRetry = 5 * time.Second

// retryCap is the longest wait between two attempts to reach Consul: a
// round, between one second and maxRetry.
func (c Config) retryCap() time.Duration {
	if c.Round <= 0 {
		return maxRetry
	}
	return min(max(c.Round, time.Second), maxRetry)
}

// DefaultKVPrefix is the KV prefix of a fleet registering service.
func DefaultKVPrefix(service string) string { return "udp-discovery-bridge/" + service }

// withDefaults returns c with zero fields set from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	orDefault(&c.Mode, d.Mode)
	orDefault(&c.Service, d.Service)
	orDefault(&c.KVPrefix, DefaultKVPrefix(c.Service))
	orDefault(&c.TTL, d.TTL)
	orDefault(&c.DeregisterAfter, d.DeregisterAfter)
	orDefault(&c.CheckInterval, d.CheckInterval)
	orDefault(&c.HTTPPath, d.HTTPPath)
	orDefault(&c.Resync, d.Resync)
	orDefault(&c.OnExit, d.OnExit)
	orDefault(&c.LockSessionTTL, d.LockSessionTTL)
	orDefault(&c.LockWait, d.LockWait)
	orDefault(&c.Parallel, d.Parallel)
	c.Clock = clock.OrReal(c.Clock)
	return c
}

// orDefault sets *v to d when *v is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports every problem of a (defaulted) configuration at once,
// each a *config.KeyError naming the configuration key (or, for fields
// without a key, the Go field). This is the only validation of the sink's
// settings: the configuration section calls it too.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, &config.KeyError{Key: key, Value: v, Why: why})
	}
	if c.BridgeID == "" {
		bad("bridge_id", c.BridgeID, "must not be empty")
	} else if _, err := quoteFilterString(c.BridgeID); err != nil {
		bad("bridge_id", c.BridgeID, err.Error())
	}
	if c.Service == "" {
		bad("consul_service", c.Service, "must not be empty")
	} else if c.Service == BridgeServiceName {
		bad("consul_service", c.Service, "reserved for the bridge's own service")
	}
	if c.TTL <= 0 {
		bad("consul_ttl", c.TTL, "must be > 0")
	}
	switch {
	case c.Mode != ModeCatalog && c.DeregisterAfter < MinDeregisterAfter:
		bad("consul_deregister_after", c.DeregisterAfter, "Consul's floor is 1m")
	case c.Mode == ModeCatalog && c.DeregisterAfter < MinCatalogDeregisterAfter:
		bad("consul_deregister_after", c.DeregisterAfter, "catalog mode's floor is 5s (the leader reaps)")
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
	errs = append(errs, config.OneOf("consul_mode", c.Mode, ModeAgent, ModeCatalog))
	if c.Mode == ModeCatalog {
		switch {
		case strings.HasPrefix(c.KVPrefix, "/") || strings.HasSuffix(c.KVPrefix, "/") || strings.Contains(c.KVPrefix, "//"):
			bad("consul_kv_prefix", c.KVPrefix, "want a KV path such as udp-discovery-bridge/django (no leading, trailing or doubled /)")
		default:
			if _, err := quoteFilterString(c.KVPrefix); err != nil {
				bad("consul_kv_prefix", c.KVPrefix, err.Error())
			}
		}
		if strings.Contains(c.BridgeID, "/") {
			bad("bridge_id", c.BridgeID, "must not contain / in catalog mode (it names a KV key)")
		}
		if c.LockSessionTTL < MinSessionTTL {
			bad("consul_lock_session_ttl", c.LockSessionTTL, "Consul's floor is 10s")
		}
		if c.LockKey != "" {
			bad("consul_lock", c.LockKey, "catalog mode elects its leader under consul_kv_prefix; leave consul_lock empty")
		}
	}
	if c.LockKey != "" {
		if c.LockSessionTTL < MinSessionTTL {
			bad("consul_lock_session_ttl", c.LockSessionTTL, "Consul's floor is 10s")
		}
		if c.LockWait <= 0 {
			errs = append(errs, fmt.Errorf("Config.LockWait %s: must be > 0", c.LockWait))
		}
	}
	if c.WriteRate < 0 || math.IsNaN(c.WriteRate) || math.IsInf(c.WriteRate, 0) {
		bad("consul_write_rate", c.WriteRate, "want writes per second, a number >= 0 (0: no cap)")
	}
	if c.Parallel < 1 || c.Parallel > 64 {
		bad("consul_parallel", c.Parallel, "want 1..64")
	}
	return errors.Join(errs...)
}
