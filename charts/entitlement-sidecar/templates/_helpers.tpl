{{/*
Standard `helm create` helpers. They take this chart's context: `.` inside this chart, or
`.Subcharts.<alias>` from a vendor chart that depends on this one.
*/}}

{{/* Chart name, overridable. */}}
{{- define "entitlement-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (63 characters at most: a DNS label). */}}
{{- define "entitlement-sidecar.fullname" -}}
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
`<fullname>-<suffix>` within 63 characters: the full name is cut, never the suffix, so every name
stays a valid DNS label for any release name. Takes {"root": ., "suffix": ...}.
*/}}
{{- define "entitlement-sidecar.suffixedName" -}}
{{- $keep := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" (include "entitlement-sidecar.fullname" .root | trunc $keep | trimSuffix "-") .suffix }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "entitlement-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "entitlement-sidecar.labels" -}}
helm.sh/chart: {{ include "entitlement-sidecar.chart" . }}
{{ include "entitlement-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: Helm
app.kubernetes.io/part-of: entitlement-sidecar
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (stable: never add user labels here). */}}
{{- define "entitlement-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "entitlement-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common annotations as a `annotations:` block, or nothing. */}}
{{- define "entitlement-sidecar.annotations" -}}
{{- with .Values.commonAnnotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The sidecar image: `[registry/]repository@digest`, else `[registry/]repository:tag`;
`global.imageRegistry` overrides `image.registry`.
*/}}
{{- define "entitlement-sidecar.image" -}}
{{- $image := .Values.image }}
{{- $registry := (.Values.global | default dict).imageRegistry | default $image.registry }}
{{- $repository := $image.repository }}
{{- if $registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}
{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else if $image.tag }}
{{- printf "%s:%s" $repository $image.tag }}
{{- else }}
{{- fail "entitlement-sidecar: image.tag or image.digest must be set" }}
{{- end }}
{{- end }}

{{/*
List items for the pod's `imagePullSecrets:`: `global.imagePullSecrets` then `imagePullSecrets`
(names or {name: ...}), each name once. Empty when there are none.
*/}}
{{- define "entitlement-sidecar.imagePullSecrets" -}}
{{- $names := list }}
{{- range concat ((.Values.global | default dict).imagePullSecrets | default list) (.Values.imagePullSecrets | default list) }}
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

{{/* The private CA source: "configMap", "secret" or "" (both set is an error). */}}
{{- define "entitlement-sidecar.caSource" -}}
{{- $ca := .Values.caBundle }}
{{- if and $ca.configMap $ca.secret }}
{{- fail "entitlement-sidecar: set caBundle.configMap or caBundle.secret, not both" }}
{{- else if $ca.configMap }}configMap
{{- else if $ca.secret }}secret
{{- end }}
{{- end }}

{{/*
The product code, validated (the schema is skipped by `helm template | kubectl apply` users).
Empty is allowed only in License Manager mode (`license.productSku`), where nothing needs it.
*/}}
{{- define "entitlement-sidecar.productCode" -}}
{{- $code := .Values.productCode | default "" }}
{{- if and (not $code) (not (include "entitlement-sidecar.productSku" .)) }}
{{- fail "entitlement-sidecar: productCode is required (your AWS Marketplace product code; or license.productSku for a contract product)" }}
{{- end }}
{{- if $code }}
{{- if not (regexMatch "^[-a-zA-Z0-9/=:_.@]{1,255}$" $code) }}
{{- fail (printf "entitlement-sidecar: productCode %q is not a valid product code (letters, digits and -/=:_.@, at most 255)" $code) }}
{{- end }}
{{- end }}
{{- $code }}
{{- end }}

{{/* The License Manager product SKU, validated; empty: RegisterUsage mode. */}}
{{- define "entitlement-sidecar.productSku" -}}
{{- $sku := .Values.license.productSku | default "" }}
{{- if and $sku (not (regexMatch "^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}$" $sku)) }}
{{- fail (printf "entitlement-sidecar: license.productSku %q is not a product ID (letters, digits and ._:/@-, at most 255)" $sku) }}
{{- end }}
{{- $sku }}
{{- end }}

{{/* Proxy and private CA environment of the sidecar. */}}
{{- define "entitlement-sidecar.networkEnv" -}}
{{- with .Values.proxy.httpsProxy }}
- name: HTTPS_PROXY
  value: {{ . | quote }}
{{- end }}
{{- with .Values.proxy.noProxy }}
- name: NO_PROXY
  value: {{ . | quote }}
{{- end }}
{{- if include "entitlement-sidecar.caSource" . }}
- name: AWS_CA_BUNDLE
  value: /etc/entitlement-sidecar/ca/{{ .Values.caBundle.key }}
{{- end }}
{{- end }}

{{/* Downward-API identity of the pod (POD_UID binds the RegisterUsage nonce to this pod). */}}
{{- define "entitlement-sidecar.podEnv" -}}
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
