package consul

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/agent"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// Section is the Consul sink's part of the configuration: its keys (with
// the defaults of DefaultConfig) and their loading into a Config, validated
// by Config.Validate plus the checks that need the core (interval, timeout).
// It keeps no loaded values: Load returns them.
type Section struct {
}

// Factory registers the Consul sink.
func Factory() sink.Factory {
	s := &Section{}
	return sink.NewFactory("consul", s, build, runDoctor)
}

// runDoctor implements sink.Factory.Doctor: it prints a line per operation
// Doctor tried.
func runDoctor(ctx context.Context, cfg Config, w io.Writer) (bool, error) {
	fs, err := Doctor(ctx, cfg)
	if err != nil {
		return false, err
	}
	ok := true
	fmt.Fprintf(w, "consul %s mode at %s (service %s, bridge_id %s):\n", cfg.Mode, cfg.Client.Addr, cfg.Service, cfg.BridgeID)
	for _, f := range fs {
		fmt.Fprintln(w, f)
		ok = ok && f.OK
	}
	return ok, nil
}

// Keys implements config.Section.
func (s *Section) Keys() []config.Key {
	const cat = "Consul sink"
	d := DefaultConfig()
	return []config.Key{
		{Name: "consul_mode", Flag: "consul-mode", Env: []string{"DISCOVERY_CLIENT_CONSUL_MODE"}, Default: d.Mode, OneOf: []string{ModeAgent, ModeCatalog}, Group: config.GroupRun, Category: cat,
			Usage: "agent (register with the local Consul agent) or catalog (no local agent: bridges publish observations and one elected bridge writes the catalog)"},

		{Name: "consul_addr", Flag: "consul-addr", Env: []string{"CONSUL_HTTP_ADDR"}, Default: "127.0.0.1:8500", Group: config.GroupRun, Category: cat,
			Usage: "Consul HTTP address: the local agent (agent mode) or the servers (catalog mode: several comma-separated host:port are tried in turn)"},
		{Name: "consul_token", Flag: "consul-token", Env: []string{"CONSUL_HTTP_TOKEN"}, Secret: true, Group: config.GroupRun, Category: cat,
			Usage: "Consul ACL token (prefer --consul-token-file)"},
		{Name: "consul_token_file", Flag: "consul-token-file", Env: []string{"CONSUL_HTTP_TOKEN_FILE"}, Group: config.GroupRun, Category: cat,
			Usage: "file holding the Consul ACL token; re-read when it changes (rotation), no restart needed"},
		{Name: "consul_ssl", Flag: "consul-ssl", Env: []string{"CONSUL_HTTP_SSL"}, Default: "false", Kind: config.KindBool, Group: config.GroupRun, Category: cat,
			Usage: "talk HTTPS to Consul"},
		{Name: "consul_cacert", Flag: "consul-cacert", Env: []string{"CONSUL_CACERT"}, Group: config.GroupRun, Category: cat,
			Usage: "CA certificate file for Consul's TLS"},
		{Name: "consul_client_cert", Flag: "consul-client-cert", Env: []string{"CONSUL_CLIENT_CERT"}, Group: config.GroupRun, Category: cat,
			Usage: "client certificate file for Consul mTLS"},
		{Name: "consul_client_key", Flag: "consul-client-key", Env: []string{"CONSUL_CLIENT_KEY"}, Group: config.GroupRun, Category: cat,
			Usage: "client key file for Consul mTLS"},
		{Name: "consul_tls_server_name", Flag: "consul-tls-server-name", Env: []string{"CONSUL_TLS_SERVER_NAME"}, Group: config.GroupRun, Category: cat,
			Usage: "server name to verify in Consul's certificate"},
		{Name: "consul_datacenter", Flag: "consul-datacenter", Env: []string{"CONSUL_DATACENTER"}, Group: config.GroupRun, Category: cat,
			Usage: "Consul datacenter (default: the agent's)"},
		{Name: "consul_namespace", Flag: "consul-namespace", Env: []string{"CONSUL_NAMESPACE"}, Group: config.GroupRun, Category: cat,
			Usage: "Consul Enterprise namespace (passed through)"},
		{Name: "consul_partition", Flag: "consul-partition", Env: []string{"CONSUL_PARTITION"}, Group: config.GroupRun, Category: cat,
			Usage: "Consul Enterprise admin partition (passed through)"},
		{Name: "consul_service", Flag: "consul-service", Env: []string{"DISCOVERY_CLIENT_CONSUL_SERVICE"}, Default: d.Service, NonEmpty: true, Group: config.GroupRun, Category: cat,
			Usage: "service name the discovered servers are registered under"},
		{Name: "consul_tags", Flag: "consul-tag", Env: []string{"DISCOVERY_CLIENT_CONSUL_TAGS"}, Kind: config.KindList, Group: config.GroupRun, Category: cat,
			Usage: "tag for every registered server (repeatable)"},
		{Name: "consul_ttl", Flag: "consul-ttl", Env: []string{"DISCOVERY_CLIENT_CONSUL_TTL"}, Default: "0", Kind: config.KindDuration, Min: "0", Group: config.GroupRun, Category: cat,
			Usage: "TTL of the bridge's heartbeat check (0: 3 x interval + timeout, at least 15s; with --consul-lock at least 2 x lock session TTL + 5s + 2 x interval + timeout, so a standby takes over before the servers turn critical)"},
		{Name: "consul_deregister_after", Flag: "consul-deregister-after", Env: []string{"DISCOVERY_CLIENT_CONSUL_DEREGISTER_AFTER"}, Default: config.FormatDuration(d.DeregisterAfter), Kind: config.KindDuration, Group: config.GroupRun, Category: cat,
			Usage: "a server is removed this long after its check turned critical: by Consul in agent mode (1m at least, Consul's floor), by the leader in catalog mode (5s at least)"},
		{Name: "consul_check", Flag: "consul-check", Env: []string{"DISCOVERY_CLIENT_CONSUL_CHECK"}, Group: config.GroupRun, Category: cat,
			Usage: "deprecated: use app_check (the bridge runs the check itself and every sink follows it); tcp or http is read as app_check tcp or http"},
		{Name: "consul_check_interval", Flag: "consul-check-interval", Env: []string{"DISCOVERY_CLIENT_CONSUL_CHECK_INTERVAL"}, Default: config.FormatDuration(d.CheckInterval), Kind: config.KindDuration, Group: config.GroupRun, Category: cat,
			Usage: "deprecated: use app_check_interval (read as it when consul_check is set)"},
		{Name: "consul_http_path", Flag: "consul-http-path", Env: []string{"DISCOVERY_CLIENT_CONSUL_HTTP_PATH"}, Default: d.HTTPPath, Group: config.GroupRun, Category: cat,
			Usage: "deprecated: use app_check_path (read as it when consul_check is http)"},
		{Name: "consul_resync", Flag: "consul-resync", Env: []string{"DISCOVERY_CLIENT_CONSUL_RESYNC"}, Default: config.FormatDuration(d.Resync), Kind: config.KindDuration, Min: "0", MinExclusive: true, Group: config.GroupRun, Category: cat,
			Usage: "how often to compare what the agent holds with what the bridge owns"},
		{Name: "consul_lock", Flag: "consul-lock", Env: []string{"DISCOVERY_CLIENT_CONSUL_LOCK"}, Group: config.GroupRun, Category: cat,
			Usage: "KV key of a lock: of several bridges on one LAN only the holder registers (empty: off)"},
		{Name: "consul_lock_session_ttl", Flag: "consul-lock-session-ttl", Env: []string{"DISCOVERY_CLIENT_CONSUL_LOCK_SESSION_TTL"}, Default: config.FormatDuration(d.Agent.LockSessionTTL), Kind: config.KindDuration, Group: config.GroupRun, Category: cat,
			Usage: "TTL of the lock's session (10s at least): agent mode's --consul-lock, catalog mode's session of each bridge (its observation and the leader key); a standby takes over within about twice this after the holder dies"},
		{Name: "consul_kv_prefix", Flag: "consul-kv-prefix", Env: []string{"DISCOVERY_CLIENT_CONSUL_KV_PREFIX"}, Group: config.GroupRun, Category: cat,
			Usage: "catalog mode: KV prefix of the observations and the leader lock (default udp-discovery-bridge/<consul_service>)"},
		{Name: "consul_segment_tag", Flag: "consul-segment-tag", Env: []string{"DISCOVERY_CLIENT_CONSUL_SEGMENT_TAG"}, Default: "false", Kind: config.KindBool, Group: config.GroupRun, Category: cat,
			Usage: "catalog mode: tag each server segment=<segment> for every segment it is seen on"},
		{Name: "consul_observers_meta", Flag: "consul-observers-meta", Env: []string{"DISCOVERY_CLIENT_CONSUL_OBSERVERS_META"}, Default: "false", Kind: config.KindBool, Group: config.GroupRun, Category: cat,
			Usage: "catalog mode: meta observers=<number of bridges that see the server>; every bridge joining or leaving then rewrites the servers it sees"},
		{Name: "consul_catalog_layout", Flag: "consul-catalog-layout", Env: []string{"DISCOVERY_CLIENT_CONSUL_CATALOG_LAYOUT"}, Default: d.Catalog.Layout, OneOf: []string{catalog.LayoutSharedNode, catalog.LayoutNodePerServer}, Group: config.GroupRun, Category: cat,
			Usage: "catalog mode: node-per-server (an external node per server, the fastest at any size) or shared-node (every server a service with its own check on one synthetic node, <consul_service>-servers: one node in the catalog instead of one per server, for fleets of up to a few hundred servers; Consul's cost of each write grows with the servers on that node)"},
		{Name: "consul_write_rate", Flag: "consul-write-rate", Env: []string{"DISCOVERY_CLIENT_CONSUL_WRITE_RATE"}, Default: "0", Group: config.GroupRun, Category: cat,
			Usage: "catalog mode: transactions per second the leader sends at most (0: no cap; it slows down by itself when Consul's request_limits refuse writes); keep it below the servers' write_rate so that session renewals always get through"},
		{Name: "consul_parallel", Flag: "consul-parallel", Env: []string{"DISCOVERY_CLIENT_CONSUL_PARALLEL"}, Default: strconv.Itoa(d.Agent.Parallel), Kind: config.KindInt, Min: "1", Max: strconv.Itoa(consulclient.MaxParallel), Group: config.GroupRun, Category: cat,
			Usage: "writes kept in flight (1..64): agent mode, registrations or deregistrations during one apply; catalog mode, the leader's transactions (of up to 64 operations each)"},
	}
}

// Load implements sink.Section: it reads every key (so a value that does
// not parse is refused in either mode), fills the shared part and the part
// of the configured mode, and validates them.
func (s *Section) Load(r *config.Reader) Config {
	d := DefaultConfig()
	c := Config{
		SharedConfig: consulclient.SharedConfig{
			Client: consulclient.ClientConfig{
				Addr:          r.String("consul_addr"),
				SSL:           r.Bool("consul_ssl"),
				Token:         r.String("consul_token"),
				TokenFile:     r.String("consul_token_file"),
				CACert:        r.String("consul_cacert"),
				ClientCert:    r.String("consul_client_cert"),
				ClientKey:     r.String("consul_client_key"),
				TLSServerName: r.String("consul_tls_server_name"),
				Datacenter:    r.String("consul_datacenter"),
				Namespace:     r.String("consul_namespace"),
				Partition:     r.String("consul_partition"),
			},
			Service:         r.String("consul_service"),
			Tags:            r.List("consul_tags"),
			BridgeID:        r.Core().BridgeID,
			DeregisterAfter: r.Duration("consul_deregister_after"),
			Check:           r.String("consul_check"),
			CheckInterval:   r.Duration("consul_check_interval"),
			HTTPPath:        r.String("consul_http_path"),
			Resync:          r.Duration("consul_resync"),
			OnExit:          r.Core().OnExit,
		},
		Mode: r.String("consul_mode"),
	}
	ttl := r.Duration("consul_ttl")
	lockKey := r.String("consul_lock")
	sessionTTL := r.Duration("consul_lock_session_ttl")
	parallel := r.Int("consul_parallel")
	kvPrefix := r.String("consul_kv_prefix")
	segment := r.Core().Segment
	segmentTag := r.Bool("consul_segment_tag")
	observersMeta := r.Bool("consul_observers_meta")
	layout := r.String("consul_catalog_layout")
	var writeRate float64
	if v := strings.TrimSpace(r.String("consul_write_rate")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			r.Bad("consul_write_rate", v, "want writes per second, a number >= 0 (0: no cap)")
		}
		writeRate = f
	}
	if c.Client.Token != "" && c.Client.TokenFile != "" {
		r.Report(fmt.Errorf("%s and %s: set one, not both", r.Origin("consul_token"), r.Origin("consul_token_file")))
	}
	core := r.Core()
	c.Round = core.Interval + core.Discovery.Timeout
	switch c.Mode {
	case ModeAgent:
		c.Agent = agent.Settings{LockKey: lockKey, LockSessionTTL: sessionTTL, LockWait: d.Agent.LockWait, Parallel: parallel}
		c.Agent.TTL = heartbeatTTL(r, ttl, c.Agent)
	case ModeCatalog:
		if kvPrefix == "" {
			kvPrefix = consulclient.DefaultKVPrefix(c.Service)
		}
		c.Catalog = catalog.Settings{KVPrefix: kvPrefix, Segment: segment, SegmentTag: segmentTag, ObserversMeta: observersMeta, Layout: layout,
			SessionTTL: sessionTTL, LockWait: d.Catalog.LockWait, WriteRate: writeRate, InFlight: parallel,
			// A new leader, or one that finds Consul back after an
			// outage, waits for every bridge to have had a round to
			// publish, after the session it may have to create first.
			StartupGrace: c.Round + c.RetryCap(),
			Guard: fleet.NewGuardConfig(c.Round, core.MissedRounds, core.RemovalGuardRounds, core.MaxRemovalFraction,
				core.RemovalGuardHeld != "unobserved")}
		c.Agent.LockKey = lockKey // refused by Validate: catalog mode has no consul_lock
	}
	r.Report(c.Validate())
	return c
}

// heartbeatTTL checks consul_ttl against the core's round and agent mode's
// lock, and returns the heartbeat TTL to use.
func heartbeatTTL(r *config.Reader, ttl time.Duration, a agent.Settings) time.Duration {
	core := r.Core()
	var takeover time.Duration
	if a.LockKey != "" {
		takeover = LockTakeover(a.LockSessionTTL, a.LockWait, core.Interval, core.Discovery.Timeout)
	}
	switch {
	case ttl < 0:
		r.Report(&config.KeyError{Key: "consul_ttl", Value: ttl, Why: "must be >= 0"})
	case ttl > 0 && ttl <= core.Interval+core.Discovery.Timeout:
		r.Report(&config.KeyError{Key: "consul_ttl", Value: ttl,
			Why: fmt.Sprintf("must exceed interval + timeout (%s), or every round would let the heartbeat lapse", core.Interval+core.Discovery.Timeout)})
	case ttl > 0 && takeover > 0 && ttl < takeover+core.Interval:
		r.Report(fmt.Errorf("%s %s is too short for %s %s: a standby takes the lock up to %s after the holder dies (2 x consul_lock_session_ttl + %s lock wait + interval + timeout), so the heartbeat TTL must be at least %s (that + interval) or every server turns critical before the standby re-registers it",
			r.Origin("consul_ttl"), config.FormatDuration(ttl), r.Origin("consul_lock_session_ttl"), config.FormatDuration(a.LockSessionTTL),
			config.FormatDuration(takeover), config.FormatDuration(a.LockWait), config.FormatDuration(takeover+core.Interval)))
	}
	return HeartbeatTTL(ttl, core.Interval, core.Discovery.Timeout, takeover)
}

// HeartbeatTTL is the TTL of the bridge's heartbeat check: ttl when set,
// else three intervals plus the round timeout, at least 15s, and with a
// lock (takeover > 0) at least takeover plus an interval: the holder's last
// heartbeat is up to an interval before it dies, and its servers must stay
// passing until the standby has re-registered them.
func HeartbeatTTL(ttl, interval, timeout, takeover time.Duration) time.Duration {
	if ttl > 0 {
		return ttl
	}
	d := max(3*interval+timeout, 15*time.Second)
	if takeover > 0 {
		d = max(d, takeover+interval)
	}
	return d
}

// LockTakeover bounds how long after an agent-mode lock holder dies a
// standby has re-registered its servers: Consul invalidates the dead
// holder's session within twice its TTL, the standby's blocking read of
// the lock key returns within lockWait, and its next round (interval +
// timeout) registers the servers.
func LockTakeover(sessionTTL, lockWait, interval, timeout time.Duration) time.Duration {
	return 2*sessionTTL + lockWait + interval + timeout
}

// build implements sink.Factory.Build: it validates cfg as a whole (the
// mode, and catalog mode's refusal of consul_lock) and builds the sink of
// its mode. A one-shot run (--once) leaves what it registered: the
// heartbeat TTL lets it expire unless another run refreshes it.
func build(cfg Config, d sink.Deps) (sink.Sink, error) {
	cfg.Clock = d.Clock
	cfg.AppCheck = d.AppCheck
	if d.Once {
		cfg.OnExit = consulclient.OnExitKeep
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	if cfg.Mode == ModeCatalog {
		cfg.Catalog.Once = d.Once
		return catalog.New(cfg.catalogConfig(), d.Log, d.Registerer)
	}
	return agent.New(cfg.agentConfig(), d.Log)
}
