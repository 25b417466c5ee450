{{/* The chart's name. */}}
{{- define "kubeclerk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object's name: the release name, or release-chart when the release
name does not contain the chart's. With release "kubeclerk" the objects are named as by
config/default (namePrefix kubeclerk-). */}}
{{- define "kubeclerk.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubeclerk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "kubeclerk.labels" -}}
helm.sh/chart: {{ include "kubeclerk.chart" . }}
{{ include "kubeclerk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels selecting the manager's pods. */}}
{{- define "kubeclerk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeclerk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "kubeclerk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "kubeclerk.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where the ClerkInstances' Secrets and the leader-election lease live (the manager's
--cluster-resource-namespace, by default its own). */}}
{{- define "kubeclerk.resourceNamespace" -}}
{{- default .Release.Namespace .Values.clusterResourceNamespace }}
{{- end }}

{{- define "kubeclerk.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Leader election: as asked, and always with more than one replica. */}}
{{- define "kubeclerk.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* The manager's arguments, in the order of config/default for the default values. */}}
{{- define "kubeclerk.args" -}}
{{- if .Values.metrics.enabled }}
- --metrics-bind-address=:{{ .Values.metrics.port }}
{{- end }}
{{- if include "kubeclerk.leaderElect" . }}
- --leader-elect
{{- end }}
- --health-probe-bind-address=:{{ .Values.healthProbe.port }}
{{- with .Values.secretKey.existingSecret }}
- --clerk-secret-key-file={{ trimSuffix "/" $.Values.secretKey.mountPath }}/{{ $.Values.secretKey.key }}
{{- end }}
{{- with .Values.clerk.apiURL }}
- --clerk-api-url={{ . }}
{{- end }}
{{- if .Values.clerk.requestsPerSecond }}
- --clerk-requests-per-second={{ .Values.clerk.requestsPerSecond }}
{{- end }}
{{- if .Values.clerk.burst }}
- --clerk-burst={{ .Values.clerk.burst }}
{{- end }}
{{- with .Values.syncPeriod }}
- --sync-period={{ . }}
{{- end }}
{{- with .Values.fullReadInterval }}
- --full-read-interval={{ . }}
{{- end }}
{{- if not .Values.batchObservation }}
- --batch-observation=false
{{- end }}
{{- if .Values.maxConcurrentReconciles }}
- --max-concurrent-reconciles={{ .Values.maxConcurrentReconciles }}
{{- end }}
{{- if not (kindIs "invalid" .Values.maxDeletionsPerMinute) }}
- --max-deletions-per-minute={{ .Values.maxDeletionsPerMinute }}
{{- end }}
{{- with .Values.clusterResourceNamespace }}
- --cluster-resource-namespace={{ . }}
{{- end }}
{{- if not .Values.privateMetadataFrom.enabled }}
- --private-metadata-from=false
{{- end }}
{{- if and .Values.metrics.enabled (not .Values.metrics.secure) }}
- --metrics-secure=false
{{- end }}
{{- if and .Values.metrics.enabled .Values.metrics.certSecret }}
- --metrics-cert-path=/tmp/k8s-metrics-server/metrics-certs
{{- end }}
{{- with .Values.metrics.certName }}
- --metrics-cert-name={{ . }}
{{- end }}
{{- with .Values.metrics.certKey }}
- --metrics-cert-key={{ . }}
{{- end }}
{{- if .Values.metrics.enableHTTP2 }}
- --enable-http2
{{- end }}
{{- with .Values.pprofBindAddress }}
- --pprof-bind-address={{ . }}
{{- end }}
{{- if .Values.webhooks.enabled }}
- --webhook-bind-address=:{{ .Values.webhooks.port }}
{{- with .Values.webhooks.secret.existingSecret }}
- --clerk-webhook-secret-file={{ $.Values.webhooks.secret.mountPath }}/{{ $.Values.webhooks.secret.key }}
{{- end }}
{{- end }}
{{- if not (kindIs "invalid" .Values.logging.development) }}
- --zap-devel={{ .Values.logging.development }}
{{- end }}
{{- with .Values.logging.encoder }}
- --zap-encoder={{ . }}
{{- end }}
{{- with .Values.logging.level }}
- --zap-log-level={{ . }}
{{- end }}
{{- with .Values.logging.stacktraceLevel }}
- --zap-stacktrace-level={{ . }}
{{- end }}
{{- with .Values.logging.timeEncoding }}
- --zap-time-encoding={{ . }}
{{- end }}
{{- with .Values.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}
