package config

// Kind says how a key's value is parsed.
type Kind int

const (
	KindString   Kind = iota
	KindInt           // decimal integer
	KindPort          // 1..65535
	KindBool          // true/false, 1/0, yes/no, on/off
	KindDuration      // seconds as a number ("5", "0.5") or a Go duration ("500ms")
	KindList          // comma-separated in env, repeatable flag, YAML list
)

// Group says which subcommands take a key as a flag.
type Group int

const (
	GroupGlobal    Group = iota // every command
	GroupDiscovery              // discover, doctor, run
	GroupRun                    // run
	GroupConsul                 // run (consul sink)
)

// Key describes one configuration key: its name in the config file, its
// flag, its environment variables (first set wins) and its default.
type Key struct {
	Name    string
	Flag    string
	Aliases []string
	Env     []string
	Default string
	Kind    Kind
	Group   Group
	// Secret keys are never echoed in errors or logs.
	Secret bool
	Usage  string
}

// Keys returns the full configuration surface, in documentation order. The
// discovery keys keep the upstream django-udp-discovery client's names,
// defaults and environment variables.
func Keys() []Key {
	return []Key{
		// Global.
		{Name: "log_level", Flag: "log-level", Env: []string{"BRIDGE_LOG_LEVEL"}, Default: "info", Group: GroupGlobal,
			Usage: "log level: debug, info, warn or error"},
		{Name: "log_format", Flag: "log-format", Env: []string{"BRIDGE_LOG_FORMAT"}, Default: "console", Group: GroupGlobal,
			Usage: "log format on stderr: console or json"},

		// Discovery (upstream names).
		{Name: "discovery_port", Flag: "port", Env: []string{"DISCOVERY_CLIENT_PORT"}, Default: "9999", Kind: KindPort, Group: GroupDiscovery,
			Usage: "UDP port the servers listen on"},
		{Name: "discovery_message", Flag: "message", Env: []string{"DISCOVERY_CLIENT_MESSAGE"}, Default: "DISCOVER_SERVER", Group: GroupDiscovery,
			Usage: "probe payload (compared byte for byte by the server)"},
		{Name: "response_prefix", Flag: "response-prefix", Env: []string{"DISCOVERY_CLIENT_RESPONSE_PREFIX"}, Default: "SERVER_IP:", Group: GroupDiscovery,
			Usage: "prefix of a valid reply"},
		{Name: "timeout", Flag: "timeout", Env: []string{"DISCOVERY_CLIENT_TIMEOUT"}, Default: "5", Kind: KindDuration, Group: GroupDiscovery,
			Usage: "deadline for a whole round: seconds (5, 0.5) or a duration (500ms)"},
		{Name: "retries", Flag: "retries", Env: []string{"DISCOVERY_CLIENT_RETRIES"}, Default: "3", Kind: KindInt, Group: GroupDiscovery,
			Usage: "extra probe sends spread over the round"},
		{Name: "enable_subnet_scan", Flag: "enable-subnet-scan", Env: []string{"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN"}, Default: "true", Kind: KindBool, Group: GroupDiscovery,
			Usage: "send unicast probes to every host of --scan-cidr networks"},
		{Name: "scan_cidrs", Flag: "scan-cidr", Env: []string{"DISCOVERY_CLIENT_SCAN_CIDRS"}, Kind: KindList, Group: GroupDiscovery,
			Usage: "IPv4 network to scan by unicast (repeatable; at most 65536 hosts in all)"},
		{Name: "scan_rate", Flag: "scan-rate", Env: []string{"DISCOVERY_CLIENT_SCAN_RATE"}, Default: "1000", Kind: KindInt, Group: GroupDiscovery,
			Usage: "subnet-scan probes per second"},
		{Name: "interfaces_whitelist", Flag: "whitelist", Aliases: []string{"interfaces-whitelist"}, Env: []string{"DISCOVERY_CLIENT_INTERFACES_WHITELIST"}, Kind: KindList, Group: GroupDiscovery,
			Usage: "only these interfaces (exact names, comma-separated or repeated)"},
		{Name: "interfaces_blacklist", Flag: "blacklist", Aliases: []string{"interfaces-blacklist"}, Env: []string{"DISCOVERY_CLIENT_INTERFACES_BLACKLIST"}, Kind: KindList, Group: GroupDiscovery,
			Usage: "never these interfaces (applied after the whitelist)"},
		{Name: "default_port", Flag: "default-port", Env: []string{"DISCOVERY_CLIENT_DEFAULT_PORT"}, Default: "8000", Kind: KindPort, Group: GroupDiscovery,
			Usage: "port registered when a reply carries none (the stock server never sends one)"},
		{Name: "address_from", Flag: "address-from", Env: []string{"DISCOVERY_CLIENT_ADDRESS_FROM"}, Default: "auto", Group: GroupDiscovery,
			Usage: "address to register: auto (payload IP unless loopback/unspecified/multicast/broadcast, then source), payload or source"},
		{Name: "encryption_enabled", Flag: "encryption", Env: []string{"DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "DISCOVERY_ENCRYPTION_ENABLED"}, Default: "false", Kind: KindBool, Group: GroupDiscovery,
			Usage: "Fernet-encrypted probes and replies (needs a secret key)"},
		{Name: "secret_key", Flag: "secret-key", Env: []string{"DISCOVERY_CLIENT_SECRET_KEY", "DISCOVERY_SECRET_KEY"}, Secret: true, Group: GroupDiscovery,
			Usage: "Fernet key shared with the servers (prefer --secret-key-file)"},
		{Name: "secret_key_file", Flag: "secret-key-file", Env: []string{"DISCOVERY_CLIENT_SECRET_KEY_FILE"}, Group: GroupDiscovery,
			Usage: "file holding the Fernet key"},
		{Name: "max_token_age", Flag: "max-token-age", Env: []string{"DISCOVERY_CLIENT_MAX_TOKEN_AGE"}, Default: "60s", Kind: KindDuration, Group: GroupDiscovery,
			Usage: "encrypted mode: reject replies older than this (replay bound)"},
		{Name: "clock_skew", Flag: "clock-skew", Env: []string{"DISCOVERY_CLIENT_CLOCK_SKEW"}, Default: "30s", Kind: KindDuration, Group: GroupDiscovery,
			Usage: "encrypted mode: tolerated clock difference with the servers"},
		{Name: "settle", Flag: "settle", Env: []string{"DISCOVERY_CLIENT_SETTLE"}, Default: "0", Kind: KindDuration, Group: GroupDiscovery,
			Usage: "end a round early once no new server appeared for this long after the last probe (0: off)"},
		{Name: "max_replies", Flag: "max-replies", Env: []string{"DISCOVERY_CLIENT_MAX_REPLIES"}, Default: "100000", Kind: KindInt, Group: GroupDiscovery,
			Usage: "servers kept per round; more are counted and dropped"},

		// Sidecar.
		{Name: "interval", Flag: "interval", Env: []string{"DISCOVERY_CLIENT_INTERVAL"}, Default: "10s", Kind: KindDuration, Group: GroupRun,
			Usage: "time between round starts"},
		{Name: "missed_rounds", Flag: "missed-rounds", Env: []string{"DISCOVERY_CLIENT_MISSED_ROUNDS"}, Default: "3", Kind: KindInt, Group: GroupRun,
			Usage: "consecutive rounds without a reply before a server is removed"},
		{Name: "sinks", Flag: "sink", Env: []string{"DISCOVERY_CLIENT_SINKS"}, Default: "stdout", Kind: KindList, Group: GroupRun,
			Usage: "where to export: stdout, file, consul (repeatable or comma-separated)"},
		{Name: "file_path", Flag: "file-path", Env: []string{"DISCOVERY_CLIENT_FILE_PATH"}, Group: GroupRun,
			Usage: "file sink: JSON document to keep up to date"},
		{Name: "metrics_addr", Flag: "metrics-addr", Env: []string{"DISCOVERY_CLIENT_METRICS_ADDR"}, Default: ":9108", Group: GroupRun,
			Usage: "listen address for /metrics, /healthz, /readyz (empty disables)"},
		{Name: "bridge_id", Flag: "bridge-id", Env: []string{"DISCOVERY_CLIENT_BRIDGE_ID"}, Group: GroupRun,
			Usage: "this bridge's identity in registries (default: the host name)"},
		{Name: "on_exit", Flag: "on-exit", Env: []string{"DISCOVERY_CLIENT_ON_EXIT"}, Default: "deregister", Group: GroupRun,
			Usage: "on SIGTERM: deregister what this bridge registered, or keep it for the heartbeat to expire"},

		// Consul sink.
		{Name: "consul_addr", Flag: "consul-addr", Env: []string{"CONSUL_HTTP_ADDR"}, Default: "127.0.0.1:8500", Group: GroupConsul,
			Usage: "Consul agent address (host:port or URL)"},
		{Name: "consul_token", Flag: "consul-token", Env: []string{"CONSUL_HTTP_TOKEN"}, Secret: true, Group: GroupConsul,
			Usage: "Consul ACL token (prefer --consul-token-file)"},
		{Name: "consul_token_file", Flag: "consul-token-file", Env: []string{"CONSUL_HTTP_TOKEN_FILE"}, Group: GroupConsul,
			Usage: "file holding the Consul ACL token"},
		{Name: "consul_ssl", Flag: "consul-ssl", Env: []string{"CONSUL_HTTP_SSL"}, Default: "false", Kind: KindBool, Group: GroupConsul,
			Usage: "talk HTTPS to Consul"},
		{Name: "consul_cacert", Flag: "consul-cacert", Env: []string{"CONSUL_CACERT"}, Group: GroupConsul,
			Usage: "CA certificate file for Consul's TLS"},
		{Name: "consul_client_cert", Flag: "consul-client-cert", Env: []string{"CONSUL_CLIENT_CERT"}, Group: GroupConsul,
			Usage: "client certificate file for Consul mTLS"},
		{Name: "consul_client_key", Flag: "consul-client-key", Env: []string{"CONSUL_CLIENT_KEY"}, Group: GroupConsul,
			Usage: "client key file for Consul mTLS"},
		{Name: "consul_tls_server_name", Flag: "consul-tls-server-name", Env: []string{"CONSUL_TLS_SERVER_NAME"}, Group: GroupConsul,
			Usage: "server name to verify in Consul's certificate"},
		{Name: "consul_datacenter", Flag: "consul-datacenter", Env: []string{"CONSUL_DATACENTER"}, Group: GroupConsul,
			Usage: "Consul datacenter (default: the agent's)"},
		{Name: "consul_namespace", Flag: "consul-namespace", Env: []string{"CONSUL_NAMESPACE"}, Group: GroupConsul,
			Usage: "Consul Enterprise namespace (passed through)"},
		{Name: "consul_partition", Flag: "consul-partition", Env: []string{"CONSUL_PARTITION"}, Group: GroupConsul,
			Usage: "Consul Enterprise admin partition (passed through)"},
		{Name: "consul_service", Flag: "consul-service", Env: []string{"DISCOVERY_CLIENT_CONSUL_SERVICE"}, Default: "django", Group: GroupConsul,
			Usage: "service name the discovered servers are registered under"},
		{Name: "consul_tags", Flag: "consul-tag", Env: []string{"DISCOVERY_CLIENT_CONSUL_TAGS"}, Kind: KindList, Group: GroupConsul,
			Usage: "tag for every registered server (repeatable)"},
		{Name: "consul_ttl", Flag: "consul-ttl", Env: []string{"DISCOVERY_CLIENT_CONSUL_TTL"}, Default: "0", Kind: KindDuration, Group: GroupConsul,
			Usage: "TTL of the bridge's heartbeat check (0: 3 x interval, at least 15s)"},
		{Name: "consul_deregister_after", Flag: "consul-deregister-after", Env: []string{"DISCOVERY_CLIENT_CONSUL_DEREGISTER_AFTER"}, Default: "1m", Kind: KindDuration, Group: GroupConsul,
			Usage: "Consul removes a server this long after its check turned critical (1m at least)"},
		{Name: "consul_check", Flag: "consul-check", Env: []string{"DISCOVERY_CLIENT_CONSUL_CHECK"}, Group: GroupConsul,
			Usage: "extra check on each server itself: tcp or http (empty: none)"},
		{Name: "consul_check_interval", Flag: "consul-check-interval", Env: []string{"DISCOVERY_CLIENT_CONSUL_CHECK_INTERVAL"}, Default: "10s", Kind: KindDuration, Group: GroupConsul,
			Usage: "interval of the --consul-check check"},
		{Name: "consul_resync", Flag: "consul-resync", Env: []string{"DISCOVERY_CLIENT_CONSUL_RESYNC"}, Default: "1m", Kind: KindDuration, Group: GroupConsul,
			Usage: "how often to compare what the agent holds with what the bridge owns"},
		{Name: "consul_lock", Flag: "consul-lock", Env: []string{"DISCOVERY_CLIENT_CONSUL_LOCK"}, Group: GroupConsul,
			Usage: "KV key of a lock: of several bridges on one LAN only the holder registers (empty: off)"},
		{Name: "consul_lock_session_ttl", Flag: "consul-lock-session-ttl", Env: []string{"DISCOVERY_CLIENT_CONSUL_LOCK_SESSION_TTL"}, Default: "10s", Kind: KindDuration, Group: GroupConsul,
			Usage: "TTL of the lock's session (10s at least); a standby takes over within about twice this after the holder dies"},
	}
}
