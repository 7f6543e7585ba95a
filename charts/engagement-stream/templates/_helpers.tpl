{{/*
The chart name, or nameOverride. Kubernetes names stop at 63 characters.
*/}}
{{- define "engagement-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: fullnameOverride, else the release name, with the
chart name appended unless the release name already contains it.
*/}}
{{- define "engagement-stream.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label ("+" is not allowed there).
*/}}
{{- define "engagement-stream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The namespace every object goes to.
*/}}
{{- define "engagement-stream.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/*
Labels that select this release's pods. They never change between upgrades
(a Deployment's selector is immutable), so no version goes in here.
*/}}
{{- define "engagement-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "engagement-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every object: the selector labels plus version and ownership.
*/}}
{{- define "engagement-stream.labels" -}}
helm.sh/chart: {{ include "engagement-stream.chart" . }}
{{ include "engagement-stream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: engagement-stream
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The service account the pods run as.
*/}}
{{- define "engagement-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "engagement-stream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: by digest when one is given, else by tag.
*/}}
{{- define "engagement-stream.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
True (non-empty) when the Kafka connection uses SASL or TLS.
*/}}
{{- define "engagement-stream.usesSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{- define "engagement-stream.usesTls" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/*
True when a TLS Secret is mounted (only for protocols that use TLS).
*/}}
{{- define "engagement-stream.mountsTls" -}}
{{- if and (include "engagement-stream.usesTls" .) .Values.kafka.tls.existingSecret }}true{{ end }}
{{- end }}
