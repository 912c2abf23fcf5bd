{{/*
Object names are fixed, not derived from the release name: `binderguard
serve` finds its certificate Secret, webhook Service, webhook
configurations (binderguard-<namespace>) and leader Lease by these names,
and the kustomize manifests (manifests/deploy, rendered from this chart)
use the same ones. So there is one binderguard per namespace, the
BinderHub release's.
*/}}

{{/* The labels every object carries. manifests/render drops the Helm ones
(chart, managed-by, instance) when it renders the kustomize base: keep each
on a line of its own. */}}
{{- define "binderguard.labels" -}}
app.kubernetes.io/name: binderguard
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* What selects binderguard's pods. Only the name: a Deployment's selector
cannot change, and the kustomize install uses the same one. */}}
{{- define "binderguard.selector" -}}
app.kubernetes.io/name: binderguard
{{- end }}

{{/* binderguard-<namespace>: the two webhook configurations, and the
ClusterRole(Binding) that lets binderguard write their caBundle. They are
cluster-scoped, so the namespace keeps installs apart. */}}
{{- define "binderguard.clusterName" -}}
binderguard-{{ .Release.Namespace }}
{{- end }}

{{- define "binderguard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The certificate mode, checked: values.schema.json already refuses
others, this says what to do when a schema is bypassed. */}}
{{- define "binderguard.certMode" -}}
{{- $m := .Values.webhook.certificate.mode -}}
{{- if not (has $m (list "self-signed" "cert-manager" "external")) -}}
{{- fail (printf "webhook.certificate.mode %q: want self-signed (binderguard keeps it), cert-manager or external" $m) -}}
{{- end -}}
{{- if and (eq $m "external") (not .Values.webhook.certificate.caBundle) -}}
{{- fail "webhook.certificate.mode external needs webhook.certificate.caBundle: the base64 PEM of the CA that signed the Secret binderguard-webhook-tls" -}}
{{- end -}}
{{- $m -}}
{{- end }}

{{/* Whether binderguard keeps the certificate itself (self-signed). */}}
{{- define "binderguard.selfSigned" -}}
{{- if and .Values.webhook.enabled (eq (include "binderguard.certMode" .) "self-signed") }}true{{ end -}}
{{- end }}

{{/* http://<service>.$(POD_NAMESPACE).svc[:port]: the kubelet expands
$(POD_NAMESPACE), so the kustomize base moves with its namespace. */}}
{{- define "binderguard.upstream" -}}
{{- $svc := .Values.binderhub.service -}}
http://{{ $svc.name }}.$(POD_NAMESPACE).svc{{ if ne (int $svc.port) 80 }}:{{ $svc.port }}{{ end }}
{{- end }}
