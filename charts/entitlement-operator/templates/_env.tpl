{{/*
The operator container's environment: every setting from the values (the operator Deployment and
the `helm test` doctor Pod use the same list, so the doctor checks what the operator runs with).
*/}}
{{- define "entitlement-operator.env" -}}
- name: ENTITLEMENT_OPERATOR_PRODUCT_CODE
  value: {{ include "entitlement-operator.productCode" . | quote }}
- name: ENTITLEMENT_OPERATOR_DIMENSIONS
  value: {{ join "," .Values.dimensions | quote }}
{{- with .Values.tagKeys }}
- name: ENTITLEMENT_OPERATOR_TAG_KEYS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.namespaces }}
- name: ENTITLEMENT_OPERATOR_NAMESPACES
  value: {{ join "," . | quote }}
{{- end }}
- name: ENTITLEMENT_OPERATOR_LEDGER_NAMESPACE
  value: {{ .Values.ledgerNamespace | default .Release.Namespace | quote }}
- name: ENTITLEMENT_OPERATOR_SEND_JITTER_SECONDS
  value: {{ .Values.sendJitterSeconds | int | quote }}
- name: ENTITLEMENT_OPERATOR_SEND_ZERO
  value: {{ .Values.sendZero | quote }}
- name: ENTITLEMENT_OPERATOR_DRY_RUN
  value: {{ .Values.dryRun | quote }}
- name: ENTITLEMENT_OPERATOR_METRICS_PORT
  value: {{ .Values.metricsPort | int | quote }}
- name: ENTITLEMENT_OPERATOR_CHECKPOINT_SECONDS
  value: {{ .Values.checkpointSeconds | int | quote }}
- name: ENTITLEMENT_OPERATOR_TICK_SECONDS
  value: {{ .Values.tickSeconds | int | quote }}
- name: ENTITLEMENT_OPERATOR_SAFETY_MARGIN_SECONDS
  value: {{ .Values.safetyMarginSeconds | int | quote }}
# One Lease per release: two operators (say, two products) in one namespace must not
# share the single-sender Lease, or one of them would never send.
- name: ENTITLEMENT_OPERATOR_LEASE_NAME
  value: {{ include "entitlement-operator.leaseName" . | quote }}
- name: ENTITLEMENT_OPERATOR_RETENTION_DAYS
  value: {{ .Values.retentionDays | int | quote }}
{{- with .Values.region }}
- name: ENTITLEMENT_OPERATOR_REGION
  value: {{ . | quote }}
{{- end }}
- name: ENTITLEMENT_OPERATOR_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: ENTITLEMENT_OPERATOR_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: TMPDIR
  value: /tmp
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
{{- with include "entitlement-operator.networkEnv" . }}{{ . | trim | nindent 0 }}{{ end }}
{{- with .Values.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end }}
