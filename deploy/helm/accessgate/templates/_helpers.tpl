{{/* Names and labels, in the shape `helm create` uses. */}}
{{- define "accessgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "accessgate.fullname" -}}
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

{{- define "accessgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "accessgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accessgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "accessgate.labels" -}}
helm.sh/chart: {{ include "accessgate.chart" . }}
{{ include "accessgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "accessgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "accessgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "accessgate.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "accessgate.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{/* "true" when the sign-in listener runs: asked for, or the policy has a login section. */}}
{{- define "accessgate.loginEnabled" -}}
{{- $policy := dict }}
{{- if and (not .Values.policy.existingConfigMap) .Values.policy.content }}
{{- $policy = fromYaml .Values.policy.content }}
{{- end }}
{{- if or .Values.login.enabled (hasKey $policy "login") }}true{{ end }}
{{- end }}

{{/* host:port for a listener; IPv6 hosts in brackets. */}}
{{- define "accessgate.listen" -}}
{{- $host := .root.Values.listenHost }}
{{- if contains ":" $host }}{{ printf "[%s]:%v" $host .port }}{{ else }}{{ printf "%s:%v" $host .port }}{{ end }}
{{- end }}
