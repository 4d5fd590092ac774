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

{{/*
udb.k8sSink: "true" when the kubernetes sink is on; it then needs the API
(a token, a ServiceAccount of its own and the Role of templates/rbac.yaml).
*/}}
{{- define "udb.k8sSink" -}}
{{- if has "kubernetes" (.Values.config.sinks | default list) }}true{{ end -}}
{{- end }}

{{/* udb.createServiceAccount: "true" when the chart creates the ServiceAccount. */}}
{{- define "udb.createServiceAccount" -}}
{{- if or .Values.serviceAccount.create (and (include "udb.k8sSink" .) (not .Values.serviceAccount.name)) }}true{{ end -}}
{{- end }}

{{/* udb.automountToken: the pods get an API token only with the kubernetes sink (or when asked). */}}
{{- define "udb.automountToken" -}}
{{- if or .Values.automountServiceAccountToken (include "udb.k8sSink" .) }}true{{ else }}false{{ end -}}
{{- end }}

{{- define "udb.serviceAccountName" -}}
{{- if include "udb.createServiceAccount" . }}
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

{{/*
The Secret holding the Fernet key / the Consul token, empty when none is
used. The Fernet key is used (put in the chart's Secret, mounted) only while
config.encryption_enabled is on.
*/}}
{{- define "udb.secretKey.secret" -}}
{{- if .Values.config.encryption_enabled }}
{{- if .Values.secretKey.existingSecret }}{{ .Values.secretKey.existingSecret }}{{ else if .Values.secretKey.value }}{{ include "udb.secretName" . }}{{ end }}
{{- end }}
{{- end }}
{{- define "udb.consulToken.secret" -}}
{{- if .Values.consulToken.existingSecret }}{{ .Values.consulToken.existingSecret }}{{ else if .Values.consulToken.value }}{{ include "udb.secretName" . }}{{ end }}
{{- end }}

{{/* Whether the chart creates its Secret for the Fernet key / the Consul token. */}}
{{- define "udb.secretKey.created" -}}
{{- if and .Values.config.encryption_enabled (not .Values.secretKey.existingSecret) .Values.secretKey.value }}true{{ end }}
{{- end }}
{{- define "udb.consulToken.created" -}}
{{- if and (not .Values.consulToken.existingSecret) .Values.consulToken.value }}true{{ end }}
{{- end }}

{{/* Where the secrets are mounted (a directory each; the file is the Secret's key). */}}
{{- define "udb.secretKey.dir" -}}/etc/udp-discovery-bridge/secret-key{{- end }}
{{- define "udb.consulToken.dir" -}}/etc/udp-discovery-bridge/consul-token{{- end }}

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

{{/* Timing fields of a probe. */}}
{{- define "udb.probeTiming" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end }}

{{/*
udb.goMemLimit: the value of GOMEMLIMIT, or "" to leave it unset.
.Values.goMemLimit when set; else 90% of resources.limits.memory in bytes
(a Kubernetes quantity: plain bytes, or a number with a suffix Ki Mi Gi Ti
(powers of 1024) or k M G T (powers of 1000); Kubernetes has no "K"),
rounded down, so that the
Go collector works harder before the kernel's OOM killer is reached; else
"". A limit in another form fails the render naming it.
*/}}
{{- define "udb.goMemLimit" -}}
{{- if .Values.goMemLimit -}}
{{- .Values.goMemLimit -}}
{{- else -}}
{{- $lim := "" -}}
{{- with .Values.resources -}}{{- with .limits -}}{{- with .memory -}}
{{- if kindIs "string" . -}}{{- $lim = . -}}{{- else -}}{{- $lim = printf "%.0f" (float64 .) -}}{{- end -}}
{{- end -}}{{- end -}}{{- end -}}
{{- if $lim -}}
{{- $re := "^([0-9]+(?:\\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$" -}}
{{- if not (regexMatch $re $lim) -}}
{{- fail (printf "resources.limits.memory %q: goMemLimit \"\" (auto) reads plain bytes or a suffix Ki, Mi, Gi, Ti, k, M, G, T; set goMemLimit explicitly" $lim) -}}
{{- end -}}
{{- $unit := regexReplaceAll $re $lim "${2}" -}}
{{- $mult := get (dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000) $unit -}}
{{- printf "%.0f" (floor (mulf (float64 (regexReplaceAll $re $lim "${1}")) (float64 $mult) 0.9)) -}}
{{- end -}}
{{- end -}}
{{- end }}
