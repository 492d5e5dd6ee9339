{{/* Names, labels and shared fragments. */}}

{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-portcullis, or the release name when it already says portcullis. */}}
{{- define "portcullis.fullname" -}}
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

{{- define "portcullis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ include "portcullis.chart" . }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read: the user's, or the chart's. */}}
{{- define "portcullis.secretName" -}}
{{- default (include "portcullis.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "portcullis.metricsServiceName" -}}
{{- printf "%s-metrics" (include "portcullis.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Lease the replicas elect a leader with (fixed by the controller). */}}
{{- define "portcullis.leaseName" -}}
{{ .Values.controller.leaseName | default "portcullis-leader" }}
{{- end }}

{{/* Fails early, with the value to set, on an install that cannot work. */}}
{{- define "portcullis.validate" -}}
{{- $url := required "authenticateServiceUrl is required: the https URL of the sign-in host, e.g. https://authenticate.corp.example.com" .Values.authenticateServiceUrl }}
{{- if not (hasPrefix "https://" $url) }}
{{- fail (printf "authenticateServiceUrl must be an https:// URL (got %q)" $url) }}
{{- end }}
{{- $_ := required "idp.url is required: the Okta org or authorization server URL, e.g. https://example.okta.com/oauth2/default" .Values.idp.url }}
{{- $_ := required "idp.clientId is required: the client ID of the Okta app integration" .Values.idp.clientId }}
{{- if not (has .Values.idp.provider (list "okta" "oidc")) }}
{{- fail (printf "idp.provider must be okta or oidc (got %q)" .Values.idp.provider) }}
{{- end }}
{{- if not .Values.existingSecret }}
{{- $_ := required "idp.clientSecret is required (or name a Secret holding IDP_CLIENT_SECRET in existingSecret)" .Values.idp.clientSecret }}
{{- if .Values.directory.enabled }}
{{- $_ := required "directory.apiToken is required with directory.enabled (or put DIRECTORY_API_TOKEN in existingSecret)" .Values.directory.apiToken }}
{{- end }}
{{- end }}
{{- if not (has .Values.rbac.scope (list "cluster" "namespaces")) }}
{{- fail (printf "rbac.scope must be cluster or namespaces (got %q)" .Values.rbac.scope) }}
{{- end }}
{{- if and (eq .Values.rbac.scope "namespaces") (not .Values.controller.watchNamespaces) }}
{{- fail "rbac.scope=namespaces needs controller.watchNamespaces (the namespaces to grant access in)" }}
{{- end }}
{{- $store := .Values.sessionStore }}
{{- $schemes := list "redis://" "rediss://" "redis+sentinel://" "rediss+sentinel://" "redis+cluster://" "rediss+cluster://" }}
{{- $known := false }}
{{- range $schemes }}{{ if hasPrefix . $store }}{{ $known = true }}{{ end }}{{ end }}
{{- if and $store (ne $store "cookie") (not $known) }}
{{- fail "sessionStore must be empty, cookie, or a redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL" }}
{{- end }}
{{- $s := .Values.sessionStoreSecrets }}
{{- if and $s.url.secretName $store }}
{{- fail "sessionStore and sessionStoreSecrets.url both set: use one" }}
{{- end }}
{{- if or (and $s.url.secretName (not $s.url.key)) (and $s.password.secretName (not $s.password.key)) }}
{{- fail "sessionStoreSecrets.url and .password need both secretName and key" }}
{{- end }}
{{- $redis := or $s.url.secretName (and $store (ne $store "cookie")) .Values.existingSecret }}
{{- if and (or $s.password.secretName $s.ca.secretName $s.clientCertificate.secretName) (not $redis) }}
{{- fail "sessionStoreSecrets (password, ca, clientCertificate) need a Redis sessionStore (or sessionStoreSecrets.url)" }}
{{- end }}
{{- if and (or $s.ca.secretName $s.clientCertificate.secretName) $store (not (hasPrefix "rediss" $store)) }}
{{- fail "sessionStoreSecrets.ca and .clientCertificate need a TLS sessionStore (rediss://, rediss+sentinel:// or rediss+cluster://)" }}
{{- end }}
{{- end }}
