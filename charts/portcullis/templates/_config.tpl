{{/*
The config file (Pomerium's format). Secrets never go here: they reach the container
as environment variables from the Secret (IDP_CLIENT_SECRET, COOKIE_SECRET, ...),
which override the file.
*/}}
{{- define "portcullis.config" -}}
{{- $c := dict
  "address" ":8443"
  "http_redirect_address" ":8080"
  "metrics_address" (printf ":%d" (int .Values.metrics.port))
  "log_level" .Values.logLevel
  "log_format" .Values.logFormat
  "authenticate_service_url" .Values.authenticateServiceUrl
  "idp_provider" .Values.idp.provider
  "idp_provider_url" .Values.idp.url
  "idp_client_id" .Values.idp.clientId
}}
{{- with .Values.connections }}
{{- $_ := set $c "use_proxy_protocol" .proxyProtocol }}
{{- $_ := set $c "xff_num_trusted_hops" (int .xffNumTrustedHops) }}
{{- $_ := set $c "timeout_header_read" (toString .headerReadTimeout) }}
{{- $_ := set $c "timeout_idle" (toString .idleTimeout) }}
{{- $_ := set $c "max_connections_per_worker" (int .maxPerWorker) }}
{{- $_ := set $c "max_concurrent_requests_per_connection" (int .maxConcurrentRequests) }}
{{- $_ := set $c "http2_max_concurrent_streams" (int .http2MaxConcurrentStreams) }}
{{- end }}
{{- with .Values.idp.scopes }}{{ $_ := set $c "idp_scopes" . }}{{ end }}
{{- with .Values.cookie.domain }}{{ $_ := set $c "cookie_domain" . }}{{ end }}
{{- with .Values.cookie.expire }}{{ $_ := set $c "cookie_expire" . }}{{ end }}
{{- with .Values.cookie.name }}{{ $_ := set $c "cookie_name" . }}{{ end }}
{{- with .Values.cookie.sameSite }}{{ $_ := set $c "cookie_same_site" . }}{{ end }}
{{- with .Values.allowedReturnDomains }}{{ $_ := set $c "allowed_return_domains" . }}{{ end }}
{{- with .Values.bearer.format }}{{ $_ := set $c "bearer_token_format" . }}{{ end }}
{{- with .Values.bearer.allowedAudiences }}{{ $_ := set $c "idp_access_token_allowed_audiences" . }}{{ end }}
{{- with .Values.bearer.allowedClients }}{{ $_ := set $c "idp_access_token_allowed_clients" . }}{{ end }}
{{- with .Values.sessionStoreSecrets.ca.secretName }}{{ $_ := set $c "session_store_ca_file" (printf "/etc/portcullis/session-store-ca/%s" $.Values.sessionStoreSecrets.ca.key) }}{{ end }}
{{- if .Values.sessionStoreSecrets.clientCertificate.secretName }}
{{- $_ := set $c "session_store_cert_file" "/etc/portcullis/session-store-client/tls.crt" }}
{{- $_ := set $c "session_store_key_file" "/etc/portcullis/session-store-client/tls.key" }}
{{- end }}
{{- if .Values.passIdentityHeaders }}{{ $_ := set $c "pass_identity_headers" true }}{{ end }}
{{- if .Values.directory.enabled }}
{{- $d := dict "provider" .Values.directory.provider }}
{{- with .Values.directory.url }}{{ $_ := set $d "url" . }}{{ end }}
{{- with .Values.directory.refreshInterval }}{{ $_ := set $d "refresh_interval" . }}{{ end }}
{{- $_ := set $c "directory" $d }}
{{- end }}
{{- with .Values.tlsSecrets }}
{{- $certs := list }}
{{- range . }}
{{- $certs = append $certs (dict "cert" (printf "/etc/portcullis/tls/%s/tls.crt" .) "key" (printf "/etc/portcullis/tls/%s/tls.key" .)) }}
{{- end }}
{{- $_ := set $c "certificates" $certs }}
{{- end }}
{{- toYaml (mergeOverwrite $c (deepCopy .Values.extraConfig)) }}
{{- end }}
