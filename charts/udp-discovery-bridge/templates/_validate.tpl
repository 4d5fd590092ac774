{{/*
Template-time checks: what values.schema.json cannot express. The chart
refuses what `bridge run` refuses, with a message naming the key and the
value like the bridge's; e2e/chart/refuse_test.go runs a table of bad
values through both `helm template` and `bridge config check`.
*/}}

{{/*
udb.seconds: a duration value as seconds ("0.1"), or "" when it is not one.
Seconds as a number (5, "0.5", "1e-3") or a Go duration ("500ms", "1m30s"),
as the bridge parses them.
*/}}
{{- define "udb.seconds" -}}
{{- $v := . -}}
{{- if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- float64 $v -}}
{{- else -}}
{{- $s := toString $v | trim -}}
{{- if regexMatch `^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$` $s -}}
{{- float64 $s -}}
{{- else if regexMatch `^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$` $s -}}
{{- $units := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "μs" 1e-6 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll `([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)` $s -1 -}}
{{- $n := regexFind `^([0-9]+(\.[0-9]*)?|\.[0-9]+)` . -}}
{{- $total = addf $total (mulf (float64 $n) (get $units (trimPrefix $n .))) -}}
{{- end -}}
{{- if hasPrefix "-" $s }}{{ mulf $total -1 }}{{ else }}{{ $total }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* udb.number: a decimal value as a number ("0.5"), or "" when it is not one. */}}
{{- define "udb.number" -}}
{{- $v := . -}}
{{- if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- float64 $v -}}
{{- else if regexMatch `^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$` (toString $v | trim) -}}
{{- float64 (toString $v | trim) -}}
{{- end -}}
{{- end -}}

{{/* udb.unset: whether a config value is left to the bridge's default (nothing is rendered). */}}
{{- define "udb.unset" -}}
{{- if or (kindIs "invalid" .) (and (kindIs "string" .) (eq . "")) (and (kindIs "slice" .) (eq (len .) 0)) }}true{{ end }}
{{- end }}

{{/*
udb.effective: the config values as the bridge sees them (a value the
chart leaves unset is the bridge's default), with every duration in
seconds and every decimal number as a number under "n". Fails on a
duration or a number out of the bounds in udb.keys.
*/}}
{{- define "udb.effective" -}}
{{- $keys := include "udb.keys" . | fromYaml }}
{{- $eff := dict "n" (dict) }}
{{- range $name, $k := $keys }}
{{- $v := index $.Values.config $name }}
{{- if include "udb.unset" $v }}
{{- $v = $k.default }}
{{- if eq $k.kind "list" }}{{ $v = compact (splitList "," $k.default) }}{{ end }}
{{- if eq $k.kind "bool" }}{{ $v = eq $k.default "true" }}{{ end }}
{{- end }}
{{- $_ := set $eff $name $v }}
{{- if or (eq $k.kind "duration") (eq $k.kind "float") }}
{{- $want := "want a decimal number such as 0.5" }}
{{- $n := include "udb.number" $v }}
{{- if eq $k.kind "duration" }}
{{- $want = "want seconds (5, 0.5) or a duration (500ms, 1m)" }}
{{- $n = include "udb.seconds" $v }}
{{- end }}
{{- if eq $n "" }}
{{- fail (printf "config.%s: bad value %q: %s" $name (toString $v) $want) }}
{{- end }}
{{- $f := float64 $n }}
{{- if hasKey $k "min" }}
{{- $min := float64 (ternary (include "udb.seconds" $k.min) (include "udb.number" $k.min) (eq $k.kind "duration")) }}
{{- if and $k.minExclusive (le $f $min) }}
{{- fail (printf "config.%s: bad value %q: must be > %s" $name (toString $v) $k.min) }}
{{- else if lt $f $min }}
{{- fail (printf "config.%s: bad value %q: at least %s" $name (toString $v) $k.min) }}
{{- end }}
{{- end }}
{{- if hasKey $k "max" }}
{{- $max := float64 (ternary (include "udb.seconds" $k.max) (include "udb.number" $k.max) (eq $k.kind "duration")) }}
{{- if gt $f $max }}
{{- fail (printf "config.%s: bad value %q: at most %s" $name (toString $v) $k.max) }}
{{- end }}
{{- end }}
{{- $_ := set $eff.n $name $f }}
{{- end }}
{{- end }}
{{- toJson $eff }}
{{- end }}

{{/* udb.shown: a duration as written, seconds given as a number with "s" ("2" is "2s"). */}}
{{- define "udb.shown" -}}
{{- if include "udb.number" . }}{{ . }}s{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* Every check of the values: run before anything is rendered. */}}
{{- define "udb.validate" -}}
{{- $c := include "udb.effective" . | fromJson }}
{{- $n := $c.n }}

{{- /* The sidecar loop (internal/config ValidateLoop). */}}
{{- if le $n.interval $n.timeout }}
{{- fail (printf "config.interval %s must exceed config.timeout %s: a round lasts up to timeout and rounds start every interval" (include "udb.shown" $c.interval) (include "udb.shown" $c.timeout)) }}
{{- end }}

{{- /* Discovery (internal/config, pkg/discover). */}}
{{- range $key := list "interfaces_regex" "interfaces_skip_regex" }}
{{- with toString (index $c $key) }}
{{- $_ := include (printf "config.%s must be an RE2 pattern" $key) . }}
{{- end }}
{{- end }}
{{- $hosts := 0 }}
{{- range $net := $c.scan_cidrs }}
{{- $bits := int (regexReplaceAll `^.*/` (toString $net) "") }}
{{- $count := 1 }}
{{- range until (sub 32 $bits | int) }}{{ $count = mul $count 2 }}{{ end }}
{{- if lt $bits 31 }}{{ $count = sub $count 2 }}{{ end }}
{{- if gt $count 65536 }}
{{- fail (printf "config.scan_cidrs: %s has %d hosts, more than the limit of 65536 per round" $net $count) }}
{{- end }}
{{- $hosts = add $hosts $count }}
{{- end }}
{{- if gt $hosts 65536 }}
{{- fail (printf "config.scan_cidrs: %d hosts in %d networks, more than the limit of 65536 per round" $hosts (len $c.scan_cidrs)) }}
{{- end }}
{{- if and $c.encryption_enabled (not (include "udb.secretKey.secret" .)) }}
{{- fail "config.encryption_enabled needs a Fernet key: set secretKey.existingSecret (recommended) or secretKey.value" }}
{{- end }}

{{- /* The app check (pkg/appcheck Options.Validate) and the deprecated consul_check keys folded into it (cmd/bridge). */}}
{{- $check := toString $c.app_check }}
{{- if and (ne $check "none") (gt $n.app_check_timeout $n.app_check_interval) }}
{{- fail (printf "config.app_check_timeout %s must not exceed config.app_check_interval %s: one server's checks never overlap" (include "udb.shown" $c.app_check_timeout) (include "udb.shown" $c.app_check_interval)) }}
{{- end }}
{{- if and $c.app_check_tls_insecure $c.app_check_ca_file }}
{{- fail "config.app_check_tls_insecure and config.app_check_ca_file: set one, not both (an unverified check trusts no CA)" }}
{{- end }}
{{- if and (ne $check "none") (ne $check "https") (or $c.app_check_tls_insecure $c.app_check_ca_file $c.app_check_tls_server_name) }}
{{- fail (printf "config.app_check_tls_server_name, config.app_check_ca_file and config.app_check_tls_insecure apply to app_check https only, not %s" $check) }}
{{- end }}
{{- if and $c.consul_check (ne $check "none") (ne $check (toString $c.consul_check)) }}
{{- fail (printf "config.consul_check is %s but config.app_check is %s: consul_check is deprecated and folded into app_check; set app_check only" (toString $c.consul_check) $check) }}
{{- end }}

{{- /* Sinks (internal/sink, internal/sink/consul Config.Validate and its Section). */}}
{{- if and (has "file" $c.sinks) (not $c.file_path) }}
{{- fail "config.sinks: the file sink needs config.file_path" }}
{{- end }}
{{- if and (has "kubernetes" $c.sinks) (has "dnsendpoint" ($c.k8s_write | default list)) (not $c.k8s_dns_name) }}
{{- fail "config.k8s_dns_name: bad value \"\": k8s_write dnsendpoint needs the DNS name of its records" }}
{{- end }}
{{- $ttl := include "udb.seconds" $c.k8s_dns_ttl }}
{{- if and $ttl (ne (float64 $ttl) (floor (float64 $ttl))) }}
{{- fail (printf "config.k8s_dns_ttl: bad value %q: want whole seconds (a record's TTL)" (toString $c.k8s_dns_ttl)) }}
{{- end }}
{{- $catalog := eq (toString $c.consul_mode) "catalog" }}
{{- if and $catalog (lt $n.consul_deregister_after 5.0) }}
{{- fail (printf "config.consul_deregister_after: bad value %q: catalog mode's floor is 5s (the leader reaps)" (toString $c.consul_deregister_after)) }}
{{- else if and (not $catalog) (lt $n.consul_deregister_after 60.0) }}
{{- fail (printf "config.consul_deregister_after: bad value %q: Consul's floor is 1m (agent mode; catalog mode's is 5s)" (toString $c.consul_deregister_after)) }}
{{- end }}
{{- $round := addf $n.interval $n.timeout }}
{{- if and (not $catalog) (gt $n.consul_ttl 0.0) (le $n.consul_ttl $round) }}
{{- fail (printf "config.consul_ttl: bad value %q: must exceed interval + timeout (%vs), or every round would let the heartbeat lapse" (toString $c.consul_ttl) $round) }}
{{- end }}
{{- if and $c.consul_lock (not $catalog) (gt $n.consul_ttl 0.0) }}
{{- /* A standby takes the lock up to 2 x session TTL + the 5s lock wait + a round after the holder dies. */}}
{{- $need := addf (mulf 2 $n.consul_lock_session_ttl) 5 $round $n.interval }}
{{- if lt $n.consul_ttl $need }}
{{- fail (printf "config.consul_ttl %s is too short for config.consul_lock_session_ttl %s: a standby takes over up to 2 x consul_lock_session_ttl + 5s + interval + timeout after the holder dies, so the heartbeat TTL must be at least %vs" (include "udb.shown" $c.consul_ttl) (include "udb.shown" $c.consul_lock_session_ttl) $need) }}
{{- end }}
{{- end }}
{{- if and $c.consul_check (le $n.consul_check_interval 0.0) }}
{{- fail (printf "config.consul_check_interval: bad value %q: must be > 0" (toString $c.consul_check_interval)) }}
{{- end }}
{{- if and (eq (toString $c.consul_check) "http") (not (hasPrefix "/" (toString $c.consul_http_path))) }}
{{- fail (printf "config.consul_http_path: bad value %q: must start with /" (toString $c.consul_http_path)) }}
{{- end }}
{{- if eq (toString $c.consul_service) "udp-discovery-bridge" }}
{{- fail "config.consul_service: bad value \"udp-discovery-bridge\": reserved for the bridge's own service" }}
{{- end }}
{{- if $catalog }}
{{- $prefix := toString $c.consul_kv_prefix }}
{{- if or (hasPrefix "/" $prefix) (hasSuffix "/" $prefix) (contains "//" $prefix) }}
{{- fail (printf "config.consul_kv_prefix: bad value %q: want a KV path such as udp-discovery-bridge/django (no leading, trailing or doubled /)" $prefix) }}
{{- end }}
{{- if $c.consul_lock }}
{{- fail (printf "config.consul_lock: bad value %q: catalog mode elects its leader under consul_kv_prefix; leave consul_lock empty" (toString $c.consul_lock)) }}
{{- end }}
{{- end }}
{{- if and (or $catalog $c.consul_lock) (lt $n.consul_lock_session_ttl 10.0) }}
{{- fail (printf "config.consul_lock_session_ttl: bad value %q: Consul's floor is 10s" (toString $c.consul_lock_session_ttl)) }}
{{- end }}

{{- /* The chart's own values. */}}
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

{{/*
The interface patterns compile as RE2, as the bridge compiles them; a bad
one fails in the template named after its key.
*/}}
{{- define "config.interfaces_regex must be an RE2 pattern" -}}
{{- $_ := mustRegexMatch . "" }}
{{- end }}
{{- define "config.interfaces_skip_regex must be an RE2 pattern" -}}
{{- $_ := mustRegexMatch . "" }}
{{- end }}
