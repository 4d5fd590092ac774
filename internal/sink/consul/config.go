package consul

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
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
	// MaxParallel bounds consul_parallel in both modes.
	MaxParallel = 64

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

	// Mode values.
	ModeAgent   = "agent"
	ModeCatalog = "catalog"

	// Catalog layouts (consul_catalog_layout).
	LayoutSharedNode    = "shared-node"
	LayoutNodePerServer = "node-per-server"
	// DefaultLayout is consul_catalog_layout's default.
	DefaultLayout = LayoutNodePerServer

	// Check values.
	CheckNone = ""
	CheckTCP  = "tcp"
	CheckHTTP = "http"
)

// DefaultParallel is consul_parallel's default: agent mode's writes and
// catalog mode's transactions in flight.
const DefaultParallel = 8

// DefaultConfig returns the sink's defaults, every part filled. They are
// written here once: the configuration keys (section.go) take their
// defaults from it, and New fills zero fields of a Config from it.
func DefaultConfig() Config {
	return Config{
		SharedConfig: SharedConfig{
			Service:         "django",
			DeregisterAfter: MinDeregisterAfter,
			CheckInterval:   10 * time.Second,
			HTTPPath:        "/",
			Resync:          time.Minute,
			OnExit:          OnExitDeregister,
		},
		Mode: ModeAgent,
		Agent: AgentConfig{
			TTL:            30 * time.Second,
			LockSessionTTL: MinSessionTTL,
			LockWait:       5 * time.Second,
			Parallel:       DefaultParallel,
		},
		Catalog: CatalogConfig{
			Layout:     DefaultLayout,
			SessionTTL: MinSessionTTL,
			LockWait:   5 * time.Second,
			InFlight:   DefaultParallel,
		},
	}
}

// Config configures the Consul sink: what both modes share (SharedConfig,
// embedded: the client, the service, the checks), the mode, and the
// settings of that mode, Agent or Catalog (the other part is ignored). The
// comment of each field names its configuration key; fields without one are
// for Go callers (and tests) only. Zero fields take DefaultConfig's values.
type Config struct {
	SharedConfig
	// Mode is "agent" (register with the local agent) or "catalog" (write
	// the catalog on the servers through one elected bridge; consul_mode).
	Mode string
	// Agent is agent mode's part, Catalog catalog mode's.
	Agent   AgentConfig
	Catalog CatalogConfig
}

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
	// Check (see AppCheckTTL).
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

// AgentConfig is agent mode's part: the bridge's heartbeat, the optional
// lock, and the writes of one Apply.
type AgentConfig struct {
	// TTL is the bridge's heartbeat check TTL (consul_ttl). Each Apply
	// refreshes it, so it must exceed the round interval plus the round
	// timeout (the configuration section checks; it knows both).
	TTL time.Duration
	// LockKey enables HA (consul_lock): only the holder of this KV lock
	// registers servers. LockSessionTTL is the lock session's TTL
	// (consul_lock_session_ttl; at least 10s, checked only with a lock).
	LockKey        string
	LockSessionTTL time.Duration
	// LockWait bounds one blocking read while waiting for the lock, and so
	// how long Close may wait for the lock goroutine (Go callers only).
	LockWait time.Duration
	// Parallel is how many registrations or deregistrations one Apply keeps
	// in flight (consul_parallel; 1..64).
	Parallel int
}

// CatalogConfig is catalog mode's part: the fleet's KV prefix, this
// bridge's session, and the leader's writes.
type CatalogConfig struct {
	// KVPrefix is where the bridges keep their observations and the leader
	// key (consul_kv_prefix; default "udp-discovery-bridge/<service>"); it
	// also names the fleet in meta, so fleets with other prefixes never
	// touch each other's entries.
	KVPrefix string
	// Segment names this bridge's LAN segment for every server it observes
	// (segment; default: the network of the interface each reply came in
	// on); SegmentTag adds "segment=<segment>" tags (consul_segment_tag).
	Segment    string
	SegmentTag bool
	// ObserversMeta adds the "observers" meta, the number of bridges that
	// see the server (consul_observers_meta): off by default, because then
	// a bridge joining or leaving rewrites every server it sees.
	ObserversMeta bool
	// Layout is how the leader spells servers in the catalog
	// (consul_catalog_layout): LayoutSharedNode, every server a service
	// with its check on one synthetic node of the fleet, or
	// LayoutNodePerServer, an external node per server.
	Layout string
	// SessionTTL is the TTL of this bridge's session, which holds its
	// observation and, on the leader, the leader key
	// (consul_lock_session_ttl; at least 10s). LockWait bounds one blocking
	// read of the leader key (Go callers only).
	SessionTTL time.Duration
	LockWait   time.Duration
	// WriteRate caps the leader's catalog transactions per second
	// (consul_write_rate; 0: no cap). With or without it the leader slows
	// down when Consul refuses writes for its request_limits.
	WriteRate float64
	// InFlight is how many transactions the leader keeps in flight
	// (consul_parallel; 1..64); it halves its window, down to 1, while
	// Consul refuses writes for its rate limit.
	InFlight int
	// StartupGrace is how long a new leader waits before turning anything
	// critical (bridges publish after their first round; the section sets
	// a round plus the longest retry wait).
	StartupGrace time.Duration
	// Guard is the fleet's removal guard, from the core's guard keys.
	Guard fleet.GuardConfig
	// Once makes Apply reconcile as leader before it returns (run --once).
	Once bool
}

// maxRetry bounds catalog mode's backoff against Consul (session creation,
// the leader's reads and writes): once Consul answers again, a bridge is
// back within this long.
const maxRetry = 5 * time.Second

// retryCap is the longest wait between two attempts to reach Consul: a
// round, between one second and maxRetry.
func (c SharedConfig) retryCap() time.Duration {
	if c.Round <= 0 {
		return maxRetry
	}
	return min(max(c.Round, time.Second), maxRetry)
}

// DefaultKVPrefix is the KV prefix of a fleet registering service.
func DefaultKVPrefix(service string) string { return "udp-discovery-bridge/" + service }

// withDefaults returns c with zero fields set from DefaultConfig: the
// shared part's and its mode's.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	orDefault(&c.Mode, d.Mode)
	orDefault(&c.Service, d.Service)
	orDefault(&c.DeregisterAfter, d.DeregisterAfter)
	orDefault(&c.CheckInterval, d.CheckInterval)
	orDefault(&c.HTTPPath, d.HTTPPath)
	orDefault(&c.Resync, d.Resync)
	orDefault(&c.OnExit, d.OnExit)
	c.Clock = clock.OrReal(c.Clock)
	switch c.Mode {
	case ModeAgent:
		a := &c.Agent
		orDefault(&a.TTL, d.Agent.TTL)
		orDefault(&a.LockSessionTTL, d.Agent.LockSessionTTL)
		orDefault(&a.LockWait, d.Agent.LockWait)
		orDefault(&a.Parallel, d.Agent.Parallel)
	case ModeCatalog:
		k := &c.Catalog
		orDefault(&k.KVPrefix, DefaultKVPrefix(c.Service))
		orDefault(&k.SessionTTL, d.Catalog.SessionTTL)
		orDefault(&k.LockWait, d.Catalog.LockWait)
		orDefault(&k.InFlight, d.Catalog.InFlight)
		orDefault(&k.Layout, d.Catalog.Layout)
	}
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
// without a key, the Go field): the shared part's, then its mode's. This is
// the only validation of the sink's settings: the configuration section
// calls it too.
func (c Config) Validate() error {
	errs := c.SharedConfig.validate()
	switch c.Mode {
	case ModeAgent:
		errs = append(errs, c.Agent.validate(c.SharedConfig)...)
	case ModeCatalog:
		errs = append(errs, c.Catalog.validate(c.SharedConfig)...)
		if c.Agent.LockKey != "" {
			errs = append(errs, &config.KeyError{Key: "consul_lock", Value: c.Agent.LockKey,
				Why: "catalog mode elects its leader under consul_kv_prefix; leave consul_lock empty"})
		}
	default:
		errs = append(errs, config.OneOf("consul_mode", c.Mode, ModeAgent, ModeCatalog))
	}
	return errors.Join(errs...)
}

// problems collects *config.KeyErrors.
type problems []error

func (p *problems) bad(key string, v any, why string) {
	*p = append(*p, &config.KeyError{Key: key, Value: v, Why: why})
}

// validate checks what both modes share; the floor of DeregisterAfter
// depends on the mode and is checked there.
func (c SharedConfig) validate() []error {
	var p problems
	if c.BridgeID == "" {
		p.bad("bridge_id", c.BridgeID, "must not be empty")
	} else if _, err := quoteFilterString(c.BridgeID); err != nil {
		p.bad("bridge_id", c.BridgeID, err.Error())
	}
	if c.Service == "" {
		p.bad("consul_service", c.Service, "must not be empty")
	} else if c.Service == BridgeServiceName {
		p.bad("consul_service", c.Service, "reserved for the bridge's own service")
	}
	p = append(p, config.OneOf("consul_check", c.Check, CheckNone, CheckTCP, CheckHTTP))
	if c.Check != CheckNone && c.CheckInterval <= 0 {
		p.bad("consul_check_interval", c.CheckInterval, "must be > 0")
	}
	if c.Check == CheckHTTP && !strings.HasPrefix(c.HTTPPath, "/") {
		p.bad("consul_http_path", c.HTTPPath, "must start with /")
	}
	if c.Resync <= 0 {
		p.bad("consul_resync", c.Resync, "must be > 0")
	}
	p = append(p, config.OneOf("on_exit", c.OnExit, OnExitDeregister, OnExitKeep))
	return p
}

// validate checks agent mode's part, and the shared settings whose bounds
// are agent mode's.
func (a AgentConfig) validate(s SharedConfig) []error {
	var p problems
	if a.TTL <= 0 {
		p.bad("consul_ttl", a.TTL, "must be > 0")
	}
	if s.DeregisterAfter < MinDeregisterAfter {
		p.bad("consul_deregister_after", s.DeregisterAfter, "Consul's floor is 1m")
	}
	if a.LockKey != "" {
		if a.LockSessionTTL < MinSessionTTL {
			p.bad("consul_lock_session_ttl", a.LockSessionTTL, "Consul's floor is 10s")
		}
		if a.LockWait <= 0 {
			p = append(p, fmt.Errorf("Config.Agent.LockWait %s: must be > 0", a.LockWait))
		}
	}
	if a.Parallel < 1 || a.Parallel > MaxParallel {
		p.bad("consul_parallel", a.Parallel, fmt.Sprintf("want 1..%d", MaxParallel))
	}
	return p
}

// validate checks catalog mode's part, and the shared settings whose bounds
// are catalog mode's.
func (k CatalogConfig) validate(s SharedConfig) []error {
	var p problems
	if s.DeregisterAfter < MinCatalogDeregisterAfter {
		p.bad("consul_deregister_after", s.DeregisterAfter, "catalog mode's floor is 5s (the leader reaps)")
	}
	switch {
	case strings.HasPrefix(k.KVPrefix, "/") || strings.HasSuffix(k.KVPrefix, "/") || strings.Contains(k.KVPrefix, "//"):
		p.bad("consul_kv_prefix", k.KVPrefix, "want a KV path such as udp-discovery-bridge/django (no leading, trailing or doubled /)")
	default:
		if _, err := quoteFilterString(k.KVPrefix); err != nil {
			p.bad("consul_kv_prefix", k.KVPrefix, err.Error())
		}
	}
	if strings.Contains(s.BridgeID, "/") {
		p.bad("bridge_id", s.BridgeID, "must not contain / in catalog mode (it names a KV key)")
	}
	if k.SessionTTL < MinSessionTTL {
		p.bad("consul_lock_session_ttl", k.SessionTTL, "Consul's floor is 10s")
	}
	if k.LockWait <= 0 {
		p = append(p, fmt.Errorf("Config.Catalog.LockWait %s: must be > 0", k.LockWait))
	}
	if k.WriteRate < 0 || math.IsNaN(k.WriteRate) || math.IsInf(k.WriteRate, 0) {
		p.bad("consul_write_rate", k.WriteRate, "want writes per second, a number >= 0 (0: no cap)")
	}
	if k.Layout != LayoutSharedNode && k.Layout != LayoutNodePerServer {
		p = append(p, config.OneOf("consul_catalog_layout", k.Layout, LayoutSharedNode, LayoutNodePerServer))
	}
	if k.InFlight < 1 || k.InFlight > MaxParallel {
		p.bad("consul_parallel", k.InFlight, fmt.Sprintf("want 1..%d (transactions the leader keeps in flight)", MaxParallel))
	}
	return p
}
