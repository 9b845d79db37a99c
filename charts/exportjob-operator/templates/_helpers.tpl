{{/*
Naming and labels, after prometheus-community's kube-state-metrics chart.
*/}}

{{/* The chart name, or nameOverride; cut to 63 characters (a DNS label). */}}
{{- define "exportjob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: fullnameOverride, else the release name when it already contains
the chart name, else "<release>-<name>"; cut to 63 characters. It names the
Deployment, the operator ServiceAccount, the RBAC objects and the metrics
Service (whose name becomes the scrape job: see exportjob-operator.metricsJob).
*/}}
{{- define "exportjob-operator.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "exportjob-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "exportjob-operator.labels" -}}
helm.sh/chart: {{ include "exportjob-operator.chart" . }}
{{ include "exportjob-operator.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: exportjob-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator Pod (immutable in the Deployment's selector). */}}
{{- define "exportjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "exportjob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "exportjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "exportjob-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The worker Pods' ServiceAccount (the same name in every export namespace). */}}
{{- define "exportjob-operator.workerServiceAccountName" -}}
{{- .Values.worker.serviceAccount.name }}
{{- end }}

{{/*
The Prometheus `job` label of the metrics targets: the full name when it contains
"exportjob-operator" (the usual case), else "<fullname>-exportjob-operator", so
the alerts' job=~".*exportjob-operator.*" always matches. Carried by the Service
as label exportjob.io/metrics-job, which the ServiceMonitor's jobLabel reads.
*/}}
{{- define "exportjob-operator.metricsJob" -}}
{{- $full := include "exportjob-operator.fullname" . }}
{{- if contains "exportjob-operator" $full }}
{{- $full }}
{{- else }}
{{- printf "%s-exportjob-operator" $full | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* "repository:tag" or "repository@digest" of the operator image. */}}
{{- define "exportjob-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The worker image: worker.image.*, falling back to the operator image. */}}
{{- define "exportjob-operator.workerImage" -}}
{{- $w := .Values.worker.image }}
{{- $repo := default .Values.image.repository $w.repository }}
{{- if $w.digest }}
{{- printf "%s@%s" $repo $w.digest }}
{{- else if or $w.repository $w.tag }}
{{- printf "%s:%s" $repo (default (default .Chart.AppVersion .Values.image.tag) $w.tag) }}
{{- else }}
{{- include "exportjob-operator.image" . }}
{{- end }}
{{- end }}

{{/* Namespaces where a per-namespace object goes: the explicit list, else watchNamespaces, else the release namespace. Returns JSON. */}}
{{- define "exportjob-operator.exportNamespaces" -}}
{{- $root := index . 0 }}
{{- $explicit := index . 1 }}
{{- if $explicit }}
{{- toJson (uniq $explicit) }}
{{- else if $root.Values.watchNamespaces }}
{{- toJson (uniq $root.Values.watchNamespaces) }}
{{- else }}
{{- toJson (list $root.Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC rules, derived from operator/exportjob/controller/kube.py
(its only door to the API, also for the worker-Job watch) plus Kopf's ExportJob watch. Used by the ClusterRole
(cluster-wide mode) and by each namespace's Role (watchNamespaces mode).
*/}}
{{- define "exportjob-operator.rbacRules" -}}
# ExportJobs: watch (the operator's state comes from the watch stream), list (at
# start, on taking the lead, on resync); both select unfinished ones by
# `status.phase`, so the operator never writes to an ExportJob itself.
- apiGroups: ["exportjob.io"]
  resources: ["exportjobs"]
  verbs: ["list", "watch"]
# Status is the only thing the operator writes on an ExportJob (merge patch).
- apiGroups: ["exportjob.io"]
  resources: ["exportjobs/status"]
  verbs: ["patch"]
# Worker Jobs: list/watch to count running exports, create, get to adopt an
# existing one after a restart, delete when its ExportJob is gone, patch (the
# exportjob.io/finished label, so finished Jobs drop out of the watch).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# The worker's result is the termination message of its Pod.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# An export waits (Waiting/ClaimNotFound) until its claim exists.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get"]
# An export waits (Waiting/ServiceAccountNotFound) until the worker's ServiceAccount exists.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
# Check that a referenced Secret has the key; the value is never logged or copied.
# get only: the operator cannot list or watch Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Transition events on ExportJobs (also Kopf's warnings).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
A map as comma-separated key=value pairs, sorted by key (EXPORTJOB_NAMESPACE_WEIGHTS).
*/}}
{{- define "exportjob-operator.pairs" -}}
{{- $pairs := list -}}
{{- range $key := keys . | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%v" $key (index $ $key)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
