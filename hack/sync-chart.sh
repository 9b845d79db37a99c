#!/usr/bin/env bash
# Copies the single sources of truth into the Helm chart's files/ directory:
#   crds/exportjob.io_exportjobs.yaml   -> charts/exportjob-operator/files/crd.yaml
#   rules/exportjob.rules.yml           -> charts/exportjob-operator/files/exportjob.rules.yml
#   dashboards/exportjob-operator.json  -> charts/exportjob-operator/files/exportjob-operator.json
#   policies/exportjob-references.yaml  -> charts/exportjob-operator/files/admission-policy.yaml
# The chart renders them as templates (never from the chart's crds/ folder, which
# Helm does not upgrade). Run after changing a source; hack/check-chart-sync.sh
# (CI) fails while a copy differs. The pairs are listed once, in CHART_SYNC_PAIRS.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
chart_files="$repo/charts/exportjob-operator/files"

# source (relative to the repo)   copy (relative to the chart's files/)
CHART_SYNC_PAIRS=(
  "crds/exportjob.io_exportjobs.yaml" "crd.yaml"
  "rules/exportjob.rules.yml" "exportjob.rules.yml"
  "dashboards/exportjob-operator.json" "exportjob-operator.json"
  "policies/exportjob-references.yaml" "admission-policy.yaml"
)

if [ "${1:-}" = "--list" ]; then  # used by check-chart-sync.sh: "SOURCE COPY" per line, absolute paths
  for ((i = 0; i < ${#CHART_SYNC_PAIRS[@]}; i += 2)); do
    echo "$repo/${CHART_SYNC_PAIRS[i]} $chart_files/${CHART_SYNC_PAIRS[i + 1]}"
  done
  exit 0
fi

mkdir -p "$chart_files"
for ((i = 0; i < ${#CHART_SYNC_PAIRS[@]}; i += 2)); do
  src="$repo/${CHART_SYNC_PAIRS[i]}" dst="$chart_files/${CHART_SYNC_PAIRS[i + 1]}"
  if ! cmp -s "$src" "$dst"; then
    cp "$src" "$dst"
    echo "synced ${CHART_SYNC_PAIRS[i]} -> charts/exportjob-operator/files/${CHART_SYNC_PAIRS[i + 1]}"
  fi
done
