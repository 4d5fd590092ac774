{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "udb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "udb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "udb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "udb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "udb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "udb.labels" -}}
helm.sh/chart: {{ include "udb.chart" . }}
{{ include "udb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "udb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "udb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference; the tag defaults to the chart's appVersion. */}}
{{- define "udb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret the chart creates from secretKey.value / consulToken.value. */}}
{{- define "udb.secretName" -}}
{{- include "udb.fullname" . }}
{{- end }}

{{/* Whether a Fernet key / Consul token is configured, and the Secret holding it. */}}
{{- define "udb.secretKey.secret" -}}
{{- if .Values.secretKey.existingSecret }}{{ .Values.secretKey.existingSecret }}{{ else if .Values.secretKey.value }}{{ include "udb.secretName" . }}{{ end }}
{{- end }}
{{- define "udb.consulToken.secret" -}}
{{- if .Values.consulToken.existingSecret }}{{ .Values.consulToken.existingSecret }}{{ else if .Values.consulToken.value }}{{ include "udb.secretName" . }}{{ end }}
{{- end }}

{{/* Where the secrets are mounted (a directory each; the file is the Secret's key). */}}
{{- define "udb.secretKey.dir" -}}/etc/udp-discovery-bridge/secret-key{{- end }}
{{- define "udb.consulToken.dir" -}}/etc/udp-discovery-bridge/consul-token{{- end }}

{{/*
The environment variable of each key of .Values.config: the first variable
of the key in the bridge's key table (bridge.example.yaml). The e2e chart
tests check these names against that file.
*/}}
{{- define "udb.configEnv" -}}
log_level: BRIDGE_LOG_LEVEL
log_format: BRIDGE_LOG_FORMAT
discovery_port: DISCOVERY_CLIENT_PORT
discovery_message: DISCOVERY_CLIENT_MESSAGE
response_prefix: DISCOVERY_CLIENT_RESPONSE_PREFIX
timeout: DISCOVERY_CLIENT_TIMEOUT
retries: DISCOVERY_CLIENT_RETRIES
enable_subnet_scan: DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN
scan_cidrs: DISCOVERY_CLIENT_SCAN_CIDRS
scan_rate: DISCOVERY_CLIENT_SCAN_RATE
interfaces_whitelist: DISCOVERY_CLIENT_INTERFACES_WHITELIST
interfaces_blacklist: DISCOVERY_CLIENT_INTERFACES_BLACKLIST
interfaces_regex: DISCOVERY_CLIENT_INTERFACES_REGEX
interfaces_cidrs: DISCOVERY_CLIENT_INTERFACES_CIDRS
interfaces_can_reach: DISCOVERY_CLIENT_INTERFACES_CAN_REACH
interfaces_skip_regex: DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX
interfaces_skip_container: DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER
default_port: DISCOVERY_CLIENT_DEFAULT_PORT
address_from: DISCOVERY_CLIENT_ADDRESS_FROM
encryption_enabled: DISCOVERY_CLIENT_ENCRYPTION_ENABLED
max_token_age: DISCOVERY_CLIENT_MAX_TOKEN_AGE
clock_skew: DISCOVERY_CLIENT_CLOCK_SKEW
settle: DISCOVERY_CLIENT_SETTLE
max_replies: DISCOVERY_CLIENT_MAX_REPLIES
interval: DISCOVERY_CLIENT_INTERVAL
missed_rounds: DISCOVERY_CLIENT_MISSED_ROUNDS
max_removal_fraction: DISCOVERY_CLIENT_MAX_REMOVAL_FRACTION
removal_guard_rounds: DISCOVERY_CLIENT_REMOVAL_GUARD_ROUNDS
sinks: DISCOVERY_CLIENT_SINKS
file_path: DISCOVERY_CLIENT_FILE_PATH
consul_mode: DISCOVERY_CLIENT_CONSUL_MODE
on_exit: DISCOVERY_CLIENT_ON_EXIT
consul_addr: CONSUL_HTTP_ADDR
consul_ssl: CONSUL_HTTP_SSL
consul_cacert: CONSUL_CACERT
consul_client_cert: CONSUL_CLIENT_CERT
consul_client_key: CONSUL_CLIENT_KEY
consul_tls_server_name: CONSUL_TLS_SERVER_NAME
consul_datacenter: CONSUL_DATACENTER
consul_namespace: CONSUL_NAMESPACE
consul_partition: CONSUL_PARTITION
consul_service: DISCOVERY_CLIENT_CONSUL_SERVICE
consul_tags: DISCOVERY_CLIENT_CONSUL_TAGS
consul_ttl: DISCOVERY_CLIENT_CONSUL_TTL
consul_deregister_after: DISCOVERY_CLIENT_CONSUL_DEREGISTER_AFTER
consul_check: DISCOVERY_CLIENT_CONSUL_CHECK
consul_check_interval: DISCOVERY_CLIENT_CONSUL_CHECK_INTERVAL
consul_http_path: DISCOVERY_CLIENT_CONSUL_HTTP_PATH
consul_resync: DISCOVERY_CLIENT_CONSUL_RESYNC
consul_lock: DISCOVERY_CLIENT_CONSUL_LOCK
consul_lock_session_ttl: DISCOVERY_CLIENT_CONSUL_LOCK_SESSION_TTL
consul_kv_prefix: DISCOVERY_CLIENT_CONSUL_KV_PREFIX
segment: DISCOVERY_CLIENT_SEGMENT
consul_segment_tag: DISCOVERY_CLIENT_CONSUL_SEGMENT_TAG
consul_observers_meta: DISCOVERY_CLIENT_CONSUL_OBSERVERS_META
consul_write_rate: DISCOVERY_CLIENT_CONSUL_WRITE_RATE
consul_parallel: DISCOVERY_CLIENT_CONSUL_PARALLEL
{{- end }}

{{/* One config value as an environment string: lists comma-joined, whole numbers without an exponent. */}}
{{- define "udb.envValue" -}}
{{- $v := . }}
{{- if kindIs "slice" $v }}{{ join "," $v }}
{{- else if kindIs "float64" $v }}{{ if eq $v (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else }}{{ $v }}
{{- end }}
{{- end }}

{{/* Whether agent mode takes the address from the node's IP. */}}
{{- define "udb.agentHostIP" -}}
{{- if and (eq (toString .Values.config.consul_mode) "agent") .Values.consulAgent.useHostIP }}true{{ end }}
{{- end }}

{{/* Template-time checks the schema cannot express. */}}
{{- define "udb.validate" -}}
{{- if and .Values.config.encryption_enabled (not (include "udb.secretKey.secret" .)) }}
{{- fail "config.encryption_enabled needs a Fernet key: set secretKey.existingSecret (recommended) or secretKey.value" }}
{{- end }}
{{- if and .Values.secretKey.existingSecret .Values.secretKey.value }}
{{- fail "secretKey: set existingSecret or value, not both" }}
{{- end }}
{{- if and .Values.consulToken.existingSecret .Values.consulToken.value }}
{{- fail "consulToken: set existingSecret or value, not both" }}
{{- end }}
{{- if and (not .Values.secretKey.existingSecret) .Values.secretKey.value .Values.consulToken.value (eq .Values.secretKey.key .Values.consulToken.key) }}
{{- fail "secretKey.key and consulToken.key must differ when the chart creates both in one Secret" }}
{{- end }}
{{- end }}

{{/* Timing fields of a probe. */}}
{{- define "udb.probeTiming" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end }}
