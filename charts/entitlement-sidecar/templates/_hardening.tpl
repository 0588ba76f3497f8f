{{/*
The sidecar's securityContext: `sidecar.securityContext`, refused when it is weaker than the
hardening the image is built for (non-root numeric user, read-only root filesystem, no privilege
escalation, no capabilities, a confined seccomp profile). values.schema.json says the same; this
guard holds when the schema is skipped (`helm template --skip-schema-validation | kubectl apply`).
A buyer can tighten the context, never loosen it.
*/}}
{{- define "entitlement-sidecar.securityContext" -}}
{{- $sc := .Values.sidecar.securityContext | default dict }}
{{- $where := "entitlement-sidecar: sidecar.securityContext" }}
{{- $allowed := list "runAsNonRoot" "runAsUser" "runAsGroup" "readOnlyRootFilesystem" "allowPrivilegeEscalation" "privileged" "capabilities" "seccompProfile" "appArmorProfile" }}
{{- range $key, $_ := $sc }}
{{- if not (has $key $allowed) }}
{{- fail (printf "%s.%s cannot be set (only %s)" $where $key (join ", " $allowed)) }}
{{- end }}
{{- end }}
{{- if ne (toString $sc.runAsNonRoot) "true" }}
{{- fail (printf "%s.runAsNonRoot must be true" $where) }}
{{- end }}
{{- range $key := list "runAsUser" "runAsGroup" }}
{{- if hasKey $sc $key }}
{{- $id := get $sc $key }}
{{- if not (and (or (kindIs "float64" $id) (kindIs "int64" $id) (kindIs "int" $id)) (ge (int $id) 1)) }}
{{- fail (printf "%s.%s must be a non-root id (>= 1) or left out" $where $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if ne (toString $sc.readOnlyRootFilesystem) "true" }}
{{- fail (printf "%s.readOnlyRootFilesystem must be true" $where) }}
{{- end }}
{{- if ne (toString $sc.allowPrivilegeEscalation) "false" }}
{{- fail (printf "%s.allowPrivilegeEscalation must be false" $where) }}
{{- end }}
{{- if and (hasKey $sc "privileged") (ne (toString $sc.privileged) "false") }}
{{- fail (printf "%s.privileged must be false or left out" $where) }}
{{- end }}
{{- $caps := $sc.capabilities | default dict }}
{{- if not (kindIs "map" $caps) }}
{{- fail (printf "%s.capabilities must drop ALL" $where) }}
{{- end }}
{{- if not (has "ALL" ($caps.drop | default list)) }}
{{- fail (printf "%s.capabilities.drop must contain ALL" $where) }}
{{- end }}
{{- if $caps.add }}
{{- fail (printf "%s.capabilities.add must be empty" $where) }}
{{- end }}
{{- range $key := list "seccompProfile" "appArmorProfile" }}
{{- $profile := get $sc $key }}
{{- if or (eq $key "seccompProfile") (hasKey $sc $key) }}
{{- if not (and (kindIs "map" $profile) (has (toString (get ($profile | default dict) "type")) (list "RuntimeDefault" "Localhost"))) }}
{{- fail (printf "%s.%s.type must be RuntimeDefault or Localhost" $where $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $sc }}
{{- end }}
