{{/*
The sidecar, as named templates a vendor chart includes in its own pod spec. Every template
takes this chart's context: `.Subcharts.<alias>` from the vendor chart (the alias of the
dependency, e.g. `.Subcharts.entitlement`), so this chart's values, defaults and schema apply.

  spec:
    {{- with include "entitlement-sidecar.initContainers" .Subcharts.entitlement }}
    initContainers:
      {{- . | nindent 6 }}
    {{- end }}
    containers:
      - name: app
        ...
        {{- with include "entitlement-sidecar.appReadinessProbe" .Subcharts.entitlement }}
        {{- . | nindent 8 }}
        {{- end }}
        volumeMounts:
          {{- include "entitlement-sidecar.appVolumeMounts" .Subcharts.entitlement | nindent 10 }}
      {{- with include "entitlement-sidecar.containers" .Subcharts.entitlement }}
      {{- . | nindent 6 }}
      {{- end }}
    volumes:
      {{- include "entitlement-sidecar.volumes" .Subcharts.entitlement | nindent 6 }}
*/}}

{{/*
The Kubernetes version the shape is decided for: `sidecar.minKubernetesVersion` when declared,
else the cluster's. This is the chart's only read of Helm's Capabilities object: with a declared minimum (or
the classic or init shape) nothing rendered depends on the cluster, as EKS add-ons require.
*/}}
{{- define "entitlement-sidecar.kubeVersion" -}}
{{- with .Values.sidecar.minKubernetesVersion }}
{{- if not (regexMatch "^1[.][0-9]+([.][0-9]+)?$" (toString .)) }}
{{- fail (printf "entitlement-sidecar: sidecar.minKubernetesVersion %q is not a version like 1.29" (toString .)) }}
{{- end }}
{{- toString . }}
{{- else }}
{{- .Capabilities.KubeVersion.Version }}
{{- end }}
{{- end }}

{{/* Native sidecars (init container with restartPolicy Always) need Kubernetes >= 1.29. */}}
{{- define "entitlement-sidecar.nativeSupported" -}}
{{- if semverCompare ">=1.29.0-0" (include "entitlement-sidecar.kubeVersion" .) }}true{{ end }}
{{- end }}

{{/* The shape in effect: native, classic or init (`auto` resolved from the Kubernetes version). */}}
{{- define "entitlement-sidecar.shape" -}}
{{- $shape := .Values.sidecar.shape | default "auto" }}
{{- if not (has $shape (list "auto" "native" "classic" "init")) }}
{{- fail (printf "entitlement-sidecar: sidecar.shape %q is not one of auto, native, classic, init" $shape) }}
{{- else if eq $shape "auto" }}
{{- if include "entitlement-sidecar.nativeSupported" . }}native{{ else }}classic{{ end }}
{{- else if and (eq $shape "native") (not (include "entitlement-sidecar.nativeSupported" .)) }}
{{- $what := "this cluster is" }}
{{- if .Values.sidecar.minKubernetesVersion }}{{ $what = "sidecar.minKubernetesVersion is" }}{{ end }}
{{- fail (printf "entitlement-sidecar: sidecar.shape native needs Kubernetes >= 1.29 (%s %s); use classic or auto" $what (include "entitlement-sidecar.kubeVersion" .)) }}
{{- else }}
{{- $shape }}
{{- end }}
{{- end }}

{{/*
startupProbe failureThreshold for the native shape: the smallest count with
periodSeconds x (failureThreshold - 1) >= startupTimeoutSeconds + slackSeconds, so the kubelet never
kills a sidecar that is still inside its own retry budget (a restart re-registers). The kubelet
probes on its own period grid, so the first counted failure can come right at container start and
the last one (failureThreshold - 1) periods later: hence the one extra attempt.
*/}}
{{- define "entitlement-sidecar.startupFailureThreshold" -}}
{{- $p := .Values.sidecar.startupProbe }}
{{- $budget := add (int .Values.sidecar.startupTimeoutSeconds) (int $p.slackSeconds) }}
{{- $period := int $p.periodSeconds }}
{{- if lt $period 1 }}
{{- fail "entitlement-sidecar: sidecar.startupProbe.periodSeconds must be >= 1" }}
{{- end }}
{{- add (div (add $budget $period -1) $period) 1 }}
{{- end }}

{{/*
The usage intake's env (ENTITLEMENT_USAGE_*), when sidecar.usage.dimensions is not empty. The
rules that matter also fail here, for `helm template --skip-schema-validation`: the intake needs a
sidecar that keeps running, and its port may not be the probe port.
*/}}
{{- define "entitlement-sidecar.usageEnv" -}}
{{- $u := .Values.sidecar.usage }}
{{- if $u.dimensions }}
{{- if eq (include "entitlement-sidecar.shape" .) "init" }}
{{- fail "entitlement-sidecar: sidecar.usage needs a sidecar that keeps running: shape native, classic or auto (not init)" }}
{{- end }}
{{- if eq (int $u.port) (int .Values.sidecar.port) }}
{{- fail (printf "entitlement-sidecar: sidecar.usage.port %d is the probe port (sidecar.port)" (int $u.port)) }}
{{- end }}
- name: ENTITLEMENT_USAGE_DIMENSIONS
  value: {{ join "," $u.dimensions | quote }}
- name: ENTITLEMENT_USAGE_PORT
  value: {{ $u.port | int | quote }}
{{- with $u.tagKeys }}
- name: ENTITLEMENT_USAGE_TAG_KEYS
  value: {{ join "," . | quote }}
{{- end }}
- name: ENTITLEMENT_USAGE_JOURNAL_BYTES
  value: {{ $u.journalBytes | int | quote }}
- name: ENTITLEMENT_USAGE_SEND_JITTER
  value: {{ $u.sendJitterSeconds | quote }}
- name: ENTITLEMENT_USAGE_SHUTDOWN_TIMEOUT
  value: {{ $u.shutdownTimeoutSeconds | quote }}
{{- end }}
{{- end }}

{{/*
License Manager mode (README "Contract pricing: License Manager"), when license.productSku is set.
The seller's decisions (entitlements, checkout, policy, grace, heartbeat) are baked into a release
image: a value given here must be the baked one (the sidecar refuses another, exit 2), and an
empty one leaves the image's. The rules that matter also fail here, for `helm template
--skip-schema-validation`: the init shape cannot hold a floating seat (nothing would extend or
return it), so it needs drawdown (`checkout: perpetual`) or tiers only, declared here.
*/}}
{{- define "entitlement-sidecar.licenseEnv" -}}
{{- $l := .Values.license }}
{{- with include "entitlement-sidecar.productSku" . }}
{{- $counted := false }}
{{- range $l.entitlements }}{{ if contains "=" . }}{{ $counted = true }}{{ end }}{{ end }}
{{- if and (eq (include "entitlement-sidecar.shape" $) "init") (ne $l.checkout "perpetual") (or $counted (not $l.entitlements)) }}
{{- fail "entitlement-sidecar: license with shape init: a floating seat needs a sidecar that keeps running (shape native, classic or auto); for init declare license.checkout perpetual or tier-only license.entitlements" }}
{{- end }}
- name: ENTITLEMENT_PRODUCT_SKU
  value: {{ . | quote }}
{{- with $l.entitlements }}
- name: ENTITLEMENT_LICENSE_ENTITLEMENTS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $l.checkout }}
- name: ENTITLEMENT_LICENSE_CHECKOUT
  value: {{ . | quote }}
{{- end }}
{{- with $l.policy }}
- name: ENTITLEMENT_LICENSE_POLICY
  value: {{ . | quote }}
{{- end }}
{{- if not (kindIs "invalid" $l.graceSeconds) }}
- name: ENTITLEMENT_LICENSE_GRACE_SECONDS
  value: {{ $l.graceSeconds | int | quote }}
{{- end }}
{{- if not (kindIs "invalid" $l.heartbeatSeconds) }}
- name: ENTITLEMENT_LICENSE_HEARTBEAT_SECONDS
  value: {{ $l.heartbeatSeconds | int | quote }}
{{- end }}
{{- with $l.region }}
- name: ENTITLEMENT_LICENSE_REGION
  value: {{ . | quote }}
{{- end }}
- name: ENTITLEMENT_LICENSE_WAIT_SECONDS
  value: {{ $l.waitSeconds | int | quote }}
- name: ENTITLEMENT_LICENSE_CHECKIN_SECONDS
  value: {{ $l.checkinSeconds | int | quote }}
{{- if $l.anywhere.secretName }}
- name: ENTITLEMENT_LICENSE_ANYWHERE_DIR
  value: /var/run/secrets/entitlement-license
{{- end }}
{{- end }}
{{- end }}

{{/* The status volume's sizeLimit: with the intake on, room for the journal and its compaction. */}}
{{- define "entitlement-sidecar.statusVolumeSize" -}}
{{- $u := .Values.sidecar.usage }}
{{- if $u.dimensions }}
{{- add (mul 2 (int $u.journalBytes)) 1048576 }}
{{- else }}
{{- .Values.sidecar.statusVolume.sizeLimit }}
{{- end }}
{{- end }}

{{/* An httpGet probe body on the sidecar's port. Takes {"path": ..., "port": ...}. */}}
{{- define "entitlement-sidecar.httpGet" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- end }}

{{/* The one sidecar container, identical in every chart that includes it. */}}
{{- define "entitlement-sidecar.container" -}}
{{- $shape := include "entitlement-sidecar.shape" . }}
{{- $sc := .Values.sidecar }}
{{- $port := int $sc.port }}
{{- if or (lt $port 1) (gt $port 65535) }}
{{- fail (printf "entitlement-sidecar: sidecar.port %d is not a port (1-65535)" $port) }}
{{- end }}
name: {{ $sc.name }}
image: {{ include "entitlement-sidecar.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: [{{ if eq $shape "init" }}"register"{{ else }}"run"{{ end }}]
{{- if eq $shape "native" }}
restartPolicy: Always
{{- end }}
env:
  {{- with include "entitlement-sidecar.productCode" . }}
  - name: ENTITLEMENT_PRODUCT_CODE
    value: {{ . | quote }}
  {{- end }}
  - name: ENTITLEMENT_PUBLIC_KEY_VERSION
    value: {{ $sc.publicKeyVersion | int | quote }}
  - name: ENTITLEMENT_STATUS_DIR
    value: {{ $sc.statusVolume.mountPath | quote }}
  - name: ENTITLEMENT_PORT
    value: {{ $port | quote }}
  - name: ENTITLEMENT_STARTUP_TIMEOUT
    value: {{ $sc.startupTimeoutSeconds | int | quote }}
  - name: ENTITLEMENT_VERIFY_SIGNATURE
    value: {{ $sc.verifySignature | quote }}
  {{- if gt (int $sc.herdSize) 1 }}
  - name: ENTITLEMENT_HERD_SIZE
    value: {{ $sc.herdSize | int | quote }}
  {{- end }}
  {{- with .Values.region }}
  - name: ENTITLEMENT_REGION
    value: {{ . | quote }}
  {{- end }}
  - name: ENTITLEMENT_LOG_LEVEL
    value: {{ .Values.logLevel | quote }}
  - name: ENTITLEMENT_LOG_FORMAT
    value: {{ .Values.logFormat | quote }}
  - name: TMPDIR
    value: {{ $sc.statusVolume.mountPath | quote }}
  {{- include "entitlement-sidecar.podEnv" . | nindent 2 }}
  {{- with include "entitlement-sidecar.usageEnv" . }}{{ . | trim | nindent 2 }}{{ end }}
  {{- with include "entitlement-sidecar.licenseEnv" . }}{{ . | trim | nindent 2 }}{{ end }}
  {{- with include "entitlement-sidecar.networkEnv" . }}{{ . | trim | nindent 2 }}{{ end }}
  {{- with $sc.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if ne $shape "init" }}
ports:
  - name: entitlement
    containerPort: {{ $port }}
    protocol: TCP
{{- end }}
{{- if eq $shape "native" }}
startupProbe:
  {{- include "entitlement-sidecar.httpGet" (dict "path" "/readyz" "port" $port) | nindent 2 }}
  periodSeconds: {{ $sc.startupProbe.periodSeconds }}
  timeoutSeconds: {{ $sc.startupProbe.timeoutSeconds }}
  failureThreshold: {{ include "entitlement-sidecar.startupFailureThreshold" . }}
{{- end }}
{{- if ne $shape "init" }}
readinessProbe:
  {{- include "entitlement-sidecar.httpGet" (dict "path" "/readyz" "port" $port) | nindent 2 }}
  periodSeconds: {{ $sc.readinessProbe.periodSeconds }}
  timeoutSeconds: {{ $sc.readinessProbe.timeoutSeconds }}
  failureThreshold: {{ $sc.readinessProbe.failureThreshold }}
livenessProbe:
  {{- include "entitlement-sidecar.httpGet" (dict "path" "/livez" "port" $port) | nindent 2 }}
  periodSeconds: {{ $sc.livenessProbe.periodSeconds }}
  timeoutSeconds: {{ $sc.livenessProbe.timeoutSeconds }}
  failureThreshold: {{ $sc.livenessProbe.failureThreshold }}
{{- end }}
terminationMessagePolicy: FallbackToLogsOnError
{{- with $sc.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "entitlement-sidecar.securityContext" . | nindent 2 }}
volumeMounts:
  - name: {{ $sc.statusVolume.name }}
    mountPath: {{ $sc.statusVolume.mountPath }}
  {{- if $sc.keyRing.configMap }}
  - name: {{ $sc.statusVolume.name }}-keys
    mountPath: /etc/entitlement-sidecar/keys
    readOnly: true
  {{- end }}
  {{- if include "entitlement-sidecar.caSource" . }}
  - name: {{ $sc.statusVolume.name }}-ca
    mountPath: /etc/entitlement-sidecar/ca
    readOnly: true
  {{- end }}
  {{- if and (include "entitlement-sidecar.productSku" .) .Values.license.anywhere.secretName }}
  - name: {{ $sc.statusVolume.name }}-license-token
    mountPath: /var/run/secrets/entitlement-license
    readOnly: true
  {{- end }}
{{- end }}

{{/* List items for the pod's initContainers: the sidecar in the native and init shapes. */}}
{{- define "entitlement-sidecar.initContainers" -}}
{{- if has (include "entitlement-sidecar.shape" .) (list "native" "init") -}}
- {{ include "entitlement-sidecar.container" . | trim | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* List items for the pod's containers: the sidecar in the classic shape. */}}
{{- define "entitlement-sidecar.containers" -}}
{{- if eq (include "entitlement-sidecar.shape" .) "classic" -}}
- {{ include "entitlement-sidecar.container" . | trim | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* List items for the pod's volumes: the status volume, and the optional key ring and CA. */}}
{{- define "entitlement-sidecar.volumes" -}}
{{- $sc := .Values.sidecar -}}
- name: {{ $sc.statusVolume.name }}
  emptyDir:
    medium: Memory
    sizeLimit: {{ include "entitlement-sidecar.statusVolumeSize" . }}
{{- with $sc.keyRing.configMap }}
- name: {{ $sc.statusVolume.name }}-keys
  configMap:
    name: {{ . }}
{{- end }}
{{- $ca := include "entitlement-sidecar.caSource" . }}
{{- if eq $ca "configMap" }}
- name: {{ $sc.statusVolume.name }}-ca
  configMap:
    name: {{ .Values.caBundle.configMap }}
{{- else if eq $ca "secret" }}
- name: {{ $sc.statusVolume.name }}-ca
  secret:
    secretName: {{ .Values.caBundle.secret }}
{{- end }}
{{- if and (include "entitlement-sidecar.productSku" .) .Values.license.anywhere.secretName }}
- name: {{ $sc.statusVolume.name }}-license-token
  secret:
    secretName: {{ .Values.license.anywhere.secretName }}
    items:
      - key: license_token
        path: license_token
      - key: iam_role
        path: iam_role
{{- end }}
{{- end }}

{{/* List items for an app container's volumeMounts: the status volume, read-only. */}}
{{- define "entitlement-sidecar.appVolumeMounts" -}}
- name: {{ .Values.sidecar.statusVolume.name }}
  mountPath: {{ .Values.sidecar.statusVolume.mountPath }}
  readOnly: true
{{- end }}

{{/*
An app container's `readinessProbe:` on the sidecar's /readyz (containers of a pod share its
network), when sidecar.app.readinessProbe.enabled and the sidecar keeps running (not init).
*/}}
{{- define "entitlement-sidecar.appReadinessProbe" -}}
{{- $probe := .Values.sidecar.app.readinessProbe }}
{{- if and $probe.enabled (ne (include "entitlement-sidecar.shape" .) "init") -}}
readinessProbe:
  {{- include "entitlement-sidecar.httpGet" (dict "path" "/readyz" "port" (int .Values.sidecar.port)) | nindent 2 }}
  periodSeconds: {{ $probe.periodSeconds }}
{{- end }}
{{- end }}
