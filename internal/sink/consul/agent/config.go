package agent

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// MinDeregisterAfter is Consul's own floor for
// DeregisterCriticalServiceAfter.
const MinDeregisterAfter = time.Minute

// Config configures the sink in agent mode: what both modes share
// (SharedConfig, embedded: the client, the service, the checks) and agent
// mode's part. Zero fields take the defaults of DefaultSettings and
// consulclient.DefaultSharedConfig.
type Config struct {
	consulclient.SharedConfig
	Agent Settings
}

// Settings is agent mode's part: the bridge's heartbeat, the optional
// lock, and the writes of one Apply. The comment of each field names its
// configuration key; fields without one are for Go callers (and tests)
// only.
type Settings struct {
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

// DefaultSettings returns agent mode's defaults, every field with a default
// filled. They are written here once: the configuration keys take their
// defaults from them, and New fills zero fields from them.
func DefaultSettings() Settings {
	return Settings{
		TTL:            30 * time.Second,
		LockSessionTTL: consulclient.MinSessionTTL,
		LockWait:       5 * time.Second,
		Parallel:       consulclient.DefaultParallel,
	}
}

// WithDefaults returns c with its zero fields set from the defaults: the
// shared part's and agent mode's.
func (c Config) WithDefaults() Config {
	c.SharedConfig = c.SharedConfig.WithDefaults()
	d, a := DefaultSettings(), &c.Agent
	a.TTL = cmp.Or(a.TTL, d.TTL)
	a.LockSessionTTL = cmp.Or(a.LockSessionTTL, d.LockSessionTTL)
	a.LockWait = cmp.Or(a.LockWait, d.LockWait)
	a.Parallel = cmp.Or(a.Parallel, d.Parallel)
	return c
}

// Validate reports every problem of a (defaulted) configuration at once,
// each a *config.KeyError naming the configuration key (or, for fields
// without a key, the Go field): the shared part's, then agent mode's.
func (c Config) Validate() error {
	return errors.Join(c.SharedConfig.Validate(), c.Agent.validate(c.SharedConfig))
}

// validate checks agent mode's part, and the shared settings s whose
// bounds are agent mode's.
func (a Settings) validate(s consulclient.SharedConfig) error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, &config.KeyError{Key: key, Value: v, Why: why})
	}
	if a.TTL <= 0 {
		bad("consul_ttl", a.TTL, "must be > 0")
	}
	if s.DeregisterAfter < MinDeregisterAfter {
		bad("consul_deregister_after", s.DeregisterAfter, "Consul's floor is 1m")
	}
	if a.LockKey != "" {
		if a.LockSessionTTL < consulclient.MinSessionTTL {
			bad("consul_lock_session_ttl", a.LockSessionTTL, "Consul's floor is 10s")
		}
		if a.LockWait <= 0 {
			errs = append(errs, fmt.Errorf("Config.Agent.LockWait %s: must be > 0", a.LockWait))
		}
	}
	if a.Parallel < 1 || a.Parallel > consulclient.MaxParallel {
		bad("consul_parallel", a.Parallel, fmt.Sprintf("want 1..%d", consulclient.MaxParallel))
	}
	return errors.Join(errs...)
}
