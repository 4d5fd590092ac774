package config

import (
	"strings"

	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/setting"
)

// Key is a configuration key declared once (pkg/setting); the core's and
// every Section's keys are Keys.
type Key = setting.Key

// Kind says how a key's value is parsed.
type Kind = setting.Kind

// The kinds of pkg/setting, under this package's names.
const (
	KindString   = setting.String
	KindInt      = setting.Int
	KindPort     = setting.Port
	KindBool     = setting.Bool
	KindDuration = setting.Duration
	KindList     = setting.List
	KindFloat    = setting.Float
)

// Group says which subcommands take a key as a flag.
type Group = setting.Group

// The groups of pkg/setting, under this package's names.
const (
	GroupGlobal    = setting.Global    // every command
	GroupDiscovery = setting.Discovery // discover, doctor, run
	GroupRun       = setting.Run       // run (the sidecar and its sinks)
)

// minInterval is the floor of interval: a round a tenth of a second is
// already far more than any registry needs, and a shorter one only burns
// CPU and floods the LAN with broadcasts.
const minInterval = "100ms"

// The values of on_exit.
const (
	OnExitDeregister = "deregister"
	OnExitKeep       = "keep"
)

// PrometheusSDPath is where the metrics server (or prometheus_sd_addr)
// serves the Prometheus http_sd list.
const PrometheusSDPath = "/sd/prometheus"

// promSDCategory titles the Prometheus service discovery keys.
const promSDCategory = "Prometheus service discovery"

// coreKeys returns the keys every build of the bridge has (logging,
// discovery, the sidecar loop), in documentation order; sinkNames are the
// valid values of sinks. The discovery keys are pkg/discover's (Keys),
// which keep the upstream django-udp-discovery client's names, defaults
// and environment variables; the app check keys are pkg/appcheck's (Keys);
// each sink's own keys come from its Section.
func coreKeys(sinkNames []string) []Key {
	keys := []Key{
		// Global.
		{Name: "log_level", Flag: "log-level", Env: []string{"BRIDGE_LOG_LEVEL"}, Default: "info", OneOf: []string{"debug", "info", "warn", "error"}, Group: GroupGlobal,
			Usage: "log level: debug, info, warn or error"},
		{Name: "log_format", Flag: "log-format", Env: []string{"BRIDGE_LOG_FORMAT"}, Default: "console", OneOf: []string{"console", "json"}, Group: GroupGlobal,
			Usage: "log format on stderr: console or json"},
	}
	keys = append(keys, discover.Keys()...)
	keys = append(keys, []Key{
		// Sidecar.
		{Name: "interval", Flag: "interval", Env: []string{"DISCOVERY_CLIENT_INTERVAL"}, Default: "10s", Kind: KindDuration, Min: minInterval, Group: GroupRun,
			Usage: "time between round starts: at least " + minInterval + ", and more than --timeout"},
		{Name: "missed_rounds", Flag: "missed-rounds", Env: []string{"DISCOVERY_CLIENT_MISSED_ROUNDS"}, Default: "3", Kind: KindInt, Min: "1", Group: GroupRun,
			Usage: "consecutive rounds without a reply before a server is removed"},
		{Name: "max_removal_fraction", Flag: "max-removal-fraction", Env: []string{"DISCOVERY_CLIENT_MAX_REMOVAL_FRACTION"}, Default: "0.5", Kind: KindFloat, Min: "0", MinExclusive: true, Max: "1", Hint: "(1 turns the removal guard off)", Group: GroupRun,
			Usage: "removal guard: a round that would remove more than this fraction of the known servers (and at least 2) holds the removals; 0 < f <= 1, 1 turns the guard off"},
		{Name: "removal_guard_rounds", Flag: "removal-guard-rounds", Env: []string{"DISCOVERY_CLIENT_REMOVAL_GUARD_ROUNDS"}, Default: "10", Kind: KindInt, Min: "0", Hint: "(0 turns the removal guard off)", Group: GroupRun,
			Usage: "removal guard: further rounds a held removal must stay unseen before it goes ahead; 0 turns the guard off"},
		{Name: "removal_guard_held", Flag: "removal-guard-held", Env: []string{"DISCOVERY_CLIENT_REMOVAL_GUARD_HELD"}, Default: "ready", OneOf: []string{"ready", "unobserved"}, Group: GroupRun,
			Usage: "removal guard: what the sinks say of a held server: ready (fail open: it stays passing and ready, its app check set aside) or unobserved (not ready, as the bridges see it, still not removed)"},
		{Name: "max_servers", Flag: "max-servers", Env: []string{"DISCOVERY_CLIENT_MAX_SERVERS"}, Default: "10000", Kind: KindInt, Min: "1", Group: GroupRun,
			Usage: "servers the bridge holds at most; new ones beyond it are refused and counted (those held stay) and /readyz says so; with max_servers_per_source, each source's share of them"},
		{Name: "sinks", Flag: "sink", Env: []string{"DISCOVERY_CLIENT_SINKS"}, Default: "stdout", Kind: KindList, NonEmpty: true, Unique: true, OneOf: sinkNames, Hint: "(at least one sink is needed: " + orList(sinkNames) + ")", Group: GroupRun,
			Usage: "where to export: " + strings.Join(sinkNames, ", ") + " (repeatable or comma-separated)"},
		{Name: "bridge_id", Flag: "bridge-id", Env: []string{"DISCOVERY_CLIENT_BRIDGE_ID"}, Group: GroupRun,
			Usage: "this bridge's identity in registries, read by every sink that keeps a fleet (consul, kubernetes; default: the host name)"},
		{Name: "segment", Flag: "segment", Env: []string{"DISCOVERY_CLIENT_SEGMENT"}, Group: GroupRun,
			Usage: "this bridge's LAN segment name, for the sinks that keep a fleet (Consul catalog mode, Kubernetes) and the Prometheus labels (default: the network of the interface each reply came in on)"},
		{Name: "on_exit", Flag: "on-exit", Env: []string{"DISCOVERY_CLIENT_ON_EXIT"}, Default: OnExitDeregister, OneOf: []string{OnExitDeregister, OnExitKeep}, Group: GroupRun,
			Usage: "on SIGTERM: deregister what this bridge registered (Consul agent mode; a fleet's sinks withdraw its observation), or keep it for the heartbeat to expire"},
		{Name: "metrics_addr", Flag: "metrics-addr", Env: []string{"DISCOVERY_CLIENT_METRICS_ADDR"}, Default: ":9108", Group: GroupRun,
			Usage: "listen address for /metrics, /healthz, /readyz; the default :9108 listens on every interface, 127.0.0.1:9108 on loopback only (empty disables)"},
		{Name: "debug_endpoint", Flag: "debug-endpoint", Env: []string{"DISCOVERY_CLIENT_DEBUG_ENDPOINT"}, Default: "false", Kind: KindBool, Group: GroupRun,
			Usage: "serve /debug/explain on metrics_addr for `bridge explain` (why a server is, or is not, ready); it needs the prometheus_sd token when one is set"},
	}...)
	// App check (pkg/appcheck, run by internal/checker).
	keys = append(keys, appcheck.Keys()...)
	keys = append(keys, []Key{
		// Prometheus service discovery (internal/promsd).
		{Name: "prometheus_sd", Flag: "prometheus-sd", Env: []string{"DISCOVERY_CLIENT_PROMETHEUS_SD"}, Default: "false", Kind: KindBool, Group: GroupRun, Category: promSDCategory,
			Usage: "serve the servers as Prometheus http_sd targets at " + PrometheusSDPath + " (on metrics_addr, or on prometheus_sd_addr when set)"},
		{Name: "prometheus_sd_addr", Flag: "prometheus-sd-addr", Env: []string{"DISCOVERY_CLIENT_PROMETHEUS_SD_ADDR"}, Group: GroupRun, Category: promSDCategory,
			Usage: "own listen address for " + PrometheusSDPath + " (it is then not served on metrics_addr); empty: served on metrics_addr"},
		{Name: "prometheus_sd_token", Flag: "prometheus-sd-token", Env: []string{"DISCOVERY_CLIENT_PROMETHEUS_SD_TOKEN"}, Secret: true, Group: GroupRun, Category: promSDCategory,
			Usage: "bearer token a request to " + PrometheusSDPath + " must carry (401 without it); never logged"},
		{Name: "prometheus_sd_token_file", Flag: "prometheus-sd-token-file", Env: []string{"DISCOVERY_CLIENT_PROMETHEUS_SD_TOKEN_FILE"}, Group: GroupRun, Category: promSDCategory,
			Usage: "file holding the bearer token, read at every request (a rotated file takes effect at once)"},
		{Name: "sd_targets", Flag: "sd-targets", Env: []string{"DISCOVERY_CLIENT_SD_TARGETS"}, Default: SDTargetsReady, OneOf: []string{SDTargetsReady, SDTargetsAll}, Group: GroupRun, Category: promSDCategory,
			Usage: "which servers " + PrometheusSDPath + " and file_format prometheus list: ready (the servers whose app check passes; every server when app_check is none) or all (every server the bridge holds, labelled __meta_udb_health=ready, pending or failing)"},
	}...)
	// The relay (internal/relay).
	return append(keys, relayKeys()...)
}
