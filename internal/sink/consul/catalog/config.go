package catalog

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// MinDeregisterAfter is catalog mode's floor of consul_deregister_after:
// the leader reaps, not an agent, so Consul's 1m floor does not apply.
const MinDeregisterAfter = 5 * time.Second

// Catalog layouts (consul_catalog_layout): how the leader spells servers in
// the catalog.
const (
	LayoutSharedNode    = "shared-node"
	LayoutNodePerServer = "node-per-server"
	// DefaultLayout is consul_catalog_layout's default.
	DefaultLayout = LayoutNodePerServer
)

// Config configures the sink in catalog mode: what both modes share
// (SharedConfig, embedded: the client, the service, the checks) and catalog
// mode's part. Zero fields take the defaults of DefaultSettings and
// consulclient.DefaultSharedConfig.
type Config struct {
	consulclient.SharedConfig
	Catalog Settings
}

// Settings is catalog mode's part: the fleet's KV prefix, this bridge's
// session, and the leader's writes. The comment of each field names its
// configuration key; fields without one are for Go callers (and tests)
// only.
type Settings struct {
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

// DefaultSettings returns catalog mode's defaults, every field with a
// default filled but KVPrefix, whose default follows the service
// (consulclient.DefaultKVPrefix). They are written here once: the
// configuration keys take their defaults from them, and New fills zero
// fields from them.
func DefaultSettings() Settings {
	return Settings{
		Layout:     DefaultLayout,
		SessionTTL: consulclient.MinSessionTTL,
		LockWait:   5 * time.Second,
		InFlight:   consulclient.DefaultParallel,
	}
}

// WithDefaults returns c with its zero fields set from the defaults: the
// shared part's and catalog mode's.
func (c Config) WithDefaults() Config {
	c.SharedConfig = c.SharedConfig.WithDefaults()
	d, k := DefaultSettings(), &c.Catalog
	k.KVPrefix = cmp.Or(k.KVPrefix, consulclient.DefaultKVPrefix(c.Service))
	k.SessionTTL = cmp.Or(k.SessionTTL, d.SessionTTL)
	k.LockWait = cmp.Or(k.LockWait, d.LockWait)
	k.InFlight = cmp.Or(k.InFlight, d.InFlight)
	k.Layout = cmp.Or(k.Layout, d.Layout)
	return c
}

// Validate reports every problem of a (defaulted) configuration at once,
// each a *config.KeyError naming the configuration key (or, for fields
// without a key, the Go field): the shared part's, then catalog mode's.
func (c Config) Validate() error {
	return errors.Join(c.SharedConfig.Validate(), c.Catalog.validate(c.SharedConfig))
}

// validate checks catalog mode's part, and the shared settings s whose
// bounds are catalog mode's.
func (k Settings) validate(s consulclient.SharedConfig) error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, &config.KeyError{Key: key, Value: v, Why: why})
	}
	if s.DeregisterAfter < MinDeregisterAfter {
		bad("consul_deregister_after", s.DeregisterAfter, "catalog mode's floor is 5s (the leader reaps)")
	}
	switch {
	case strings.HasPrefix(k.KVPrefix, "/") || strings.HasSuffix(k.KVPrefix, "/") || strings.Contains(k.KVPrefix, "//"):
		bad("consul_kv_prefix", k.KVPrefix, "want a KV path such as udp-discovery-bridge/django (no leading, trailing or doubled /)")
	default:
		if _, err := consulclient.QuoteFilterString(k.KVPrefix); err != nil {
			bad("consul_kv_prefix", k.KVPrefix, err.Error())
		}
	}
	if strings.Contains(s.BridgeID, "/") {
		bad("bridge_id", s.BridgeID, "must not contain / in catalog mode (it names a KV key)")
	}
	if k.SessionTTL < consulclient.MinSessionTTL {
		bad("consul_lock_session_ttl", k.SessionTTL, "Consul's floor is 10s")
	}
	if k.LockWait <= 0 {
		errs = append(errs, fmt.Errorf("Config.Catalog.LockWait %s: must be > 0", k.LockWait))
	}
	if k.WriteRate < 0 || math.IsNaN(k.WriteRate) || math.IsInf(k.WriteRate, 0) {
		bad("consul_write_rate", k.WriteRate, "want writes per second, a number >= 0 (0: no cap)")
	}
	if k.Layout != LayoutSharedNode && k.Layout != LayoutNodePerServer {
		errs = append(errs, config.OneOf("consul_catalog_layout", k.Layout, LayoutSharedNode, LayoutNodePerServer))
	}
	if k.InFlight < 1 || k.InFlight > consulclient.MaxParallel {
		bad("consul_parallel", k.InFlight, fmt.Sprintf("want 1..%d (transactions the leader keeps in flight)", consulclient.MaxParallel))
	}
	return errors.Join(errs...)
}
