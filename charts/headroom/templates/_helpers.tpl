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

{{/* The RBAC objects of manifests/base/rbac*.yaml (copied to files/ by `make chart`),
     parsed: every ClusterRole, Role and binding, in file order. The chart keeps no rules or
     bindings of its own, so one added there reaches the chart with the copy. */}}
{{- define "headroom.rbacObjects" -}}
{{- $objects := list -}}
{{- range $path, $_ := .Files.Glob "files/rbac*.yaml" -}}
{{- range regexSplit "(?m)^---\\s*$" ($.Files.Get $path) -1 -}}
{{- $doc := fromYaml . -}}
{{- if and $doc (has $doc.kind (list "ClusterRole" "Role" "ClusterRoleBinding" "RoleBinding")) -}}
{{- $objects = append $objects $doc -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "objects" $objects) -}}
{{- end -}}

{{/* A source object's name in this release: "headroom-operator..." becomes the fullname,
     any other "headroom-..." the release name (so release "headroom" keeps every name). */}}
{{- define "headroom.rbacName" -}}
{{- $name := .name -}}
{{- if hasPrefix "headroom-operator" $name -}}
{{- $name = printf "%s%s" (include "headroom.fullname" .root) (trimPrefix "headroom-operator" $name) -}}
{{- else -}}
{{- $name = printf "%s-%s" .root.Release.Name (trimPrefix "headroom-" $name) -}}
{{- end -}}
{{- $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Where a source object goes: the operator's namespace ("headroom-system" there) is the
     release namespace, the watched one ("agents") every watchNamespaces entry, none stays
     cluster-scoped. A YAML list under "namespaces". */}}
{{- define "headroom.rbacNamespaces" -}}
{{- $ns := .namespace | default "" -}}
{{- if eq $ns "" -}}
{{- toYaml (dict "namespaces" (list "")) -}}
{{- else if eq $ns "headroom-system" -}}
{{- toYaml (dict "namespaces" (list .root.Release.Namespace)) -}}
{{- else if eq $ns "agents" -}}
{{- toYaml (dict "namespaces" .root.Values.watchNamespaces) -}}
{{- else -}}
{{- fail (printf "manifests/base/rbac*.yaml: no place in the chart for namespace %q" $ns) -}}
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
