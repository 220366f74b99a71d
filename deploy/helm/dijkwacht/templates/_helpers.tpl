{{/*
Chart name, also used as the Prometheus job name (ServiceMonitor jobLabel).
*/}}
{{- define "dijkwacht.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "dijkwacht.fullname" -}}
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

{{- define "dijkwacht.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dijkwacht.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dijkwacht.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dijkwacht.labels" -}}
helm.sh/chart: {{ include "dijkwacht.chart" . }}
{{ include "dijkwacht.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dijkwacht.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dijkwacht.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dijkwacht.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "dijkwacht.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-state" (include "dijkwacht.fullname" .)) }}
{{- end }}

{{/*
Mount points, fixed by the chart.
*/}}
{{- define "dijkwacht.stateDir" -}}/var/lib/dijkwacht{{- end }}
{{- define "dijkwacht.configFile" -}}/etc/dijkwacht/dijkwacht.toml{{- end }}

{{/*
Volumes shared by the Deployment and the data-update CronJob.
*/}}
{{- define "dijkwacht.stateVolume" -}}
- name: state
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "dijkwacht.claimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/*
Container-level settings shared by all dijkwacht containers.
*/}}
{{- define "dijkwacht.containerCommon" -}}
image: {{ include "dijkwacht.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
env:
  - name: PYTHONUNBUFFERED
    value: "1"
  - name: PYTHONDONTWRITEBYTECODE
    value: "1"
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
