{{/*
Chart name, also used as the Prometheus job name (ServiceMonitor jobLabel).
*/}}
{{- define "dijkwacht.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated so that "<fullname>-targets-<n>" and the StatefulSet's
pod names stay within the 63-character DNS label limit.
*/}}
{{- define "dijkwacht.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
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

{{/*
The image by digest when one is given (immutable), else by tag (default: appVersion).
*/}}
{{- define "dijkwacht.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Paths fixed by the chart.
*/}}
{{- define "dijkwacht.stateDir" -}}/var/lib/dijkwacht{{- end }}
{{- define "dijkwacht.configDir" -}}/etc/dijkwacht/config{{- end }}
{{- define "dijkwacht.targetsDir" -}}/etc/dijkwacht/targets{{- end }}
{{- define "dijkwacht.snapshotDir" -}}/usr/share/dijkwacht/ip-ranges{{- end }}
{{- define "dijkwacht.dataDir" -}}{{ .Values.config.agent.data_dir | default (printf "%s/ip-ranges" (include "dijkwacht.stateDir" .)) }}{{- end }}

{{/*
Shell: create the data dir ($DATA_DIR) and copy in the range files and the IP-to-AS table of
the image's snapshot it lacks, never overwriting newer ones. The agent refuses a data_dir that
does not exist.
*/}}
{{- define "dijkwacht.seedData" -}}
{{- $snapshot := include "dijkwacht.snapshotDir" . -}}
mkdir -p "$DATA_DIR" && for f in {{ $snapshot }}/*.txt {{ $snapshot }}/ip2asn-*.tsv.gz; do [ ! -e "$f" ] || [ -e "$DATA_DIR/${f##*/}" ] || cp "$f" "$DATA_DIR/"; done
{{- end }}

{{/*
Number of target ConfigMaps: a multiple of the shard count, so that every ConfigMap belongs to
one shard (bucket b holds shard b mod replicas), with at most about targetsPerConfigMap
targets each.
*/}}
{{- define "dijkwacht.buckets" -}}
{{- $shards := int .Values.replicas }}
{{- $per := mul $shards (int .Values.targetsPerConfigMap) }}
{{- mul $shards (max 1 (div (add (len .Values.targets) (sub $per 1)) $per)) }}
{{- end }}

{{/*
One TOML table of dijkwacht.toml: keys quoted, values as JSON (a JSON string, number, boolean
or array of them is valid TOML).
*/}}
{{- define "dijkwacht.tomlTable" -}}
{{- $name := index . 0 }}
{{- $table := index . 1 -}}
[{{ $name }}]
{{- range $key, $value := $table }}
{{ $key | toJson }} = {{ $value | toJson }}
{{- end }}
{{- end }}

{{/*
dijkwacht.toml: config.agent, config.daemon, config.plugins and config.detectors, merged with
config.extraToml (whose tables win), plus the settings the chart owns (listen, state_path,
targets_dir, catalog).
*/}}
{{- define "dijkwacht.configToml" -}}
{{- $agent := deepCopy (.Values.config.agent | default dict) }}
{{- $daemon := deepCopy (.Values.config.daemon | default dict) }}
{{- $plugins := deepCopy (.Values.config.plugins | default dict) }}
{{- $detectors := deepCopy (.Values.config.detectors | default dict) }}
{{- with .Values.config.extraToml }}
{{- $extra := fromToml . }}
{{- if hasKey $extra "Error" }}
{{- fail (printf "config.extraToml is not valid TOML: %s" $extra.Error) }}
{{- end }}
{{- range $key, $_ := $extra }}
{{- if not (has $key (list "agent" "daemon" "plugins" "detectors")) }}
{{- fail (printf "config.extraToml: [%s] is not a table of dijkwacht.toml (agent, daemon, plugins, detectors; targets belong in .Values.targets)" $key) }}
{{- end }}
{{- end }}
{{- $agent = mergeOverwrite $agent ($extra.agent | default dict) }}
{{- $daemon = mergeOverwrite $daemon ($extra.daemon | default dict) }}
{{- $plugins = mergeOverwrite $plugins ($extra.plugins | default dict) }}
{{- $detectors = mergeOverwrite $detectors ($extra.detectors | default dict) }}
{{- end }}
{{- $_ := set $agent "data_dir" (include "dijkwacht.dataDir" .) }}
{{- if or .Values.targets .Values.targetsFrom.configMap .Values.targetsFrom.secret }}
{{- $_ := set $agent "targets_dir" (include "dijkwacht.targetsDir" .) }}
{{- end }}
{{- $catalog := $agent.catalog | default list }}
{{- range $file, $_ := .Values.catalog }}
{{- $catalog = append $catalog (printf "%s/%s" (include "dijkwacht.configDir" $) $file) }}
{{- end }}
{{- if $catalog }}
{{- $_ := set $agent "catalog" $catalog }}
{{- end }}
{{- $_ := set $daemon "listen" (printf ":%d" (int .Values.containerPort)) }}
{{- $_ := set $daemon "state_path" (printf "%s/state.db" (include "dijkwacht.stateDir" .)) }}
# Generated by the dijkwacht Helm chart from its values; do not edit here.
{{ include "dijkwacht.tomlTable" (list "agent" $agent) }}

{{ include "dijkwacht.tomlTable" (list "daemon" $daemon) }}
{{- with $plugins }}

{{ include "dijkwacht.tomlTable" (list "plugins" .) }}
{{- end }}
{{- range $name, $settings := $detectors }}

{{ include "dijkwacht.tomlTable" (list (printf "detectors.%s" ($name | toJson)) $settings) }}
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
{{- end }}

{{- define "dijkwacht.env" -}}
- name: PYTHONUNBUFFERED
  value: "1"
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
`dijkwacht data update` for the init container and the sidecar.
*/}}
{{- define "dijkwacht.dataUpdateArgs" -}}
- data
- update
- --data-dir
- {{ include "dijkwacht.dataDir" . }}
{{- with .Values.dataUpdate.from }}
- --from
- {{ . }}
{{- end }}
{{- end }}

{{/*
[[targets]] tables.
*/}}
{{- define "dijkwacht.targetsToml" -}}
{{- range $_, $t := . }}
[[targets]]
domain = {{ $t.domain | toJson }}
{{- with $t.labels }}
{{- $pairs := list }}
{{- range $k, $v := . }}
{{- $pairs = append $pairs (printf "%s = %s" ($k | toJson) ($v | toString | toJson)) }}
{{- end }}
labels = { {{ join ", " $pairs }} }
{{- end }}
{{- with $t.hosts }}
hosts = {{ toJson . }}
{{- end }}
{{- end }}
{{- end }}
