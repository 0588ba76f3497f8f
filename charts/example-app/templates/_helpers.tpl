{{/* Standard `helm create` helpers of the vendor chart. */}}

{{/* Chart name, overridable. */}}
{{- define "example-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "example-app.fullname" -}}
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

{{/* Chart name and version. */}}
{{- define "example-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "example-app.labels" -}}
helm.sh/chart: {{ include "example-app.chart" . }}
{{ include "example-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: Helm
{{- end }}

{{/* Selector labels. */}}
{{- define "example-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "example-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The pod's ServiceAccount. */}}
{{- define "example-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "example-app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The app image; `global.imageRegistry` (shared with the sidecar) overrides `image.registry`. */}}
{{- define "example-app.image" -}}
{{- $registry := (.Values.global | default dict).imageRegistry | default .Values.image.registry }}
{{- $repository := .Values.image.repository }}
{{- if $registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}
{{- end }}
{{- printf "%s:%s" $repository .Values.image.tag }}
{{- end }}

{{/*
The pod's `imagePullSecrets:` items: the app's own, then the sidecar's (global ones included),
each name once.
*/}}
{{- define "example-app.imagePullSecrets" -}}
{{- $names := list }}
{{- $sidecar := include "entitlement-sidecar.imagePullSecrets" .Subcharts.entitlement | fromYamlArray }}
{{- range concat (.Values.imagePullSecrets | default list) $sidecar }}
{{- $name := "" }}
{{- if kindIs "string" . }}{{ $name = . }}{{ else if kindIs "map" . }}{{ $name = .name | default "" }}{{ end }}
{{- if and $name (not (has $name $names)) }}
{{- $names = append $names $name }}
{{- end }}
{{- end }}
{{- range $i, $name := $names }}
{{- if $i }}{{ "\n" }}{{ end }}- name: {{ $name }}
{{- end }}
{{- end }}
