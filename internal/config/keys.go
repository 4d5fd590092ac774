package config

import (
	"strings"

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

// coreKeys returns the keys every build of the bridge has (logging,
// discovery, the sidecar loop), in documentation order; sinkNames are the
// valid values of sinks. Each sink's own keys come from its Section. The
// discovery keys keep the upstream django-udp-discovery client's names,
// defaults and environment variables.
func coreKeys(sinkNames []string) []Key {
	return []Key{
		// Global.
		{Name: "log_level", Flag: "log-level", Env: []string{"BRIDGE_LOG_LEVEL"}, Default: "info", OneOf: []string{"debug", "info", "warn", "error"}, Group: GroupGlobal,
			Usage: "log level: debug, info, warn or error"},
		{Name: "log_format", Flag: "log-format", Env: []string{"BRIDGE_LOG_FORMAT"}, Default: "console", OneOf: []string{"console", "json"}, Group: GroupGlobal,
			Usage: "log format on stderr: console or json"},

		// Discovery (upstream names).
		{Name: "discovery_port", Flag: "port", Env: []string{"DISCOVERY_CLIENT_PORT"}, Default: "9999", Kind: KindPort, Group: GroupDiscovery,
			Usage: "UDP port the servers listen on"},
		{Name: "discovery_message", Flag: "message", Env: []string{"DISCOVERY_CLIENT_MESSAGE"}, Default: "DISCOVER_SERVER", NonEmpty: true, Group: GroupDiscovery,
			Usage: "probe payload (compared byte for byte by the server)"},
		{Name: "response_prefix", Flag: "response-prefix", Env: []string{"DISCOVERY_CLIENT_RESPONSE_PREFIX"}, Default: "SERVER_IP:", NonEmpty: true, Group: GroupDiscovery,
			Usage: "prefix of a valid reply"},
		{Name: "timeout", Flag: "timeout", Env: []string{"DISCOVERY_CLIENT_TIMEOUT"}, Default: "5", Kind: KindDuration, Min: "0", MinExclusive: true, Max: "10m", Group: GroupDiscovery,
			Usage: "deadline for a whole round: seconds (5, 0.5) or a duration (500ms); at most 10m"},
		{Name: "retries", Flag: "retries", Env: []string{"DISCOVERY_CLIENT_RETRIES"}, Default: "3", Kind: KindInt, Min: "0", Max: "100", Group: GroupDiscovery,
			Usage: "extra probe sends spread over the round"},
		{Name: "enable_subnet_scan", Flag: "enable-subnet-scan", Env: []string{"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN"}, Default: "true", Kind: KindBool, Group: GroupDiscovery,
			Usage: "send unicast probes to every host of --scan-cidr networks"},
		{Name: "scan_cidrs", Flag: "scan-cidr", Env: []string{"DISCOVERY_CLIENT_SCAN_CIDRS"}, Kind: KindList, Group: GroupDiscovery,
			Usage: "IPv4 network to scan by unicast (repeatable; at most 65536 hosts in all)"},
		{Name: "scan_rate", Flag: "scan-rate", Env: []string{"DISCOVERY_CLIENT_SCAN_RATE"}, Default: "1000", Kind: KindInt, Min: "0", MinExclusive: true, Group: GroupDiscovery,
			Usage: "subnet-scan probes per second"},
		{Name: "interfaces_whitelist", Flag: "whitelist", Aliases: []string{"interfaces-whitelist"}, Env: []string{"DISCOVERY_CLIENT_INTERFACES_WHITELIST"}, Kind: KindList, Group: GroupDiscovery,
			Usage: "only these interfaces (exact names, comma-separated or repeated)"},
		{Name: "interfaces_blacklist", Flag: "blacklist", Aliases: []string{"interfaces-blacklist"}, Env: []string{"DISCOVERY_CLIENT_INTERFACES_BLACKLIST"}, Kind: KindList, Group: GroupDiscovery,
			Usage: "never these interfaces (applied after the whitelist)"},
		{Name: "interfaces_regex", Flag: "interfaces-regex", Env: []string{"DISCOVERY_CLIENT_INTERFACES_REGEX"}, Group: GroupDiscovery,
			Usage: "only interfaces whose whole name matches this RE2 pattern, | between alternatives (eth[0-9]+|ens[0-9]+|bond[0-9]+(\\.[0-9]+)?)"},
		{Name: "interfaces_cidrs", Flag: "interfaces-cidr", Env: []string{"DISCOVERY_CLIENT_INTERFACES_CIDRS"}, Kind: KindList, Group: GroupDiscovery,
			Usage: "only interface addresses inside one of these IPv4 networks (repeatable or comma-separated)"},
		{Name: "interfaces_can_reach", Flag: "interfaces-can-reach", Env: []string{"DISCOVERY_CLIENT_INTERFACES_CAN_REACH"}, Group: GroupDiscovery,
			Usage: "only the interface the kernel routes this IPv4 address through (looked up each round; nothing is sent to it)"},
		{Name: "interfaces_skip_regex", Flag: "interfaces-skip-regex", Env: []string{"DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX"}, Group: GroupDiscovery,
			Usage: "never interfaces whose whole name matches this RE2 pattern"},
		{Name: "interfaces_skip_container", Flag: "interfaces-skip-container", Env: []string{"DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER"}, Default: "false", Kind: KindBool, Group: GroupDiscovery,
			Usage: "never container, CNI and cluster-internal interfaces (docker0, cni0, veth*, cali*, flannel.*, kube-ipvs0, cilium_*, ...; the Helm chart turns it on)"},
		{Name: "default_port", Flag: "default-port", Env: []string{"DISCOVERY_CLIENT_DEFAULT_PORT"}, Default: "8000", Kind: KindPort, Group: GroupDiscovery,
			Usage: "port registered when a reply carries none (the stock server never sends one)"},
		{Name: "address_from", Flag: "address-from", Env: []string{"DISCOVERY_CLIENT_ADDRESS_FROM"}, Default: "auto", OneOf: []string{"auto", "payload", "source"}, Group: GroupDiscovery,
			Usage: "address to register: auto (payload IP unless loopback/unspecified/multicast/broadcast, then source), payload or source"},
		{Name: "encryption_enabled", Flag: "encryption", Env: []string{"DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "DISCOVERY_ENCRYPTION_ENABLED"}, Default: "false", Kind: KindBool, Group: GroupDiscovery,
			Usage: "Fernet-encrypted probes and replies (needs a secret key)"},
		{Name: "secret_key", Flag: "secret-key", Env: []string{"DISCOVERY_CLIENT_SECRET_KEY", "DISCOVERY_SECRET_KEY"}, Secret: true, Group: GroupDiscovery,
			Usage: "Fernet key shared with the servers (prefer --secret-key-file)"},
		{Name: "secret_key_file", Flag: "secret-key-file", Env: []string{"DISCOVERY_CLIENT_SECRET_KEY_FILE"}, Group: GroupDiscovery,
			Usage: "file holding the Fernet key"},
		{Name: "max_token_age", Flag: "max-token-age", Env: []string{"DISCOVERY_CLIENT_MAX_TOKEN_AGE"}, Default: "60s", Kind: KindDuration, Min: "0", MinExclusive: true, Group: GroupDiscovery,
			Usage: "encrypted mode: reject replies older than this (replay bound)"},
		{Name: "clock_skew", Flag: "clock-skew", Env: []string{"DISCOVERY_CLIENT_CLOCK_SKEW"}, Default: "30s", Kind: KindDuration, Min: "0", Group: GroupDiscovery,
			Usage: "encrypted mode: tolerated clock difference with the servers"},
		{Name: "settle", Flag: "settle", Env: []string{"DISCOVERY_CLIENT_SETTLE"}, Default: "0", Kind: KindDuration, Min: "0", Group: GroupDiscovery,
			Usage: "end a round early once no new server appeared for this long after the last probe (0: off)"},
		{Name: "max_replies", Flag: "max-replies", Env: []string{"DISCOVERY_CLIENT_MAX_REPLIES"}, Default: "100000", Kind: KindInt, Min: "0", MinExclusive: true, Group: GroupDiscovery,
			Usage: "servers kept per round; more are counted and dropped"},

		// Sidecar.
		{Name: "interval", Flag: "interval", Env: []string{"DISCOVERY_CLIENT_INTERVAL"}, Default: "10s", Kind: KindDuration, Min: "100ms", Group: GroupRun,
			Usage: "time between round starts: at least 100ms, and more than --timeout"},
		{Name: "missed_rounds", Flag: "missed-rounds", Env: []string{"DISCOVERY_CLIENT_MISSED_ROUNDS"}, Default: "3", Kind: KindInt, Min: "1", Group: GroupRun,
			Usage: "consecutive rounds without a reply before a server is removed"},
		{Name: "max_removal_fraction", Flag: "max-removal-fraction", Env: []string{"DISCOVERY_CLIENT_MAX_REMOVAL_FRACTION"}, Default: "0.5", Kind: KindFloat, Min: "0", MinExclusive: true, Max: "1", Hint: "(1 turns the removal guard off)", Group: GroupRun,
			Usage: "removal guard: a round that would remove more than this fraction of the known servers (and at least 2) holds the removals; 0 < f <= 1, 1 turns the guard off"},
		{Name: "removal_guard_rounds", Flag: "removal-guard-rounds", Env: []string{"DISCOVERY_CLIENT_REMOVAL_GUARD_ROUNDS"}, Default: "10", Kind: KindInt, Min: "0", Hint: "(0 turns the removal guard off)", Group: GroupRun,
			Usage: "removal guard: further rounds a held removal must stay unseen before it goes ahead; 0 turns the guard off"},
		{Name: "sinks", Flag: "sink", Env: []string{"DISCOVERY_CLIENT_SINKS"}, Default: "stdout", Kind: KindList, NonEmpty: true, OneOf: sinkNames, Group: GroupRun,
			Usage: "where to export: " + strings.Join(sinkNames, ", ") + " (repeatable or comma-separated)"},
		{Name: "metrics_addr", Flag: "metrics-addr", Env: []string{"DISCOVERY_CLIENT_METRICS_ADDR"}, Default: ":9108", Group: GroupRun,
			Usage: "listen address for /metrics, /healthz, /readyz; the default :9108 listens on every interface, 127.0.0.1:9108 on loopback only (empty disables)"},
	}
}
