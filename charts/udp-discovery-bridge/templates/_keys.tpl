{{/*
Generated from the bridge's key table by internal/chartgen
(go test ./internal/chartgen -update): edit the key table, not this file.

udb.keys: every key of .Values.config with the environment variable the
DaemonSet renders it as (the first the bridge reads), its kind and the
bridge's default; durations and decimal numbers also carry their bounds in
the key's own syntax, which _validate.tpl checks (values.schema.json checks
only their syntax when they are strings, such as "1ns" or "0.5").
*/}}
{{- define "udb.keys" -}}
log_level: {env: BRIDGE_LOG_LEVEL, kind: string, default: "info"}
log_format: {env: BRIDGE_LOG_FORMAT, kind: string, default: "console"}
discovery_port: {env: DISCOVERY_CLIENT_PORT, kind: port, default: "9999"}
discovery_message: {env: DISCOVERY_CLIENT_MESSAGE, kind: string, default: "DISCOVER_SERVER"}
response_prefix: {env: DISCOVERY_CLIENT_RESPONSE_PREFIX, kind: string, default: "SERVER_IP:"}
timeout: {env: DISCOVERY_CLIENT_TIMEOUT, kind: duration, default: "5", min: "0", minExclusive: true, max: "10m"}
retries: {env: DISCOVERY_CLIENT_RETRIES, kind: int, default: "3"}
enable_subnet_scan: {env: DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN, kind: bool, default: "true"}
scan_cidrs: {env: DISCOVERY_CLIENT_SCAN_CIDRS, kind: list, default: ""}
scan_rate: {env: DISCOVERY_CLIENT_SCAN_RATE, kind: int, default: "1000"}
interfaces_whitelist: {env: DISCOVERY_CLIENT_INTERFACES_WHITELIST, kind: list, default: ""}
interfaces_blacklist: {env: DISCOVERY_CLIENT_INTERFACES_BLACKLIST, kind: list, default: ""}
interfaces_regex: {env: DISCOVERY_CLIENT_INTERFACES_REGEX, kind: string, default: ""}
interfaces_cidrs: {env: DISCOVERY_CLIENT_INTERFACES_CIDRS, kind: list, default: ""}
interfaces_can_reach: {env: DISCOVERY_CLIENT_INTERFACES_CAN_REACH, kind: string, default: ""}
interfaces_skip_regex: {env: DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX, kind: string, default: ""}
interfaces_skip_container: {env: DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER, kind: bool, default: "false"}
default_port: {env: DISCOVERY_CLIENT_DEFAULT_PORT, kind: port, default: "8000"}
address_from: {env: DISCOVERY_CLIENT_ADDRESS_FROM, kind: string, default: "auto"}
advertised_addresses: {env: DISCOVERY_CLIENT_ADVERTISED_ADDRESSES, kind: string, default: "local"}
max_servers_per_source: {env: DISCOVERY_CLIENT_MAX_SERVERS_PER_SOURCE, kind: int, default: "8"}
encryption_enabled: {env: DISCOVERY_CLIENT_ENCRYPTION_ENABLED, kind: bool, default: "false"}
max_token_age: {env: DISCOVERY_CLIENT_MAX_TOKEN_AGE, kind: duration, default: "60s", min: "0", minExclusive: true}
clock_skew: {env: DISCOVERY_CLIENT_CLOCK_SKEW, kind: duration, default: "30s", min: "0"}
settle: {env: DISCOVERY_CLIENT_SETTLE, kind: duration, default: "0", min: "0"}
max_replies: {env: DISCOVERY_CLIENT_MAX_REPLIES, kind: int, default: "100000"}
interval: {env: DISCOVERY_CLIENT_INTERVAL, kind: duration, default: "10s", min: "100ms"}
missed_rounds: {env: DISCOVERY_CLIENT_MISSED_ROUNDS, kind: int, default: "3"}
max_removal_fraction: {env: DISCOVERY_CLIENT_MAX_REMOVAL_FRACTION, kind: float, default: "0.5", min: "0", minExclusive: true, max: "1"}
removal_guard_rounds: {env: DISCOVERY_CLIENT_REMOVAL_GUARD_ROUNDS, kind: int, default: "10"}
removal_guard_held: {env: DISCOVERY_CLIENT_REMOVAL_GUARD_HELD, kind: string, default: "ready"}
max_servers: {env: DISCOVERY_CLIENT_MAX_SERVERS, kind: int, default: "10000"}
sinks: {env: DISCOVERY_CLIENT_SINKS, kind: list, default: "stdout"}
segment: {env: DISCOVERY_CLIENT_SEGMENT, kind: string, default: ""}
on_exit: {env: DISCOVERY_CLIENT_ON_EXIT, kind: string, default: "deregister"}
debug_endpoint: {env: DISCOVERY_CLIENT_DEBUG_ENDPOINT, kind: bool, default: "false"}
app_check: {env: DISCOVERY_CLIENT_APP_CHECK, kind: string, default: "none"}
app_check_path: {env: DISCOVERY_CLIENT_APP_CHECK_PATH, kind: string, default: "/"}
app_check_status: {env: DISCOVERY_CLIENT_APP_CHECK_STATUS, kind: string, default: "200-399"}
app_check_timeout: {env: DISCOVERY_CLIENT_APP_CHECK_TIMEOUT, kind: duration, default: "2s", min: "0", minExclusive: true, max: "1m"}
app_check_interval: {env: DISCOVERY_CLIENT_APP_CHECK_INTERVAL, kind: duration, default: "10s", min: "1s", max: "1h"}
app_check_rise: {env: DISCOVERY_CLIENT_APP_CHECK_RISE, kind: int, default: "2"}
app_check_fall: {env: DISCOVERY_CLIENT_APP_CHECK_FALL, kind: int, default: "3"}
app_check_concurrency: {env: DISCOVERY_CLIENT_APP_CHECK_CONCURRENCY, kind: int, default: "64"}
app_check_jitter: {env: DISCOVERY_CLIENT_APP_CHECK_JITTER, kind: float, default: "0.2", min: "0", max: "1"}
app_check_tls_server_name: {env: DISCOVERY_CLIENT_APP_CHECK_TLS_SERVER_NAME, kind: string, default: ""}
app_check_ca_file: {env: DISCOVERY_CLIENT_APP_CHECK_CA_FILE, kind: string, default: ""}
app_check_tls_insecure: {env: DISCOVERY_CLIENT_APP_CHECK_TLS_INSECURE, kind: bool, default: "false"}
prometheus_sd: {env: DISCOVERY_CLIENT_PROMETHEUS_SD, kind: bool, default: "false"}
prometheus_sd_addr: {env: DISCOVERY_CLIENT_PROMETHEUS_SD_ADDR, kind: string, default: ""}
prometheus_sd_token_file: {env: DISCOVERY_CLIENT_PROMETHEUS_SD_TOKEN_FILE, kind: string, default: ""}
sd_targets: {env: DISCOVERY_CLIENT_SD_TARGETS, kind: string, default: "ready"}
relay_interfaces: {env: DISCOVERY_CLIENT_RELAY_INTERFACES, kind: list, default: ""}
relay_delay: {env: DISCOVERY_CLIENT_RELAY_DELAY, kind: duration, default: "50ms", min: "0", max: "1s"}
relay_max_replies: {env: DISCOVERY_CLIENT_RELAY_MAX_REPLIES, kind: int, default: "8"}
relay_rate_limit: {env: DISCOVERY_CLIENT_RELAY_RATE_LIMIT, kind: float, default: "8", min: "0"}
relay_burst: {env: DISCOVERY_CLIENT_RELAY_BURST, kind: int, default: "32"}
relay_global_rate_limit: {env: DISCOVERY_CLIENT_RELAY_GLOBAL_RATE_LIMIT, kind: float, default: "100", min: "0"}
relay_global_burst: {env: DISCOVERY_CLIENT_RELAY_GLOBAL_BURST, kind: int, default: "200"}
relay_source: {env: DISCOVERY_CLIENT_RELAY_SOURCE, kind: string, default: "auto"}
relay_max_stale: {env: DISCOVERY_CLIENT_RELAY_MAX_STALE, kind: duration, default: "30s", min: "0", max: "1h"}
file_path: {env: DISCOVERY_CLIENT_FILE_PATH, kind: string, default: ""}
file_format: {env: DISCOVERY_CLIENT_FILE_FORMAT, kind: string, default: "bridge"}
file_hosts_name: {env: DISCOVERY_CLIENT_FILE_HOSTS_NAME, kind: string, default: "django-{ip_dashed}.udb.internal"}
file_hosts_shared_name: {env: DISCOVERY_CLIENT_FILE_HOSTS_SHARED_NAME, kind: string, default: "django.udb.internal"}
consul_mode: {env: DISCOVERY_CLIENT_CONSUL_MODE, kind: string, default: "agent"}
consul_addr: {env: CONSUL_HTTP_ADDR, kind: string, default: "127.0.0.1:8500"}
consul_ssl: {env: CONSUL_HTTP_SSL, kind: bool, default: "false"}
consul_cacert: {env: CONSUL_CACERT, kind: string, default: ""}
consul_client_cert: {env: CONSUL_CLIENT_CERT, kind: string, default: ""}
consul_client_key: {env: CONSUL_CLIENT_KEY, kind: string, default: ""}
consul_tls_server_name: {env: CONSUL_TLS_SERVER_NAME, kind: string, default: ""}
consul_datacenter: {env: CONSUL_DATACENTER, kind: string, default: ""}
consul_namespace: {env: CONSUL_NAMESPACE, kind: string, default: ""}
consul_partition: {env: CONSUL_PARTITION, kind: string, default: ""}
consul_service: {env: DISCOVERY_CLIENT_CONSUL_SERVICE, kind: string, default: "django"}
consul_tags: {env: DISCOVERY_CLIENT_CONSUL_TAGS, kind: list, default: ""}
consul_ttl: {env: DISCOVERY_CLIENT_CONSUL_TTL, kind: duration, default: "0", min: "0"}
consul_deregister_after: {env: DISCOVERY_CLIENT_CONSUL_DEREGISTER_AFTER, kind: duration, default: "1m"}
consul_check: {env: DISCOVERY_CLIENT_CONSUL_CHECK, kind: string, default: ""}
consul_check_interval: {env: DISCOVERY_CLIENT_CONSUL_CHECK_INTERVAL, kind: duration, default: "10s"}
consul_http_path: {env: DISCOVERY_CLIENT_CONSUL_HTTP_PATH, kind: string, default: "/"}
consul_resync: {env: DISCOVERY_CLIENT_CONSUL_RESYNC, kind: duration, default: "1m", min: "0", minExclusive: true}
consul_lock: {env: DISCOVERY_CLIENT_CONSUL_LOCK, kind: string, default: ""}
consul_lock_session_ttl: {env: DISCOVERY_CLIENT_CONSUL_LOCK_SESSION_TTL, kind: duration, default: "10s"}
consul_kv_prefix: {env: DISCOVERY_CLIENT_CONSUL_KV_PREFIX, kind: string, default: ""}
consul_segment_tag: {env: DISCOVERY_CLIENT_CONSUL_SEGMENT_TAG, kind: bool, default: "false"}
consul_observers_meta: {env: DISCOVERY_CLIENT_CONSUL_OBSERVERS_META, kind: bool, default: "false"}
consul_catalog_layout: {env: DISCOVERY_CLIENT_CONSUL_CATALOG_LAYOUT, kind: string, default: "node-per-server"}
consul_write_rate: {env: DISCOVERY_CLIENT_CONSUL_WRITE_RATE, kind: float, default: "0", min: "0"}
consul_parallel: {env: DISCOVERY_CLIENT_CONSUL_PARALLEL, kind: int, default: "8"}
kubeconfig: {env: KUBECONFIG, kind: string, default: ""}
k8s_namespace: {env: DISCOVERY_CLIENT_K8S_NAMESPACE, kind: string, default: ""}
k8s_service: {env: DISCOVERY_CLIENT_K8S_SERVICE, kind: string, default: "django"}
k8s_port_name: {env: DISCOVERY_CLIENT_K8S_PORT_NAME, kind: string, default: "http"}
k8s_service_port: {env: DISCOVERY_CLIENT_K8S_SERVICE_PORT, kind: int, default: "8000"}
k8s_service_type: {env: DISCOVERY_CLIENT_K8S_SERVICE_TYPE, kind: string, default: "headless"}
k8s_max_endpoints_per_slice: {env: DISCOVERY_CLIENT_K8S_MAX_ENDPOINTS_PER_SLICE, kind: int, default: "100"}
k8s_deregister_after: {env: DISCOVERY_CLIENT_K8S_DEREGISTER_AFTER, kind: duration, default: "1m", min: "1s"}
k8s_lease_duration: {env: DISCOVERY_CLIENT_K8S_LEASE_DURATION, kind: duration, default: "15s", min: "3s"}
k8s_write: {env: DISCOVERY_CLIENT_K8S_WRITE, kind: list, default: "endpointslices"}
k8s_dns_name: {env: DISCOVERY_CLIENT_K8S_DNS_NAME, kind: string, default: ""}
k8s_dnsendpoint_name: {env: DISCOVERY_CLIENT_K8S_DNSENDPOINT_NAME, kind: string, default: ""}
k8s_dns_ttl: {env: DISCOVERY_CLIENT_K8S_DNS_TTL, kind: duration, default: "30s", min: "0s", max: "24h"}
k8s_dns_srv: {env: DISCOVERY_CLIENT_K8S_DNS_SRV, kind: bool, default: "false"}
k8s_resync: {env: DISCOVERY_CLIENT_K8S_RESYNC, kind: duration, default: "1m", min: "1s"}
{{- end }}
