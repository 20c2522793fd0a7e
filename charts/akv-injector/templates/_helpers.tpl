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

{{/* The ServiceAccount the webhook runs as, whether the chart creates it or not. */}}
{{- define "akv-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "akv-injector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: the existing ServiceAccount, in the release namespace, that the webhook runs as" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- /*
The chart's map and the user's, merged, as YAML. A key the chart sets may not
come from the user too: labels and annotations are maps, and a second value
would be either a duplicate YAML key or a silent override (a pod label could
even leave the Deployment's selector). Fails naming the value and the key.
Takes (dict "chart" MAP "user" MAP "what" "webhook.podLabels").
*/}}
{{- define "akv-injector.mergeOwned" -}}
{{- $user := .user | default dict }}
{{- range $key, $_ := $user }}
{{- if hasKey $.chart $key }}
{{- fail (printf "%s: %s is set by the chart and cannot be given here" $.what $key) }}
{{- end }}
{{- end }}
{{- toYaml (merge (dict) $.chart $user) }}
{{- end }}

{{- /*
Every variable the chart sets in the webhook's environment, in any
configuration, and the value it comes from. webhook.extraEnv may not set
these: of two entries of one name Kubernetes silently keeps the last.
charts/chart.test.ts checks this list against common/names.ts `WebhookEnv`.
*/}}
{{- define "akv-injector.chartEnv" -}}
AKV_INJECTOR_TLS_CERT_FILE: certificates.mode
AKV_INJECTOR_TLS_KEY_FILE: certificates.mode
AKV_INJECTOR_PORT: webhook.port
AKV_INJECTOR_HEALTH_PORT: webhook.healthPort
AKV_INJECTOR_SIDECAR_IMAGE: images.sidecar
AKV_INJECTOR_SIDECAR_IMAGE_PULL_POLICY: images.sidecar.pullPolicy
AKV_INJECTOR_VAULT_SUFFIXES: cloud and custom.vaultSuffixes
AZURE_TENANT_ID: tenantId
AZURE_AUTHORITY_HOST: cloud and custom.authorityHost
AKV_INJECTOR_REFRESH_INTERVAL: sidecar.refreshInterval
AKV_INJECTOR_TMPFS_SIZE_LIMIT: sidecar.tmpfsSizeLimit
AKV_INJECTOR_FILE_MODE: sidecar.fileMode
AKV_INJECTOR_NATIVE_SIDECARS: sidecar.nativeSidecars
AKV_INJECTOR_SIDECAR_RESOURCES: sidecar.resources
AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE: sidecar.extraCaCerts
AKV_INJECTOR_LOG_LEVEL: webhook.logLevel
AKV_INJECTOR_SHUTDOWN_DELAY: webhook.shutdownDelaySeconds
AKV_INJECTOR_CERT_MODE: certificates.mode
AKV_INJECTOR_NAMESPACE: the release namespace
AKV_INJECTOR_CERT_SECRET: certificates.mode
AKV_INJECTOR_WEBHOOK_CONFIG_NAME: the release name
AKV_INJECTOR_SERVICE_NAME: the release name
AKV_INJECTOR_CERT_VALIDITY: certificates.self.validity
AKV_INJECTOR_CERT_EXTRA_SANS: certificates.self.extraSans
{{- end }}

{{/* webhook.extraEnv as YAML, after refusing the chart's names and repeated names. */}}
{{- define "akv-injector.extraEnv" -}}
{{- $chartEnv := include "akv-injector.chartEnv" . | fromYaml }}
{{- $seen := dict }}
{{- range .Values.webhook.extraEnv }}
{{- if hasKey $chartEnv .name }}
{{- fail (printf "webhook.extraEnv: %s is set by the chart (from %s); a second entry would silently replace it" .name (get $chartEnv .name)) }}
{{- end }}
{{- if hasKey $seen .name }}
{{- fail (printf "webhook.extraEnv: %s is given twice; Kubernetes would silently keep the last" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- with .Values.webhook.extraEnv }}
{{- toYaml . }}
{{- end }}
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
