{{/*
Names and shared snippets. Every environment variable name the chart sets is
one of common/names.ts `WebhookEnv`; charts/chart.test.ts checks that.
*/}}

{{- define "akv-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "akv-injector.fullname" -}}
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

{{- define "akv-injector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "akv-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "akv-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "akv-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "akv-injector.serviceAccountName" -}}
{{- default (include "akv-injector.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The webhook's Service; the certificate's DNS names derive from it. */}}
{{- define "akv-injector.serviceName" -}}
{{- include "akv-injector.fullname" . }}
{{- end }}

{{/* The Secret with tls.crt and tls.key (and, in self mode, the CA). */}}
{{- define "akv-injector.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "provided" }}
{{- .Values.certificates.provided.secretName }}
{{- else }}
{{- printf "%s-tls" (include "akv-injector.fullname" .) }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "akv-injector.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* The cloud's Entra authority host. */}}
{{- define "akv-injector.authorityHost" -}}
{{- $hosts := dict "AzurePublicCloud" "https://login.microsoftonline.com/" "AzureChinaCloud" "https://login.chinacloudapi.cn/" "AzureUSGovernmentCloud" "https://login.microsoftonline.us/" }}
{{- if eq .Values.cloud "Custom" }}
{{- required "custom.authorityHost is required when cloud is Custom" .Values.custom.authorityHost }}
{{- else }}
{{- get $hosts .Values.cloud }}
{{- end }}
{{- end }}

{{/* The cloud's Key Vault DNS suffixes, comma-separated. */}}
{{- define "akv-injector.vaultSuffixes" -}}
{{- $suffixes := dict "AzurePublicCloud" ".vault.azure.net" "AzureChinaCloud" ".vault.azure.cn" "AzureUSGovernmentCloud" ".vault.usgovcloudapi.net" }}
{{- if eq .Values.cloud "Custom" }}
{{- if not .Values.custom.vaultSuffixes }}
{{- fail "custom.vaultSuffixes needs at least one entry when cloud is Custom" }}
{{- end }}
{{- join "," .Values.custom.vaultSuffixes }}
{{- else }}
{{- get $suffixes .Values.cloud }}
{{- end }}
{{- end }}

{{/* Where the TLS files live inside the webhook container. */}}
{{- define "akv-injector.tlsDir" -}}
/var/run/akv-injector/tls
{{- end }}

{{- define "akv-injector.extraCaDir" -}}
/etc/akv-injector/sidecar-ca
{{- end }}

{{- /*
The namespaces never sent to the webhook, as a JSON list: the chart's list
(null reads as empty) and the release's own, whose webhook pods must start
while it is down.
*/}}
{{- define "akv-injector.excludedNamespaces" -}}
{{- append (.Values.webhook.excludedNamespaces | default list) .Release.Namespace | uniq | toJson -}}
{{- end }}

{{- define "akv-injector.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- range (include "akv-injector.excludedNamespaces" . | fromJsonArray) }}
      - {{ . | quote }}
      {{- end }}
{{- end }}

{{- /*
Whether every kubelet runs native sidecars. `auto`: from apiserver 1.32 on,
since kubelets may be three minor versions older than the apiserver and
native sidecars are on by default from 1.29 (Azure Workload Identity's rule).
*/}}
{{- define "akv-injector.nativeSidecars" -}}
{{- $value := .Values.sidecar.nativeSidecars | toString -}}
{{- if eq $value "auto" -}}
{{- semverCompare ">=1.32.0-0" .Capabilities.KubeVersion.Version -}}
{{- else -}}
{{- $value -}}
{{- end -}}
{{- end }}
