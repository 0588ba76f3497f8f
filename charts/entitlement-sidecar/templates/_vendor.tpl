{{/*
More named templates for the vendor's chart, beside the pod-spec ones in _sidecar.tpl. Each
takes this chart's context (`.Subcharts.<alias>`) and renders nothing when it does not apply.
*/}}

{{/*
Map entries for the pod template's `annotations:`: Prometheus scrape annotations for the
sidecar's /metrics when `metrics.scrapeAnnotations` (native and classic shapes; the init shape
has no port). One scrape port per pod: when your app has its own metrics, use the PodMonitor.
*/}}
{{- define "entitlement-sidecar.podAnnotations" -}}
{{- if and .Values.metrics.scrapeAnnotations (ne (include "entitlement-sidecar.shape" .) "init") -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.sidecar.port | int | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
The identity warning for your NOTES.txt, to print when your pod's ServiceAccount carries no
`eks.amazonaws.com/role-arn` annotation (the sidecar's start log says the same).
*/}}
{{- define "entitlement-sidecar.notes.noIrsa" -}}
WARNING: no IRSA role: the pod's ServiceAccount has no eks.amazonaws.com/role-arn annotation.
Without it the entitlement sidecar runs as the node's IAM role, or is given EKS Pod Identity
credentials (for example when this chart is installed as an EKS add-on); AWS Marketplace refuses
both (PlatformNotSupportedException), so no pod is ever entitled. Annotate the ServiceAccount
with an IAM role that allows aws-marketplace:RegisterUsage (manifests/iam/policy-sidecar.json).
{{- end }}
