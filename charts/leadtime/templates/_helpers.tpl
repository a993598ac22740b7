{{- define "leadtime.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "leadtime.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "leadtime.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "leadtime.metricsApiService" -}}
{{- printf "%s-metrics-api" (include "leadtime.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Leadtime's configuration file: what the chart decides, with .Values.config over it. */}}
{{- define "leadtime.config" -}}
{{- $knative := .Values.adapters.knative -}}
{{- $hpa := .Values.adapters.hpa -}}
{{- $config := dict
  "mode" "live"
  "http" (dict "host" "0.0.0.0" "port" (int .Values.service.port))
  "prometheus" (dict "url" .Values.prometheus.url "signals" .Values.prometheus.signals)
  "knative" (dict "enabled" $knative.enabled "class" $knative.class)
  "hpa" (dict "enabled" $hpa.enabled) -}}
{{- if .Values.api.tokenSecret -}}
{{- $_ := set $config.http "token_file" "/var/run/leadtime/api/token" -}}
{{- end -}}
{{- with .Values.leaderElection -}}
{{- if .enabled -}}
{{- $_ := set $config "leader_election" (dict "enabled" true "buckets" (int .buckets)
  "lease_duration" .leaseDuration "renew_deadline" .renewDeadline "retry_period" .retryPeriod) -}}
{{- end -}}
{{- end -}}
{{- if $hpa.metricsApi.enabled -}}
{{- $_ := set $config.hpa "metrics_api_port" (int $hpa.metricsApi.port) -}}
{{- $_ := set $config.hpa "tls_cert_file" "/var/run/leadtime/tls/tls.crt" -}}
{{- $_ := set $config.hpa "tls_key_file" "/var/run/leadtime/tls/tls.key" -}}
{{- if $hpa.metricsApi.clientCA -}}
{{- $_ := set $config.hpa "client_ca_file" "/var/run/leadtime/client-ca/ca.crt" -}}
{{- $_ := set $config.hpa "client_names" $hpa.metricsApi.clientNames -}}
{{- end -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $config (deepCopy .Values.config)) -}}
{{- end -}}
