{{/* "<release>-operator", or fullnameOverride: the prefix of every object's name. */}}
{{- define "headroom.fullname" -}}
{{- default (printf "%s-operator" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "headroom.labels" -}}
app.kubernetes.io/part-of: headroom
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* What selects the operator's pods (Deployment, Service, PDB, NetworkPolicy). Never
     managed-by=headroom: that label marks agent pods, whose NetworkPolicy must not apply. */}}
{{- define "headroom.selectorLabels" -}}
app.kubernetes.io/name: headroom-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The RBAC objects of manifests/base/rbac.yaml (copied to files/rbac.yaml by
     `make chart`), parsed: a list of ClusterRoles and Roles with their rules. The chart
     keeps no rules of its own, so a rule added there reaches the chart with the copy. */}}
{{- define "headroom.rbacRoles" -}}
{{- $roles := list -}}
{{- range regexSplit "(?m)^---\\s*$" (.Files.Get "files/rbac.yaml") -1 -}}
{{- $doc := fromYaml . -}}
{{- if and $doc (has $doc.kind (list "ClusterRole" "Role")) -}}
{{- $roles = append $roles $doc -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "roles" $roles) -}}
{{- end -}}

{{/* A role's name in this release: the source's "headroom-operator" prefix becomes the
     release's fullname. */}}
{{- define "headroom.roleName" -}}
{{- $full := include "headroom.fullname" .root -}}
{{- if hasPrefix "headroom-operator" .name -}}
{{- printf "%s%s" $full (trimPrefix "headroom-operator" .name) | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" $full .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A role's rules in this release: the peering object the source names ("headroom")
     becomes peering.name. */}}
{{- define "headroom.rules" -}}
{{- $out := list -}}
{{- range .rules -}}
{{- $rule := deepCopy . -}}
{{- if and (has "kopf.dev" $rule.apiGroups) $rule.resourceNames -}}
{{- $_ := set $rule "resourceNames" (list $.root.Values.peering.name) -}}
{{- end -}}
{{- $out = append $out $rule -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
