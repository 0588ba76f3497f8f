{{/*
Helpers of the operator chart: the `helm create` names, plus one name helper that keeps every
generated name within its Kubernetes limit for any release name (Helm allows 53 characters).
Only `.Release.Name` and `.Release.Namespace` are used, and nothing reads Helm's Capabilities object
(EKS add-on rules; tests/delivery/test_addon_rules.py).
*/}}

{{/* Chart name, overridable. */}}
{{- define "entitlement-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (63 characters at most: a DNS label). */}}
{{- define "entitlement-operator.fullname" -}}
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
`<fullname>-<suffix>` within 63 characters: the full name is cut, never the suffix, so the
metrics Service of a 53-character release is still a valid DNS label. Takes {"root": ., "suffix": ...}.
*/}}
{{- define "entitlement-operator.suffixedName" -}}
{{- $keep := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" (include "entitlement-operator.fullname" .root | trunc $keep | trimSuffix "-") .suffix }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "entitlement-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels (stable across chart versions: never add user labels or versions here). */}}
{{- define "entitlement-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "entitlement-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Common labels of every object. Pod templates get only the selector labels and `podLabels`: a
version label there would restart the operator on every chart bump.
*/}}
{{- define "entitlement-operator.labels" -}}
helm.sh/chart: {{ include "entitlement-operator.chart" . }}
{{ include "entitlement-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: Helm
app.kubernetes.io/part-of: entitlement-sidecar
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Common annotations as an `annotations:` block, or nothing. */}}
{{- define "entitlement-operator.annotations" -}}
{{- with .Values.commonAnnotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
`metadata:` of a namespaced object: name, namespace, labels, common annotations.
Takes {"root": ., "name": ..., "namespace": ...}.
*/}}
{{- define "entitlement-operator.metadata" -}}
metadata:
  name: {{ .name }}
  {{- with .namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- include "entitlement-operator.labels" .root | nindent 4 }}
  {{- with include "entitlement-operator.annotations" .root }}{{ . | nindent 2 }}{{ end }}
{{- end }}

{{/*
Name of the operator's ServiceAccount: the full name when the chart creates it; otherwise the
name given, and no name is an error (the RBAC would otherwise bind the namespace's `default`).
*/}}
{{- define "entitlement-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "entitlement-operator.fullname" .) .Values.serviceAccount.name }}
{{- else if .Values.serviceAccount.name }}
{{- .Values.serviceAccount.name }}
{{- else }}
{{- fail "entitlement-operator: serviceAccount.name is required when serviceAccount.create is false (the RBAC binds exactly that account)" }}
{{- end }}
{{- end }}

{{/* The single-sender Lease: `leaseName`, else the full name (one per release). */}}
{{- define "entitlement-operator.leaseName" -}}
{{- default (include "entitlement-operator.fullname" .) .Values.leaseName }}
{{- end }}

{{/*
Image reference: `[registry/]repository@digest`, else `[registry/]repository:tag` (tag defaults
to the appVersion). `global.imageRegistry` overrides `image.registry`.
*/}}
{{- define "entitlement-operator.image" -}}
{{- $image := .Values.image }}
{{- $registry := .Values.global.imageRegistry | default $image.registry }}
{{- $repository := $image.repository }}
{{- if $registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}
{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository ($image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* `imagePullSecrets:` items from `global.imagePullSecrets` then `imagePullSecrets`, once each. */}}
{{- define "entitlement-operator.imagePullSecrets" -}}
{{- $names := list }}
{{- range concat (.Values.global.imagePullSecrets | default list) (.Values.imagePullSecrets | default list) }}
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

{{/* The product code, validated (the schema is skipped by `helm template | kubectl apply` users). */}}
{{- define "entitlement-operator.productCode" -}}
{{- $code := .Values.productCode | default "" }}
{{- if not $code }}
{{- fail "entitlement-operator: productCode is required (your AWS Marketplace product code)" }}
{{- end }}
{{- if not (regexMatch "^[-a-zA-Z0-9/=:_.@]{1,255}$" $code) }}
{{- fail (printf "entitlement-operator: productCode %q is not a valid product code (letters, digits and -/=:_.@, at most 255)" $code) }}
{{- end }}
{{- $code }}
{{- end }}

{{/* The private CA source: "configMap", "secret" or "" (both set is an error). */}}
{{- define "entitlement-operator.caSource" -}}
{{- $ca := .Values.caBundle }}
{{- if and $ca.configMap $ca.secret }}
{{- fail "entitlement-operator: set caBundle.configMap or caBundle.secret, not both" }}
{{- else if $ca.configMap }}configMap
{{- else if $ca.secret }}secret
{{- end }}
{{- end }}

{{/* Proxy and private CA environment. */}}
{{- define "entitlement-operator.networkEnv" -}}
{{- with .Values.proxy.httpsProxy }}
- name: HTTPS_PROXY
  value: {{ . | quote }}
{{- end }}
{{- with .Values.proxy.noProxy }}
- name: NO_PROXY
  value: {{ . | quote }}
{{- end }}
{{- if include "entitlement-operator.caSource" . }}
- name: AWS_CA_BUNDLE
  value: /etc/entitlement-sidecar/ca/{{ .Values.caBundle.key }}
{{- end }}
{{- end }}
