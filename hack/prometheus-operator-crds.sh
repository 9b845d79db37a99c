#!/usr/bin/env bash
# Prints the paths of the prometheus-operator CRDs the chart's monitoring objects
# need (ServiceMonitor, then PrometheusRule), generating them on first use.
#
# Where from: the Go module proxy serves the API types of prometheus-operator
# (module github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring)
# but not the repository's root module, so its published manifests
# (example/prometheus-operator-crd/) cannot be fetched here. The project
# generates those manifests from exactly these types with controller-gen
# (sigs.k8s.io/controller-tools), so this script does the same, in a throwaway
# wrapper module under the cache (nothing is committed):
#
#   ~/.cache/exportjob-operator/tools/prometheus-operator-crds-<versions>/
#     src/ (wrapper go.mod)  controller-gen  crds/monitoring.coreos.com_*.yaml
#
#   hack/prometheus-operator-crds.sh            # ServiceMonitor and PrometheusRule CRD paths
#   hack/prometheus-operator-crds.sh --all      # every monitoring.coreos.com/v1 CRD
#   PROMETHEUS_OPERATOR_VERSION=v0.94.1 ...      # another served version
# First run: about a minute (building controller-gen); afterwards instant.
set -euo pipefail
po_version=${PROMETHEUS_OPERATOR_VERSION:-v0.95.2}
ct_version=${CONTROLLER_TOOLS_VERSION:-v0.23.0}
po_module=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring
cache=${EXPORTJOB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exportjob-operator/tools}/prometheus-operator-crds-$po_version-controller-tools-$ct_version-$(go env GOVERSION)
crds=$cache/crds
wanted=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)

log() { printf '[prometheus-operator-crds] %s\n' "$*" >&2; }

if [ ! -f "$crds/.complete" ]; then
  log "generating the monitoring.coreos.com CRDs of prometheus-operator $po_version with controller-gen $ct_version"
  rm -rf "$cache" && mkdir -p "$cache/src"
  cd "$cache/src"
  cat > go.mod <<MOD
module exportjob.local/prometheus-operator-crds

go $(go env GOVERSION | sed 's/^go//')
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
GO
  export GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false" CGO_ENABLED=0
  go get "$po_module@$po_version" "sigs.k8s.io/controller-tools@$ct_version" >&2
  go mod tidy >&2
  go build -o "$cache/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen
  mkdir -p "$crds.tmp"
  # crdVersions=v1 as upstream's `make generate-crds`; descriptions kept (the published manifests keep them).
  "$cache/controller-gen" crd:crdVersions=v1 "paths=$po_module/v1" "output:crd:dir=$crds.tmp"
  for f in "${wanted[@]}"; do
    [ -s "$crds.tmp/$f" ] || { log "controller-gen did not write $f"; exit 1; }
  done
  rm -rf "$crds" && mv "$crds.tmp" "$crds"
  echo "$po_version $ct_version" > "$crds/.complete"
  log "wrote $(ls "$crds"/*.yaml | wc -l) CRDs into $crds"
fi

if [ "${1:-}" = "--all" ]; then
  ls "$crds"/*.yaml
else
  for f in "${wanted[@]}"; do echo "$crds/$f"; done
fi
